"""Causal LMs judged by their answers and by what they forgot (issue 22 parts 3 and 4): generation
metrics against sacrebleu/rouge-score, the stored answers, reference perplexity against two
perplexity runs, pick --max-forgetting, train.replay's share and the unchanged config hash."""

import json
import random

import pytest
import sacrebleu
from conftest import run_cli
from rouge_score import rouge_scorer

from supremum.config import DataConfig, EvalConfig, TrainConfig
from supremum.lm.data import load_lm_data, pack, render
from supremum.lm.forgetting import REPLAYED, reference_ids
from supremum.lm.metrics import perplexity
from supremum.lm.quality import UnicodeWords, answer, generation_metrics
from supremum.models import load_model
from supremum.train.config import FinetuneConfig

WORDS = "the king shall speak of love and war to thee my lord".split()
OTHER = "river stone cloud seven glass winter orange paper engine forest".split()


@pytest.fixture
def pairs(tmp_path):
    p = tmp_path / "pairs.jsonl"
    with open(p, "w") as f:
        for i in range(30):
            f.write(json.dumps({"prompt": f"translate: {WORDS[i % 12]} {WORDS[(i * 5) % 12]}",
                                "response": f"{OTHER[i % 10]} {OTHER[(i * 3) % 10]}"}) + "\n")
    return p


def _text(path, words, lines, seed):
    rng = random.Random(seed)
    path.write_text("\n".join(" ".join(rng.choice(words) for _ in range(6)) + "." for _ in range(lines)) + "\n")
    return path


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny-llama", "causal-lm")


# ---- metrics ----------------------------------------------------------------------------

OUTS = ["Ein Mann fährt Fahrrad.", "Zwei Hunde spielen im Schnee", "Eine Frau liest.", "the cat sat"]
REFS = ["Ein Mann fährt Fahrrad.", "Zwei Hunde spielen im Park.", "Ein Kind schläft.", "the cat sat on the mat"]


def test_metrics_equal_sacrebleu_and_rouge_score_on_fixed_strings():
    m = generation_metrics(OUTS, REFS)
    assert m["exact_match"] == 0.25  # only the first answer equals its reference
    assert m["chrf"] == sacrebleu.corpus_chrf(OUTS, [REFS]).score
    assert m["bleu"] == sacrebleu.corpus_bleu(OUTS, [REFS]).score
    scorer = rouge_scorer.RougeScorer(["rougeL"], tokenizer=UnicodeWords())
    rouge = [scorer.score(r, o)["rougeL"].fmeasure for o, r in zip(OUTS, REFS, strict=True)]
    assert m["rouge_l"] == pytest.approx(100 * sum(rouge) / 4)
    # "the cat sat" vs "the cat sat on the mat": LCS 3 words, P 3/3, R 3/6, F = 2/3
    assert rouge[3] == pytest.approx(2 / 3)
    # ASCII text scores as with rouge-score's default tokenizer; German words stay whole
    plain = rouge_scorer.RougeScorer(["rougeL"])
    assert rouge[3] == plain.score(REFS[3], OUTS[3])["rougeL"].fmeasure
    assert UnicodeWords().tokenize("Männer fährt") == ["männer", "fährt"]
    assert 0 < m["chrf"] < 100 and 0 < m["bleu"] < 100


# ---- eval --generate ----------------------------------------------------------------------

