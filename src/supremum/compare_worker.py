"""`python -m supremum.compare_worker` < spec.json: one comparison cell (fine-tune, then
quality evaluation of each split) in a fresh process; prints one JSON line. The spec is JSON
written by our own parent process (supremum.compare). A spec naming an "artifact" (a cached cell's)
skips the fine-tune and prints only the scores of its splits and their robustness."""

from __future__ import annotations

import json
import sys


def main() -> None:
    from supremum.artifact import open_artifact
    from supremum.config import EvalConfig
    from supremum.evaluate.speed import peak_rss_mb
    from supremum.evaluate.stage import evaluate
    from supremum.store import Store
    from supremum.tasks import CAUSAL_LM, get_task
    from supremum.train.config import FinetuneConfig
    from supremum.train.finetune import finetune

    spec = json.loads(sys.stdin.read())
    cfg = FinetuneConfig(**spec["config"])
    store = Store(spec["store"])
    if spec.get("artifact"):  # a cached cell's, its files' hashes checked by the parent just before
        art, res = open_artifact(spec["artifact"], verify=False), None
    else:
        res = finetune(cfg, store=store, progress=False, command="supremum compare (cell)")
        art = res.artifact
    task = get_task(art.task)
    lm = task is CAUSAL_LM
    metric = task.metric  # a language model is scored by held-out perplexity
    scores, robustness = {}, {}
    for split in spec["splits"]:
        m = evaluate(art, cfg.data, EvalConfig(split=split, speed=False,
                                               perturb=None if lm or split != spec["splits"][-1]
                                               else spec["perturb"]), store=store)
        scores[split] = m[metric]
        robustness.update({k: v["accuracy"] for k, v in (m.get("robustness") or {}).items() if k != "method"})
    if res is None:
        sys.stdout.write(json.dumps({metric: scores, "robustness": robustness}) + "\n")
        return
    out = {metric: scores, "robustness": robustness, "artifact": art.id, "run_id": res.run_id,
           "trainable_params": res.metrics["trainable_params"], "total_params": res.metrics.get("total_params"),
           "trainable_fraction": res.metrics["trainable_fraction"],
           "train_seconds": res.metrics["train_seconds"], "peak_rss_mb": peak_rss_mb()}
    sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
