"""Metrics mirrored to TensorBoard, MLflow (local file store) and W&B (offline), read back."""

import json
import sys

import pytest
from conftest import run_cli

from supremum.errors import UserError
from supremum.store import Store
from supremum.tracking import TrackingConfig, parse_track
from supremum.train.config import FinetuneConfig
from supremum.train.finetune import finetune


def test_finetune_metrics_reach_every_tracker(csv_data, tmp_path):
    pytest.importorskip("tensorboard")
    pytest.importorskip("mlflow")
    pytest.importorskip("wandb")
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    track = tmp_path / "track"
    cfg = FinetuneConfig(model={"name": "tiny-bert"}, data={"path": str(csv_data)},
                         train={"max_steps": 6, "eval_every": 3, "lr": 3e-3},
                         tracking={"tensorboard": True, "mlflow": True, "wandb": True, "dir": str(track)})
    res = finetune(cfg, progress=False)
    losses = [x["loss"] for x in res.metrics["loss_curve"]]

    ev = EventAccumulator(str(track / "tensorboard" / f"finetune-{res.run_id}"))
    ev.Reload()
    tb = [e.value for e in ev.Scalars("train/loss")]
    assert tb == pytest.approx(losses, rel=1e-6)
    assert [e.step for e in ev.Scalars("train/dev_accuracy")] == [3, 6]

    client = MlflowClient((track / "mlruns").resolve().as_uri())
    run = client.search_runs([client.get_experiment_by_name("supremum").experiment_id])[0]
    assert run.info.run_name == f"finetune-{res.run_id}" and run.info.status == "FINISHED"
    assert run.data.params["model.name"] == "tiny-bert"
    hist = client.get_metric_history(run.info.run_id, "train/loss")
    assert [m.value for m in sorted(hist, key=lambda m: m.step)] == pytest.approx(losses, rel=1e-6)
    accs = [m.value for m in client.get_metric_history(run.info.run_id, "train/dev_accuracy")]
    assert accs and max(accs) == pytest.approx(res.metrics["dev_accuracy"])

    offline = list((track / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(offline) == 1 and offline[0].stat().st_size > 0
    # the store stays the source of truth: the run is there with the same metrics
    assert Store().get_run(res.run_id)["metrics"]["dev_accuracy"] == res.metrics["dev_accuracy"]


def test_eval_track_flag_writes_tensorboard(csv_data, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    art = tmp_path / "a"
    run_cli("finetune", "--model", "tiny-bert", "--data", str(csv_data), "--max-steps", "2",
            "--output", str(art), "--no-progress", check=True)
    out = json.loads(run_cli("eval", str(art), "--no-speed", "--track", "tensorboard", "--json",
                             check=True).stdout)
    runs = list((Store().root / "tracking" / "tensorboard").glob("eval-*"))
    assert len(runs) == 1
    ev = EventAccumulator(str(runs[0]))
    ev.Reload()
    assert ev.Scalars("eval/dev/accuracy")[0].value == pytest.approx(out["accuracy"])
    bad = run_cli("eval", str(art), "--no-speed", "--track", "neptune")
    assert bad.returncode == 2 and "unknown tracker 'neptune'" in bad.stderr


def test_missing_tracker_package_is_a_clear_error(monkeypatch, tmp_path):
    from supremum.tracking import Tracker

    monkeypatch.setitem(sys.modules, "wandb", None)  # import fails as if not installed
    with pytest.raises(UserError, match="tracking needs wandb"):
        Tracker(TrackingConfig(wandb=True), tmp_path, "r", {})
    assert parse_track("tensorboard, mlflow") == TrackingConfig(tensorboard=True, mlflow=True)