def test_eval_generate_stores_every_prompt_reference_and_output(pairs, tiny, tmp_path):
    proc = run_cli("eval", "tiny-llama", "--data", str(pairs), "--split", "test", "--generate",
                   "--max-new-tokens", "5", "--new-tokens", "4", "--json", check=True)
    m = json.loads(proc.stdout)
    g = m["generation_quality"]
    rows = [json.loads(x) for x in open(g["outputs"], encoding="utf-8")]
    test = load_lm_data(DataConfig(path=str(pairs))).split("test")
    assert len(rows) == len(test) == g["examples"] == 3
    assert [r["prompt"] for r in rows] == [t["messages"][0]["content"] for t in test]
    assert [r["reference"] for r in rows] == [t["messages"][1]["content"] for t in test]
    model, tok = tiny
    for r, t in zip(rows, test, strict=True):  # the output is the model's greedy continuation
        ids = render(tok, t["messages"][:1], generation_prompt=True)
        import torch

        with torch.no_grad():
            got = model.generate(torch.tensor([ids]), max_new_tokens=5, do_sample=False,
                                 eos_token_id=tok.eos_token_id, pad_token_id=tok.eos_token_id)
        assert r["output"] == tok.decode(got[0, len(ids):], skip_special_tokens=True)
    outs, refs = [r["output"] for r in rows], [r["reference"] for r in rows]
    assert m["chrf"] == sacrebleu.corpus_chrf(outs, [refs]).score
    assert m["bleu"] == sacrebleu.corpus_bleu(outs, [refs]).score
    assert m["exact_match"] == sum(o.strip() == r.strip() for o, r in zip(outs, refs, strict=True)) / 3
    chrfs = [sacrebleu.sentence_chrf(o, [r]).score for o, r in zip(outs, refs, strict=True)]
    assert g["best"][0]["chrf"] == max(chrfs) and g["worst"][0]["chrf"] == min(chrfs)
    # the frontier ranks by chrf (higher is better) and the report shows the examples
    res = json.loads(run_cli("frontier", "--metric", "chrf", "--json", check=True).stdout)
    assert res["frontier"][0]["metrics"]["chrf"] == m["chrf"]
    pick = json.loads(run_cli("pick", "--metric", "chrf", "--json", check=True).stdout)
    assert pick["pick"]["metrics"]["chrf"] == m["chrf"]
    out = tmp_path / "r.md"
    run_cli("report", "--format", "md", "--metric", "chrf", "--output", str(out), check=True)
    text = out.read_text()
    assert "## Generated answers of tiny-llama (pytorch)" in text and g["outputs"] in text
    assert f"| best | {g['best'][0]['chrf']:.1f} |" in text


def test_sampling_is_seeded_and_top_p_near_zero_is_greedy(pairs, tiny):
    model, tok = tiny
    data = load_lm_data(DataConfig(path=str(pairs)))
    run = lambda **kw: [r["output"] for r in answer(  # noqa: E731
        model, tok, data, EvalConfig(max_new_tokens=6, **kw), "test", None)["generation_quality"]["best"]]
    greedy = run()
    assert run(temperature=1.0, seed=3) == run(temperature=1.0, seed=3)
    assert run(temperature=1.0, top_p=1e-9, seed=3) == greedy  # the nucleus is the argmax alone
    assert run(temperature=5.0, seed=1) != greedy  # a flat distribution over 256 tokens


def test_generate_on_plain_text_is_refused(tmp_path):
    from supremum.api import evaluate
    from supremum.errors import UserError

    corpus = _text(tmp_path / "c.txt", WORDS, 50, 0)
    with pytest.raises(UserError, match="--generate scores answers to prompts, and the data is plain text"):
        evaluate("tiny-llama", str(corpus), {"generate": True, "speed": False})


# ---- forgetting ---------------------------------------------------------------------------

def test_forgetting_equals_two_perplexity_runs(tmp_path):
    from supremum.artifact import load_artifact_model
    from supremum.train.finetune import finetune

    corpus, ref = _text(tmp_path / "c.txt", WORDS, 200, 0), _text(tmp_path / "ref.txt", OTHER, 60, 1)
    cfg = FinetuneConfig(model="tiny-llama", data={"path": str(corpus), "max_length": 32}, method="full",
                         train={"max_steps": 6, "batch_size": 8, "lr": 3e-3, "seed": 0},
                         output=str(tmp_path / "ft"))
    art = finetune(cfg, progress=False).artifact
    from supremum import api

    q = api.compress(art.path, {"method": "int8-dynamic"}, output=tmp_path / "q")
    ms = [api.evaluate(a, None, {"split": "test", "reference_data": str(ref), "reference_tokens": 300,
                                 "speed": False}) for a in (art.path, q.path)]
    base, tok = load_model("tiny-llama", "causal-lm")
    tuned, _ = load_artifact_model(art)
    ids = reference_ids(tok, str(ref), 300)
    ppl = {k: perplexity(mod.eval(), ids, 32, 16, 8)["perplexity"] for k, mod in (("base", base), ("ft", tuned))}
    f = ms[0]["forgetting"]
    assert f["tokens"] == 299 and f["parent"] == "tiny-llama (base model)"
    assert f["perplexity"] == pytest.approx(ppl["ft"], rel=1e-6)
    assert f["parent_perplexity"] == pytest.approx(ppl["base"], rel=1e-6)
    assert ms[0]["forgetting_pct"] == pytest.approx(100 * (ppl["ft"] / ppl["base"] - 1), rel=1e-6)
    # a compression's parent is the artifact it was made from
    assert ms[1]["forgetting"]["parent"] == art.id
    assert ms[1]["forgetting"]["parent_perplexity"] == pytest.approx(ppl["ft"], rel=1e-6)


