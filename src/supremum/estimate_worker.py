"""Worker of the pipeline time estimate: `python -m supremum.estimate_worker` measures one
pipeline's model on this machine in a fresh process (its loading costs what a stage's worker
pays). It sits above `pipeline` in the layers because it validates a pipeline recipe."""

from __future__ import annotations

import json
import sys
import time


def main() -> None:
    """Spec {"recipe": pipeline config, "threads": n} on stdin; prints the measurements as one JSON line."""
    from supremum.errors import UserError
    from supremum.estimate import measure_now
    from supremum.pipeline import PipelineConfig

    t0 = time.perf_counter()
    spec = json.loads(sys.stdin.read())
    try:
        out = measure_now(PipelineConfig.model_validate(spec["recipe"]), spec["threads"])
    except UserError as e:  # the driver shows the last stderr line
        sys.stderr.write(f"{e}\n")
        raise SystemExit(2) from None
    sys.stdout.write(json.dumps({**out, "worked_s": time.perf_counter() - t0}) + "\n")


if __name__ == "__main__":
    main()
