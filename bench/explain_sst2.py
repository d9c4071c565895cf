"""Benchmark (issue 21, parts 1-3): word attributions of the fine-tuned minilm-l6 on SST-2 test.

Targets:
- Integrated Gradients' comprehensiveness (ERASER AOPC) is at least 2x the random baseline's
  (every method reported, attention rollout included, with random's spread over seeds);
- `explain` of 100 examples at batch 1 with Integrated Gradients at 50 steps takes under 60 s
  (wall-clock of one `explain` call with IG alone, faithfulness included, one run; the seconds
  in IG's attributions alone are reported beside it).

With `--child` (an artifact, or a compression method applied to the parent: int8-dynamic,
onnx, onnx-int8-dynamic, ...), also the explanation drift of that child against the parent on
the same examples (Spearman, top-1/3/5 overlap, prediction agreement). The parent is the recipe
recipes/sst2-minilm-full.yaml, or `--artifact`. Writes bench/results/explain_sst2.json.

    SUPREMUM_DATA=../shared/data python bench/explain_sst2.py [--artifact models/sst2-full] [--child int8-dynamic]
    python bench/explain_sst2.py --quick [--out x.json]   # smoke: tiny-bert, tiny data, 4 steps, 6 examples
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import _quick  # noqa: E402
from calibrate_sst2 import data_dir, make_parent  # noqa: E402 - the same parent as the calibration benchmark

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
RESULTS = Path(__file__).parent / "results" / "explain_sst2.json"
TARGET_RATIO = 2.0  # IG comprehensiveness over random's
TARGET_SECONDS = 60.0  # 100 examples, IG at 50 steps, batch 1
EXAMPLES, STEPS, SEEDS = 100, 50, [0, 1, 2, 3, 4]
QUICK = {"EXAMPLES": 6, "SEEDS": [0, 1]}


def make_child(parent, child: str, work: Path):
    """`child` as an artifact (path or id), or the parent compressed by the method it names."""
    from supremum.compress import compress, compressors
    from supremum.evaluate import resolve_artifact

    if child in compressors():
        return compress(parent, compressors()[child].config_cls(), output=work / child)
    return resolve_artifact(child)


def faithfulness(res: dict) -> dict:
    """Per method: comprehensiveness, sufficiency and the ratio to random; random with its s.d.
    and per-seed values; the ratio's range over random's seeds."""
    f = res["faithfulness"]
    per_seed = f["random"]["comprehensiveness"]["per_seed"]
    rows = {m: {"comprehensiveness": f[m]["comprehensiveness"], "sufficiency": f[m]["sufficiency"],
                "vs_random": f[m]["comprehensiveness_vs_random"],
                "vs_random_over_seeds": [f[m]["comprehensiveness"] / r if r > 0 else None for r in per_seed],
                "seconds": res["seconds"][m]} for m in res["methods"]}
    return {"methods": rows, "random": f["random"], "skipped": res["skipped"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--artifact", help="an existing full fine-tune of minilm-l6 on SST-2 (default: train one "
                    "with recipes/sst2-minilm-full.yaml)")
    ap.add_argument("--child", help="explanation drift of this artifact, or of the parent compressed by this "
                    "method (int8-dynamic, onnx, onnx-int8-dynamic, ...), against the parent")
    ap.add_argument("--examples", type=int, help=f"test examples to explain (default {EXAMPLES})")
    ap.add_argument("--work", help="directory for the artifacts (default: a temporary one)")
    _quick.add_args(ap)
    args = ap.parse_args()
    out = _quick.prelude(args, RESULTS, QUICK, globals())
    n = args.examples or EXAMPLES
    os.environ.setdefault("SUPREMUM_HOME", tempfile.mkdtemp(prefix="supremum-bench-explain-"))
    from supremum.artifact import open_artifact
    from supremum.explain.config import ExplainConfig
    from supremum.explain.run import examples_from_data, explain
    from supremum.machine import fingerprint
    from supremum.preprocessing import data_config_for

    work = Path(args.work or tempfile.mkdtemp(prefix="supremum-bench-explain-work-"))
    parent = open_artifact(args.artifact) if args.artifact else make_parent(work / "parent", args.quick)
    texts, labels, source = examples_from_data(parent, data_config_for(parent, data_dir()), "test", n)
    cmd = "bench/explain_sst2.py"

    every = explain(parent, texts, labels, ExplainConfig(steps=STEPS, seeds=SEEDS), source=source,
                    output=work / "every-method", command=cmd)
    t0 = time.perf_counter()
    timed = explain(parent, texts, labels, ExplainConfig(methods=["integrated-gradients"], steps=STEPS,
                                                         batch_size=1, seeds=[0]),
                    source=source, output=work / "ig-batch1", command=cmd)
    wall = time.perf_counter() - t0
    faith = faithfulness(every)
    ig = faith["methods"].get("integrated-gradients")
    res = {"machine": fingerprint(),
           "settings": {"parent": parent.id, "lineage": parent.lineage, "model": parent.manifest.base_model,
                        "recipe": None if args.artifact else "recipes/sst2-minilm-full.yaml", "source": source,
                        "examples": len(texts), "steps": STEPS, "seeds": SEEDS, "quick": args.quick},
           "faithfulness": faith,
           "timing": {"method": "wall-clock of one explain call (integrated-gradients alone, 50 steps, batch 1, "
                                "faithfulness with one random seed included), one run",
                      "examples": len(texts), "seconds": wall,
                      "ig_attribution_seconds": timed["seconds"]["integrated-gradients"]},
           "target": {"ig_vs_random": ig["vs_random"] if ig else None, "ig_vs_random_at_least": TARGET_RATIO,
                      "ig_met": bool(ig and ig["vs_random"] is not None and ig["vs_random"] >= TARGET_RATIO),
                      "seconds_per_100": wall * 100 / len(texts), "seconds_under": TARGET_SECONDS,
                      "time_met": wall * 100 / len(texts) < TARGET_SECONDS}}
    if args.child:
        child = make_child(parent, args.child, work)
        d = explain(child, texts, labels, ExplainConfig(steps=STEPS, seeds=[0]), source=source,
                    output=work / "child", command=cmd, against=parent)["drift"]
        res["drift"] = {"child": child.id, "lineage": child.lineage, "backend": child.manifest.backend,
                        **{k: v for k, v in d.items() if k != "methods"},
                        "methods": {m: {k: v for k, v in s.items() if k != "per_example"}
                                    for m, s in d["methods"].items()}}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2))
    _report(res, out)


def _report(res: dict, out: Path) -> None:
    r = res["faithfulness"]["random"]["comprehensiveness"]
    print(f"random: comprehensiveness {r['mean']:.4f} ± {r['sd']:.4f} over {len(r['per_seed'])} seeds")
    for m, x in res["faithfulness"]["methods"].items():
        ratio = "-" if x["vs_random"] is None else f"{x['vs_random']:.2f}x"
        print(f"{m:>21}: comprehensiveness {x['comprehensiveness']:.4f} ({ratio} random), "
              f"sufficiency {x['sufficiency']:.4f}, {x['seconds']:.1f} s")
    t, tg = res["timing"], res["target"]
    print(f"IG (50 steps, batch 1) on {t['examples']} examples: {t['seconds']:.1f} s wall-clock "
          f"({t['ig_attribution_seconds']:.1f} s in attributions)")
    print(f"targets: IG >= {TARGET_RATIO:g}x random {'met' if tg['ig_met'] else 'not met'}; "
          f"100 examples under {TARGET_SECONDS:g} s {'met' if tg['time_met'] else 'not met'}")
    for s in (res.get("drift") or {}).get("methods", {}).values():
        print(s["sentence"])
    print(f"results in {out}")


if __name__ == "__main__":
    main()
