"""Peak memory of an evaluation belongs to the evaluated artifact alone: the same artifact reports
the same peak when evaluated from a small process and from one that holds 1 GiB (a pipeline that
trained first), though Linux carries the parent's resident size into a child's ru_maxrss."""

import json
import subprocess
import sys
import textwrap

import pytest

from supremum.train.config import FinetuneConfig
from supremum.train.finetune import finetune

MEASURE = textwrap.dedent("""
    import json, sys
    import numpy as np
    held = np.ones(int(sys.argv[3]) * 2**20 // 8)  # written, so resident
    from supremum.artifact import open_artifact
    from supremum.config import DataConfig, EvalConfig
    from supremum.evaluate.stage import evaluate_in_subprocess
    from supremum.evaluate.speed import peak_rss_mb
    from supremum.store import Store
    art = open_artifact(sys.argv[1])
    evaluate_in_subprocess(art, DataConfig(path=sys.argv[2]), EvalConfig(warmup=1, repeats=3), Store())
    print(json.dumps({"parent_peak_mb": peak_rss_mb(), "cost": open_artifact(sys.argv[1]).metrics}))
""")


def _measure(art, data, hold_mb: int) -> tuple[float, float]:
    p = subprocess.run([sys.executable, "-c", MEASURE, str(art), str(data), str(hold_mb)], capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    out = json.loads(p.stdout.strip().splitlines()[-1])
    return out["parent_peak_mb"], out["cost"][f"{data.name}:dev"]["cost"]["peak_rss_mb"]


def test_an_evaluation_reports_its_own_peak_memory_not_its_parents(csv_data, tmp_path):
    res = finetune(FinetuneConfig(model={"name": "tiny-bert"}, data={"path": str(csv_data)},
                                  train={"max_steps": 2}, output=str(tmp_path / "art")), progress=False)
    small_parent, alone = _measure(res.artifact.path, csv_data, 0)
    big_parent, in_pipeline = _measure(res.artifact.path, csv_data, 1024)
    assert big_parent > small_parent + 1000  # the parent did hold 1 GiB when it started the worker
    assert in_pipeline == pytest.approx(alone, rel=0.15)
    assert alone < 1000