def _record(store, name: str, chrf: float, forgetting: float | None, decode_ms: float = 5.0) -> None:
    from supremum.artifact import new_id
    from supremum.machine import fingerprint

    m = {"variant": name, "lineage": name, "task": "text-generation", "data": "pairs.jsonl", "split": "test",
         "perplexity": 10.0, "chrf": chrf, "bleu": chrf / 2, "rouge_l": chrf, "exact_match": 0.0,
         "forgetting_pct": forgetting, "machine": fingerprint(),
         "cost": {"generation": {"decode_ms_per_token": decode_ms}, "peak_rss_mb": 100.0}}
    with store.run(new_id(), "eval", "hand-made", {}, fingerprint()) as run:
        run.finish(m)


def test_pick_max_forgetting_filters_hand_made_records(tmp_path):
    from supremum.frontier.pick import pick
    from supremum.store import Store

    store = Store(tmp_path / "store")
    for name, chrf, forgot in (("full", 60.0, 12.0), ("lora", 50.0, 4.0), ("lora-replay", 45.0, 1.0),
                               ("unmeasured", 70.0, None), ("edge", 48.0, 5.0)):
        _record(store, name, chrf, forgot)
    res = pick({"max_forgetting": 5}, metric="chrf", store=store)
    assert res["pick"]["artifact"] == "lora" and res["within_budget"] == 3  # lora, lora-replay, edge (5 <= 5)
    assert pick({"max_forgetting": 2}, metric="chrf", store=store)["pick"]["artifact"] == "lora-replay"
    assert pick({}, metric="chrf", store=store)["pick"]["artifact"] == "unmeasured"
    none = pick({"max_forgetting": 0.5}, metric="chrf", store=store)
    assert none["pick"] is None and none["unmet_by_every_variant"] == ["max_forgetting"]
    by_forgetting = pick({}, metric="forgetting", store=store)  # lower is better
    assert by_forgetting["pick"]["artifact"] == "lora-replay"
    floor = pick({"max_forgetting": 5}, metric="chrf", min_metric=49.0, store=store)
    assert floor["pick"]["artifact"] == "lora" and floor["within_budget"] == 1
    from supremum.frontier.report import write_report

    text = write_report(tmp_path / "r.md", "md", metric="chrf", store=store).read_text()
    assert "| chrf | decode ms/token | tokens/s | first token ms | size MB | memory MB | forgetting % |" in text
    assert "| full | 60.0000 |" in text and "| +12.00 |" in text and "| unmeasured | 70.0000 |" in text


def test_pick_cli_forgetting_and_score_flags(tmp_path):
    from supremum.store import Store

    store = Store()  # $SUPREMUM_HOME of this test
    _record(store, "a", 60.0, 3.0)
    _record(store, "b", 70.0, 9.0)
    res = json.loads(run_cli("pick", "--max-forgetting", "5", "--metric", "chrf", "--json", check=True).stdout)
    assert res["pick"]["artifact"] == "a"
    proc = run_cli("pick", "--min-score", "65", "--metric", "chrf", "--max-forgetting", "5")
    assert proc.returncode == 1 and "max_forgetting" in proc.stdout
    proc = run_cli("pick", "--min-score", "65")
    assert proc.returncode == 2 and "--min-score bounds a generation metric" in proc.stderr
    proc = run_cli("pick", "--max-forgetting", "-1")
    assert proc.returncode == 2


# ---- replay -------------------------------------------------------------------------------

