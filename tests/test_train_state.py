"""The training loop's state is a `TrainState` (issue 18): checkpoints hold it as the same JSON
object the loop kept as a dict before, so a checkpoint written then resumes to the same weights."""

import json

import pytest
import torch
from conftest import sentiment_rows

from supremum.config import TrainConfig
from supremum.models import load_model
from supremum.train.loop import Split, train
from supremum.train.state import TrainState

# The dict the loop started from before TrainState, key for key (train.loop.fresh_state).
OLD_FRESH = {"step": 0, "epoch": 0, "batch_in_epoch": 0, "best_score": None, "best_step": None,
             "bad_evals": 0, "evals": [], "log": [], "train_seconds": 0.0, "samples": 0,
             "stopped_early": False}


class Stop(Exception):
    pass


def _setup():
    torch.manual_seed(0)
    model, tok = load_model("tiny-bert", "classification", label_names=["neg", "pos"])
    rows = sentiment_rows(48)
    ids = [tok(t)["input_ids"] for t, _ in rows]
    labels = [int(lbl == "pos") for _, lbl in rows]
    return model, tok, Split(ids[:32], labels[:32]), Split(ids[32:], labels[32:])


def test_state_json_is_the_old_dict():
    assert TrainState().to_json() == OLD_FRESH and list(TrainState().to_json()) == list(OLD_FRESH)
    st = TrainState.from_json({**OLD_FRESH, "step": 3, "log": [{"step": 3}], "rng": {"python": []}})
    assert st == TrainState(step=3, log=[{"step": 3}])


def test_an_old_style_checkpoint_resumes_to_the_same_weights(tmp_path):
    # bf16=False: the configs of old checkpoints all held train.bf16
    cfg = TrainConfig(max_steps=6, batch_size=8, lr=1e-3, eval_every=2, checkpoint_every=2, threads=1, bf16=False)
    model, tok, tr, dev = _setup()
    ref, _ = train(model, tr, dev, cfg, tok.pad_token_id, ckpt_dir=tmp_path / "ref")
    want = {k: v.clone() for k, v in model.state_dict().items()}

    def stop_at_5(rec):  # after the checkpoint at step 4
        if rec["step"] == 5:
            raise Stop

    model, tok, tr, dev = _setup()
    with pytest.raises(Stop):
        train(model, tr, dev, cfg, tok.pad_token_id, ckpt_dir=tmp_path / "b", on_step=stop_at_5)
    path = tmp_path / "b" / "state.json"
    new = json.loads(path.read_text())
    assert new["step"] == 4 and set(new) == {*OLD_FRESH, "rng", "devices", "precision"}
    assert new["devices"] == ["cpu"]
    assert new["precision"] == {"requested": "fp32", "resolved": "fp32", "reason": "as configured"}
    # as the dict-based loop wrote it: its keys in its order, the first loss marked to show it resumed
    old = {k: new[k] for k in [*OLD_FRESH, "rng"]}
    old["log"][0]["loss"] = 123.0
    path.write_text(json.dumps(old))

    model, tok, tr, dev = _setup()
    got, _ = train(model, tr, dev, cfg, tok.pad_token_id, ckpt_dir=tmp_path / "b", resume=True)
    assert all(torch.equal(want[k], v) for k, v in model.state_dict().items())
    assert got.state.log[0]["loss"] == 123.0 and got.state.log[1:] == ref.state.log[1:]
    assert (got.state.step, got.state.evals, got.state.best_score, got.state.best_step) == (
        6, ref.state.evals, ref.state.best_score, ref.state.best_step)
