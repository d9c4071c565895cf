"""Where the training loop is: with the weights, optimizer and RNGs, enough to resume it exactly.

Checkpoints hold it as the JSON object `state.json` (its fields by name, plus the RNG states the
checkpoint adds), the same object the loop kept as a dict before this class, so those
checkpoints resume as they are.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields


@dataclass
class TrainState:
    step: int = 0  # optimizer steps taken
    epoch: int = 0
    batch_in_epoch: int = 0  # optimizer steps taken in this epoch: where a resumed epoch continues
    best_score: float | None = None  # the best dev score so far (higher is better)
    best_step: int | None = None
    bad_evals: int = 0  # evaluations since the best one (early stopping counts them)
    evals: list[dict] = field(default_factory=list)  # {"step": ..., the scorer's record}
    log: list[dict] = field(default_factory=list)  # {"step", "loss", "lr"} per optimizer step
    train_seconds: float = 0.0  # time inside optimizer steps (not evaluation or checkpoints)
    samples: int = 0
    stopped_early: bool = False
    devices: list[str] = field(default_factory=list)  # where it trained, one entry per device change
    precision: dict = field(default_factory=dict)  # requested, resolved, reason (train.precision)
    compile: dict = field(default_factory=dict)  # train.compile: graphs compiled, first step's seconds

    def to_json(self) -> dict:
        """The fields by name; `devices`, `precision` and `compile` only once the loop has set them
        (a fresh state is the old dict)."""
        d = asdict(self)
        for key in ("devices", "precision", "compile"):
            if not d[key]:
                del d[key]
        return d

    @classmethod
    def from_json(cls, d: dict) -> TrainState:
        """From `to_json`'s object or a checkpoint's; keys other than the fields (its RNG states)
        are not the loop's and are left out."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class TrainResult:
    """A finished training: its final state, the time inside optimizer steps (s), the examples
    seen and the dev evaluations."""

    state: TrainState
    train_seconds: float
    samples: int
    history: list[dict] = field(default_factory=list)

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.train_seconds if self.train_seconds else 0.0
