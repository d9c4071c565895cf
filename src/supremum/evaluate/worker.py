"""`python -m supremum.evaluate.worker` < spec.json: one evaluation in a fresh process (see
`evaluate_in_subprocess`). The spec is JSON written by our own parent process."""

from __future__ import annotations

import json
import sys


def main() -> None:
    from supremum.artifact import open_artifact
    from supremum.config import DataConfig, EvalConfig
    from supremum.evaluate.stage import evaluate
    from supremum.store import Store
    from supremum.tracking import TrackingConfig

    spec = json.loads(sys.stdin.read())
    tracking = TrackingConfig(**spec["tracking"]) if spec.get("tracking") else None
    evaluate(open_artifact(spec["artifact"]), DataConfig(**spec["data"]), EvalConfig(**spec["eval"]),
             store=Store(spec["store"]), command="supremum run (evaluation)", tracking=tracking)


if __name__ == "__main__":
    main()
