"""`python -m supremum.pipeline_worker` < spec.json: one pipeline stage and its evaluations in a
fresh process (a local worker or a Ray task); prints one JSON line. The spec is JSON written by
our own driver (supremum.pipeline.run)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from supremum.errors import UserError


def main() -> None:
    try:
        _stage()
    except UserError as e:  # the driver shows the last stderr line: keep it the one-line error
        sys.stderr.write(f"{e}\n")
        raise SystemExit(2) from None


def _stage() -> None:
    import torch

    from supremum.artifact import open_artifact
    from supremum.pipeline import PipelineConfig, evaluate_stage, run_stage
    from supremum.store import Store

    spec = json.loads(sys.stdin.read())
    torch.set_num_threads(spec["threads"])
    cfg = PipelineConfig.model_validate(spec["recipe"])
    stage = next(s for s in cfg.stages if s.id == spec["stage"])
    store = Store(spec["store"])
    parent = open_artifact(spec["parent"]) if spec["parent"] else None
    art = run_stage(cfg, stage, parent, Path(spec["output"]), store)
    evaluated = evaluate_stage(cfg, art, store, lambda msg: None)
    sys.stdout.write(json.dumps({"artifact": str(art.path), "evaluated": evaluated}) + "\n")


if __name__ == "__main__":
    main()
