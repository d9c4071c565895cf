"""Rich progress bar for training: loss, learning rate and samples/s."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class TrainProgress:
    def __init__(self, total: int, enabled: bool = True) -> None:
        self.enabled = enabled
        self.progress = Progress(
            TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}  lr {task.fields[lr]:.2e}  "
                       "{task.fields[sps]:.1f} samples/s"),
            TimeElapsedColumn(), TimeRemainingColumn(),
            console=Console(stderr=True), disable=not enabled, transient=False)
        self.task = self.progress.add_task("train", total=total, loss=0.0, lr=0.0, sps=0.0)

    def __enter__(self) -> TrainProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)

    def update(self, info: dict) -> None:
        if self.enabled:
            self.progress.update(self.task, completed=info["step"], loss=info["loss"], lr=info["lr"],
                                 sps=info["samples_per_s"])
