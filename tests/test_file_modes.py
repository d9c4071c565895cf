"""What supremum writes is as readable as any file the user creates: atomic writes go through
private temporaries (mkstemp 0600, mkdtemp 0700) but end with the modes the umask allows."""

import os
import stat

import pytest
from test_frontier import record_eval

from supremum.artifact import save_artifact
from supremum.frontier.report import write_report
from supremum.fsutil import write_json
from supremum.models import load_model
from supremum.store import Store


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(p) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


def test_artifact_dir_and_its_files_get_the_umask_modes(tmp_path, umask_022):
    model, tok = load_model("tiny-bert", "classification", label_names=["neg", "pos"])
    out = tmp_path / "art"
    art = save_artifact(model, tok, out, task="text-classification", label_names=["neg", "pos"],
                        base_model="tiny-bert", config={}, artifact_id="modes0000001")
    art.record_metrics("eval", {"accuracy": 0.5})
    assert mode(out) == 0o755
    files = [p for p in out.rglob("*") if p.is_file()]
    assert {"manifest.json", "metrics.json", "model.safetensors"} <= {p.name for p in files}
    assert {p.name: mode(p) for p in files} == {p.name: 0o644 for p in files}
    assert all(mode(p) == 0o755 for p in out.rglob("*") if p.is_dir())


def test_report_and_json_files_get_the_umask_modes(tmp_path, umask_022):
    record_eval(Store(), "r1", "fast", 0.85, 2.0)
    page = write_report(tmp_path / "report.html")
    assert mode(page) == 0o644
    os.umask(0o077)  # a stricter umask is kept too
    write_json(tmp_path / "private.json", {"a": 1})
    assert mode(tmp_path / "private.json") == 0o600