def test_replay_mixes_the_stated_share_into_the_batches(tmp_path, monkeypatch):
    from supremum.train import loop
    from supremum.train.finetune import finetune

    corpus, ref = _text(tmp_path / "c.txt", WORDS, 300, 0), _text(tmp_path / "r.txt", OTHER, 200, 1)
    seen: list[tuple] = []
    real = loop.optimizer_step

    def spy(model, opt, data, micro, *a, **kw):
        seen.extend(tuple(data.ids[i]) for b in micro for i in b)
        return real(model, opt, data, micro, *a, **kw)

    monkeypatch.setattr(loop, "optimizer_step", spy)
    cfg = FinetuneConfig(model="tiny-llama", data={"path": str(corpus), "max_length": 32}, method="full",
                         train={"epochs": 1, "batch_size": 8, "seed": 0, "replay": 0.25, "replay_data": str(ref)},
                         output=str(tmp_path / "ft"))
    res = finetune(cfg, progress=False)
    info = res.data_info["replay"]
    _, tok = load_model("tiny-llama", "causal-lm")
    replay_blocks = {tuple(b) for b in pack(reference_ids(tok, str(ref), 10**9, REPLAYED), 32).ids}
    n_task = info["task_rows"]
    assert info["replay_rows"] == round(n_task * 0.25 / 0.75)
    assert len(seen) == n_task + info["replay_rows"]  # one epoch: every row once
    assert sum(r in replay_blocks for r in seen) == info["replay_rows"]
    assert sum(r in replay_blocks for r in seen) / len(seen) == pytest.approx(0.25, abs=0.01)


def test_replay_errors(tmp_path, csv_data):
    from supremum.errors import UserError
    from supremum.train.finetune import finetune

    corpus = _text(tmp_path / "c.txt", WORDS, 100, 0)
    proc = run_cli("finetune", "--model", "tiny-llama", "--data", str(corpus), "--replay", "0.2")
    assert proc.returncode == 2 and "--replay and --replay-data go together" in proc.stderr
    cfg = lambda data, **train: FinetuneConfig(  # noqa: E731
        model="tiny-bert" if data == csv_data else "tiny-llama", data={"path": str(data), "max_length": 32},
        train={"max_steps": 1, **train}, output=str(tmp_path / "x"))
    with pytest.raises(UserError, match="train.replay mixes general text into language-model training"):
        finetune(cfg(csv_data, replay=0.2, replay_data=str(corpus)), progress=False)
    small = _text(tmp_path / "s.txt", OTHER, 3, 1)
    with pytest.raises(UserError, match=r"train.replay=0.5 needs \d+ blocks of 32 tokens from .*s.txt, which "
                       r"has 3 \(lower train.replay or give more replay text\)"):
        finetune(cfg(corpus, replay=0.5, replay_data=str(small)), progress=False)


def test_unset_replay_keeps_the_config_hash():
    from supremum.hashing import content_hash
    from supremum.train.finetune import config_hash

    # bf16 and LoRA's dropout 0.1 (its default then): as dumps held them
    cfg = FinetuneConfig(model="tiny-llama", data={"path": "x.txt"}, method={"name": "lora", "dropout": 0.1},
                         train={"max_steps": 3, "batch_size": 4, "bf16": False})
    assert config_hash(cfg) == "0e7b4e696e14edeb"  # computed before train.replay existed
    assert content_hash(cfg.train.model_dump(mode="json")) == "cf48a55b0b5bb013"
    assert "replay" not in cfg.train.model_dump()
    on = cfg.model_copy(update={"train": TrainConfig(max_steps=3, batch_size=4, replay=0.2, replay_data="r.txt",
                                                     bf16=False)})
    assert config_hash(on) != "0e7b4e696e14edeb"


def test_a_missing_reference_file_is_named_as_missing(tmp_path):
    from supremum.errors import UserError
    from supremum.lm.forgetting import reference_file

    with pytest.raises(UserError) as e:
        reference_file(str(tmp_path / "nosuch.txt"))
    assert str(e.value) == (f"{tmp_path / 'nosuch.txt'}: no such file or directory "
                            "(check the path of the reference text)")
    (tmp_path / "d").mkdir()
    with pytest.raises(UserError, match="no test/train/dev text file there"):
        reference_file(str(tmp_path / "d"))
