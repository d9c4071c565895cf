"""`python -m supremum.limit.worker`: one scale-sweep run in its own process (a JSON spec on stdin,
the result as JSON on stdout), so parallel runs each own their threads and their timing."""

from __future__ import annotations

import json
import sys

import numpy as np
import torch

from supremum.limit.train import Shape, train_run, windows_of


def main() -> None:
    spec = json.loads(sys.stdin.read())
    torch.set_num_threads(spec["threads"])
    train = np.load(spec["train"], allow_pickle=False)
    heldout = windows_of(np.load(spec["heldout"], allow_pickle=False), spec["ctx"])
    res = train_run(Shape(spec["d"], spec["layers"]), train, heldout, vocab=spec["vocab"], tokens=spec["tokens"],
                    ctx=spec["ctx"], batch_tokens=spec["batch_tokens"], seed=spec["seed"], skip=spec["skip"])
    sys.stdout.write(json.dumps(res))


if __name__ == "__main__":
    main()
