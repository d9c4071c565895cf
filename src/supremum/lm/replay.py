"""Replay against forgetting: blocks of general text mixed into a language model's training set
(experience replay, as in continual learning; Scialom et al. 2022 keep 1% of earlier data when
fine-tuning T0 on new tasks). The share is of training rows: with replay r and n task rows,
round(n * r / (1 - r)) blocks of the replay text are added, so a seeded shuffle puts about r of
every batch's rows from the replay text."""

from __future__ import annotations

import numpy as np

from supremum.config import TrainConfig
from supremum.data.batching import Split
from supremum.errors import UserError
from supremum.lm.data import pack
from supremum.lm.forgetting import REPLAYED, reference_file, reference_ids


def replay_count(n_task: int, share: float) -> int:
    """Replay rows to add to `n_task` task rows so they are `share` of all rows."""
    return round(n_task * share / (1 - share))


def mix_replay(split: Split, tok, cfg: TrainConfig, block: int) -> tuple[Split, dict]:
    """`split` with replay blocks of `block` tokens (every token predicted) appended: the first
    blocks of a seeded (cfg.seed) permutation of the replay text's blocks. UserError when the
    replay text has too few blocks."""
    want = replay_count(len(split.ids), cfg.replay)
    blocks = pack(reference_ids(tok, cfg.replay_data, 2**62, REPLAYED), block)
    if want > len(blocks.ids):
        raise UserError(f"train.replay={cfg.replay} needs {want} blocks of {block} tokens from {cfg.replay_data}, "
                        f"which has {len(blocks.ids)}", "lower train.replay or give more replay text")
    keep = np.sort(np.random.default_rng(cfg.seed).permutation(len(blocks.ids))[:want])
    mixed = Split(split.ids + [blocks.ids[i] for i in keep], split.labels + [blocks.labels[i] for i in keep])
    info = {"data": cfg.replay_data, "file": str(reference_file(cfg.replay_data, REPLAYED)), "share": cfg.replay,
            "task_rows": len(split.ids), "replay_rows": want, "tokens_per_block": block}
    return mixed, info
