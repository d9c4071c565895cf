import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

POS = ["great", "good", "lovely", "superb", "fine", "brilliant"]
NEG = ["bad", "awful", "poor", "boring", "weak", "dull"]


def sentiment_rows(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """A task a 2-layer character model learns in a few dozen steps: every word but the
    number carries the label."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = rng.choice(["pos", "neg"])
        words = rng.choices(POS if label == "pos" else NEG, k=3)
        rows.append((f"{' '.join(words)} {i}", label))
    return rows


def write_csv(path: Path, rows, header=("text", "label"), sep=","):
    lines = [sep.join(header)] + [sep.join(r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("SUPREMUM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SUPREMUM_CACHE", str(tmp_path / "cache"))
    import torch

    torch.set_num_threads(1)


@pytest.fixture
def csv_data(tmp_path) -> Path:
    return write_csv(tmp_path / "reviews.csv", sentiment_rows(240))


@pytest.fixture
def split_dir(tmp_path) -> Path:
    d = tmp_path / "splits"
    d.mkdir()
    write_csv(d / "train.tsv", sentiment_rows(200, 1), ("sentence", "label"), "\t")
    write_csv(d / "dev.tsv", sentiment_rows(40, 2), ("sentence", "label"), "\t")
    write_csv(d / "test.tsv", sentiment_rows(40, 3), ("sentence", "label"), "\t")
    return d


def run_cli(*args: str, env: dict | None = None, check: bool = False) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "supremum", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def evaluated_pair(data: Path, tmp_path: Path, method: str) -> tuple[Path, Path]:
    """A tiny fine-tune and one compression of it, both evaluated with speed: a store that has
    a frontier."""
    parent, child = tmp_path / "parent", tmp_path / "child"
    run_cli("finetune", "--model", "tiny-bert", "--data", str(data), "--max-steps", "10", "--lr", "3e-3",
            "--output", str(parent), check=True)
    run_cli("compress", str(parent), "--method", method, "--output", str(child), check=True)
    for a in (parent, child):
        run_cli("eval", str(a), "--repeats", "3", check=True)
    return parent, child


TEXTS = ["great good fine 1", "awful dull poor 2", "lovely", "bad weak boring superb 77"]
PREDICT = """
import json, sys
from supremum.artifact import open_artifact, load_artifact_model
from supremum.infer import predict_logits
model, tok = load_artifact_model(open_artifact(sys.argv[1]))
ids = tok(json.loads(sys.argv[2]), truncation=True, max_length=128)["input_ids"]
print(json.dumps(predict_logits(model, ids, tok.pad_token_id).tolist()))
"""


def logits(art):
    from supremum.artifact import load_artifact_model
    from supremum.infer import predict_logits

    model, tok = load_artifact_model(art)
    return predict_logits(model, tok(TEXTS)["input_ids"], tok.pad_token_id)


def logits_fresh_process(path):
    import numpy as np

    out = subprocess.run([sys.executable, "-c", PREDICT, str(path), json.dumps(TEXTS)],
                         capture_output=True, text=True, check=True)
    return np.asarray(json.loads(out.stdout))


class Watched(list):
    """Labels that record every position read (iterating them all is a failure): a simulation's
    oracle may reveal only the rows it was asked for."""

    def __init__(self, xs):
        super().__init__(xs)
        self.read: list[int] = []

    def __getitem__(self, i):
        self.read.append(i)
        return super().__getitem__(i)

    def __iter__(self):
        raise AssertionError("the labels were iterated")
