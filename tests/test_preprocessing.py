"""An artifact is run the way it was trained (max length from the artifact, one resolver), a file
that is not its training data is scored whole, and a max length the model cannot embed is one
line with exit 2."""

import random
import shutil

import pytest
from conftest import NEG, POS, run_cli, write_csv

from supremum.config import DataConfig, EvalConfig
from supremum.data import load_data
from supremum.errors import UserError
from supremum.evaluate.stage import evaluate, evaluate_model
from supremum.preprocessing import data_config_for, position_limit, preprocessing_for
from supremum.store import Store
from supremum.train.config import FinetuneConfig

FILLER = ["the", "movie", "was", "seen", "on", "a", "sunday", "with", "friends", "at", "old", "cinema"]
MAX_LENGTH = 192


def long_rows(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """~170 tokens each (the tiny tokenizer spells words letter by letter) with the sentiment
    words at the end, past token 128: truncating at the default length cuts them off."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = rng.choice(["pos", "neg"])
        filler = []
        while sum(map(len, filler)) < 140:
            filler.append(rng.choice(FILLER))
        rows.append((" ".join(filler + rng.choices(POS if label == "pos" else NEG, k=3)) + f" {i}", label))
    return rows


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from supremum.train.finetune import finetune

    d = tmp_path_factory.mktemp("prep")
    data = write_csv(d / "train.csv", long_rows(160))
    cfg = FinetuneConfig(model={"name": "tiny-bert"}, data={"path": str(data), "max_length": MAX_LENGTH},
                         train={"max_steps": 30, "batch_size": 16, "lr": 3e-3, "seed": 0}, output=str(d / "art"))
    res = finetune(cfg, store=Store(d / "home"), progress=False)
    return res.artifact, data


def _eval(art, path, split=None, **eval_options):
    return evaluate(art, data_config_for(art, str(path)), EvalConfig(split=split, speed=False, **eval_options),
                    store=Store(art.path.parent / "home"))


def test_texts_are_long_enough_that_the_max_length_matters(trained):
    art, data = trained
    prep = preprocessing_for(art)
    assert prep.max_length == MAX_LENGTH and prep.truncation_side == "right" and prep.position_limit == 512
    from supremum.artifact import load_artifact_model

    _, tok = load_artifact_model(art)
    lengths = [len(ids) for ids in tok([t for t, _ in long_rows(20)])["input_ids"]]
    assert min(lengths) > 150 and max(lengths) < MAX_LENGTH


def test_renamed_copy_of_the_training_file_scores_the_same(trained, tmp_path):
    art, data = trained
    orig = _eval(art, data, "test")
    copy = tmp_path / "renamed.csv"
    shutil.copy(data, copy)
    same = _eval(art, copy, "test")
    assert same["examples"] == orig["examples"] == 16
    assert same["accuracy"] == orig["accuracy"] and same["mean_confidence"] == orig["mean_confidence"]
    assert same["preprocessing"]["max_length"] == MAX_LENGTH and same["preprocessing"]["overridden"] == []
    assert _eval(art, copy)["split"] == "dev"  # the training source keeps its splits, dev by default
    # the texts are long enough that the old fallback (128 tokens) gives other numbers
    cut = _eval(art, copy, "test", max_length=128)
    assert cut["preprocessing"] == {**same["preprocessing"], "max_length": 128, "overridden": ["max_length"]}
    assert cut["mean_confidence"] != orig["mean_confidence"]


def test_a_new_file_is_scored_whole_with_the_trained_max_length(trained, tmp_path):
    art, data = trained
    orig = _eval(art, data, "test")
    held = load_data(DataConfig(path=str(data))).split("test")  # the rows of the training test split
    names = art.label_names
    rows = [(t, names[y]) for t, y in zip(held["text"], held["label"], strict=True)]
    new = write_csv(tmp_path / "new.csv", rows)
    m = _eval(art, new)
    assert m["split"] == "all" and m["examples"] == len(held) == 16
    assert m["scored"] == "16 rows of new.csv (the whole file)"
    assert m["accuracy"] == orig["accuracy"] and m["mean_confidence"] == pytest.approx(orig["mean_confidence"])
    assert art.metrics["new.csv:all"]["examples"] == 16


def test_cli_scores_a_small_new_file_whole_and_refuses_a_split_of_it(trained, tmp_path):
    art, _ = trained
    nine = write_csv(tmp_path / "nine.csv", long_rows(9, seed=5))
    proc = run_cli("eval", str(art.path), "--data", str(nine), "--no-speed", check=True)
    line = f"scored 9 rows of nine.csv (the whole file); max length {MAX_LENGTH} tokens (as trained)"
    assert line in proc.stdout
    proc = run_cli("eval", str(art.path), "--data", str(nine), "--split", "test", "--no-speed")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert f"{nine} is not the data artifact {art.id} was trained on, so it has no 'test' split" in proc.stderr


def test_sensitivity_scores_a_new_file_whole(trained, tmp_path):
    from supremum.compress.sensitivity import sensitivity

    art, _ = trained
    nine = write_csv(tmp_path / "nine.csv", long_rows(9, seed=5))
    res = sensitivity(art, data_config_for(art, str(nine)), None, ("int8",))
    assert res["split"] == "all" and res["examples"] == 9


def test_max_length_beyond_the_model_positions_is_one_line(trained, tmp_path):
    art, data = trained
    want = "--max-length 1024 is more than {} can take: it embeds at most 512 token positions"
    for args, what in [(("eval", str(art.path), "--max-length", "1024", "--no-speed"), f"artifact {art.id}"),
                       (("finetune", "--model", "tiny-bert", "--data", str(data), "--max-length", "1024",
                         "--max-steps", "1", "--output", str(tmp_path / "x")), "model tiny-bert")]:
        proc = run_cli(*args)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert proc.stderr.strip().splitlines() == [
            f"error: {want.format(what)} (use --max-length 512 or less)"], proc.stderr
    assert not (tmp_path / "x").exists()


def test_position_limit_of_model_configs():
    assert position_limit({"model_type": "bert", "max_position_embeddings": 512}) == 512
    assert position_limit({"model_type": "roberta", "max_position_embeddings": 514, "pad_token_id": 1}) == 512
    assert position_limit({"model_type": "gpt2", "n_positions": 1024}) == 1024
    assert position_limit({"max_position_embeddings": 2048}, tokenizer_max=512) == 512
    assert position_limit({"max_position_embeddings": 2048}, tokenizer_max=int(1e30)) == 2048
    assert position_limit({}) is None


def test_compression_data_is_tokenized_as_trained(trained):
    from supremum.artifact import load_artifact_model
    from supremum.compress.stage import Context

    art, data = trained
    _, tok = load_artifact_model(art)
    ctx = Context(art, tok, DataConfig(path=str(data)))  # a DataConfig left at the default 128
    assert max(len(ids) for ids in ctx.encoded("dev").ids) > 128


def test_ensemble_members_must_share_the_max_length(trained, tmp_path):
    from supremum.ensemble import make_ensemble
    from supremum.train.finetune import finetune

    art, data = trained
    cfg = FinetuneConfig(model={"name": "tiny-bert"}, data={"path": str(data)},
                         train={"max_steps": 1, "batch_size": 4}, output=str(tmp_path / "short"))
    other = finetune(cfg, store=Store(tmp_path / "home"), progress=False).artifact
    with pytest.raises(UserError, match=f"{other.id} was trained on 128 tokens .* but {art.id} on {MAX_LENGTH}"):
        make_ensemble([art, other], tmp_path / "ens", store=Store(tmp_path / "home"))


# ---- causal LMs ------------------------------------------------------------------------------

def _text(n_lines: int, seed: int) -> str:
    rng = random.Random(seed)
    words = "the king shall speak of love and war to thee my lord".split()
    return "\n".join(" ".join(rng.choice(words) for _ in range(6)) + "." for _ in range(n_lines)) + "\n"


def test_base_lm_scores_the_whole_text(tmp_path):
    book = tmp_path / "book.txt"
    book.write_text(_text(100, 1))
    n = len(book.read_bytes())  # one token per byte; the stream ends with end-of-sequence
    cfg = EvalConfig(speed=False, new_tokens=2)
    m = evaluate_model("tiny-llama", DataConfig(path=str(book)), cfg, store=Store(tmp_path / "home"))
    assert m["split"] == "all" and m["perplexity_detail"]["tokens"] == n
    assert m["scored"] == f"{n:,} tokens of book.txt (the whole file)"
    part = evaluate_model("tiny-llama", DataConfig(path=str(book)), cfg.model_copy(update={"split": "test"}),
                          store=Store(tmp_path / "home"))  # as fine-tuning on it would cut it
    assert part["perplexity_detail"]["tokens"] < n // 5


def test_lm_artifact_uses_its_block_length_on_any_text(tmp_path):
    from supremum.train.finetune import finetune

    corpus = tmp_path / "corpus.txt"
    corpus.write_text(_text(200, 0))
    cfg = FinetuneConfig(model={"name": "tiny-llama"}, data={"path": str(corpus), "max_length": 48},
                         train={"max_steps": 2, "batch_size": 4, "seed": 0}, output=str(tmp_path / "lm"))
    art = finetune(cfg, store=Store(tmp_path / "home"), progress=False).artifact
    copy = tmp_path / "copy.txt"
    shutil.copy(corpus, copy)
    orig, same = (_eval(art, p, "test", new_tokens=2) for p in (corpus, copy))
    assert same["perplexity"] == orig["perplexity"] and same["perplexity_detail"]["window"] == 48
    other = tmp_path / "other.txt"
    other.write_text(_text(30, 7))
    m = _eval(art, other, new_tokens=2)
    assert m["split"] == "all" and m["perplexity_detail"]["window"] == 48
    assert m["perplexity_detail"]["tokens"] == len(other.read_bytes())
    with pytest.raises(UserError, match="--window 600 is more than the model can take: it embeds at most 512"):
        _eval(art, other, window=600, new_tokens=2)
