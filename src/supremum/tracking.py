"""Optional mirrors of training and evaluation metrics: TensorBoard event files, MLflow and
Weights & Biases (offline). The SQLite store stays the source of truth; these only copy numbers
into the tools a team already watches, so a tracker failing to import is a clear error, not a
silent gap.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from supremum.errors import UserError


class TrackingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tensorboard: bool = Field(False, description="write TensorBoard event files")
    mlflow: bool = Field(False, description="log to MLflow (local file store by default)")
    wandb: bool = Field(False, description="log to Weights & Biases in offline mode")
    dir: str | None = Field(None, description="where event files and offline runs go "
                            "(default: $SUPREMUM_HOME/tracking)")
    mlflow_uri: str | None = Field(None, description="MLflow tracking URI (default: file store under dir)")
    experiment: str = Field("supremum", description="MLflow experiment / W&B project name")

    @property
    def enabled(self) -> bool:
        return self.tensorboard or self.mlflow or self.wandb


def parse_track(spec: str | None) -> TrackingConfig:
    """`--track tensorboard,mlflow,wandb` on the command line."""
    names = [s.strip() for s in (spec or "").split(",") if s.strip()]
    bad = [n for n in names if n not in ("tensorboard", "mlflow", "wandb")]
    if bad:
        raise UserError(f"unknown tracker {bad[0]!r}", "use tensorboard, mlflow and/or wandb, comma-separated")
    return TrackingConfig(**{n: True for n in names})


class Tracker:
    """One run mirrored to every enabled backend; `log` takes flat name -> number dicts."""

    def __init__(self, cfg: TrackingConfig | None, root: Path, run_name: str, params: dict):
        self._sinks: list = []
        if cfg is None or not cfg.enabled:
            return
        base = Path(cfg.dir) if cfg.dir else root / "tracking"
        if cfg.tensorboard:
            self._sinks.append(_TensorBoard(base / "tensorboard" / run_name))
        if cfg.mlflow:
            self._sinks.append(_MLflow(cfg.mlflow_uri or (base / "mlruns").resolve().as_uri(),
                                       cfg.experiment, run_name, params))
        if cfg.wandb:
            self._sinks.append(_Wandb(base, cfg.experiment, run_name, params))

    def log(self, metrics: dict, step: int | None = None) -> None:
        flat = {k: float(v) for k, v in flatten(metrics).items()}
        if flat:
            for s in self._sinks:
                s.log(flat, step)

    def close(self) -> None:
        for s in self._sinks:
            s.close()
        self._sinks = []

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def flatten(d: dict, prefix: str = "") -> dict:
    """Numeric leaves of nested dicts as 'a/b/c' names; lists and strings are not metrics."""
    out = {}
    for k, v in d.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, name + "/"))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[name] = v
    return out


def _need(module: str, package: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise UserError(f"tracking needs {package}, which is not installed",
                        f"pip install {package} (or supremum[tracking]), or switch it off") from None


class _TensorBoard:
    def __init__(self, path: Path):
        _need("tensorboard", "tensorboard")
        from torch.utils.tensorboard import SummaryWriter

        self.w = SummaryWriter(str(path))

    def log(self, m: dict, step: int | None) -> None:
        for k, v in m.items():
            self.w.add_scalar(k, v, step)

    def close(self) -> None:
        self.w.close()


class _MLflow:
    def __init__(self, uri: str, experiment: str, run_name: str, params: dict):
        # MLflow 3 refuses its file store unless opted in; a local file store is what a
        # single-machine user wants by default (no server, nothing to migrate).
        if uri.startswith("file:"):
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        mlflow = _need("mlflow", "mlflow-skinny")
        self.client = mlflow.tracking.MlflowClient(uri)
        exp = self.client.get_experiment_by_name(experiment)
        exp_id = exp.experiment_id if exp else self.client.create_experiment(experiment)
        self.run_id = self.client.create_run(exp_id, run_name=run_name).info.run_id
        for k, v in flatten_params(params).items():
            self.client.log_param(self.run_id, k, v)

    def log(self, m: dict, step: int | None) -> None:
        import time

        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, v, ts, step or 0) for k, v in m.items()])

    def close(self) -> None:
        self.client.set_terminated(self.run_id)


class _Wandb:
    def __init__(self, base: Path, project: str, run_name: str, params: dict):
        os.environ.setdefault("WANDB_SILENT", "true")
        wandb = _need("wandb", "wandb")
        base.mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(mode="offline", dir=str(base), project=project, name=run_name,
                              config=params, reinit="create_new")

    def log(self, m: dict, step: int | None) -> None:
        self.run.log(m, step=step)

    def close(self) -> None:
        self.run.finish()


def flatten_params(d: dict, prefix: str = "") -> dict:
    """Every leaf of a config as a string parameter (MLflow caps values at 6000 characters)."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten_params(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = str(v)[:6000]
    return out
