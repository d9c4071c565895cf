"""Zero-shot and in-context (k-shot) classification with a causal LM, no fine-tuning.

Each text is classified by the log-likelihood of each label's verbalizer after a prompt: the
`multiple_choice` convention of lm-evaluation-harness (lm_eval/api/task.py). The prompt of a
text is `template` with {text} filled in; k-shot prompts put k filled-in training examples, each
followed by target_delimiter + its verbalizer and fewshot_delimiter, before it (Task.fewshot_context);
each label's continuation is target_delimiter + its verbalizer (construct_requests). Scores are
summed continuation log-probs (`supremum.evaluate.loglik`); `accuracy` predicts the argmax of
the scores, `acc_norm` the argmax of score / len(verbalizer) in characters, as lm-eval's
process_results does (`completion_len = [float(len(i)) for i in choices]`: characters of the
choice without the delimiter; bytes and characters agree for ASCII verbalizers).

The k examples are drawn once per seed from the training split (never dev or test) and shared
by every text of that seed (as in Zhao et al. 2021, "Calibrate before use"): the spread over
seeds is the spread over which examples were labelled. Each k is one store run (kind
"zeroshot", no artifact) with the mean and s.d. over seeds and its cost, so `frontier` lists it.
"""

from __future__ import annotations

import statistics
import time
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from supremum.config import DataConfig, Seeds, csv_ints
from supremum.errors import UserError
from supremum.tasks import CLASSIFICATION

DEFAULT_TEMPLATE = "Review: {text}\nSentiment:"


def _pairs(v: Any) -> Any:
    """`pos=great,neg=terrible` to {"pos": "great", "neg": "terrible"}."""
    if not isinstance(v, str):
        return v
    out = {}
    for item in v.split(","):
        label, eq, word = item.partition("=")
        if not eq or not label.strip():
            raise ValueError(f"'{item}' is not LABEL=WORD (e.g. pos=great,neg=terrible)")
        out[label.strip()] = word.strip()
    return out


def _escapes(v: Any) -> Any:
    # A shell passes a newline as the two characters \n (like the \t of --delimiter).
    return v.replace("\\n", "\n").replace("\\t", "\t") if isinstance(v, str) else v


class ZeroShotConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field("smollm2-135m", description="causal LM: alias (smollm2-135m, tiny-llama), model "
                       "directory, .gguf file, or a causal-LM artifact directory (loaded by its backend)")
    backend: Literal["pytorch", "llamacpp"] = Field("pytorch", description="pytorch, or llamacpp to "
                                                    "run the model's own GGUF file (e.g. smollm2-135m's Q4_1)")
    data: DataConfig
    split: str = Field("test", description="split to classify (dev or test; shots come from train)")
    shots: Annotated[list[Annotated[int, Field(ge=0)]], BeforeValidator(csv_ints)] = Field(
        default_factory=lambda: [0], min_length=1, description="in-context examples per prompt, "
        "comma-separated (e.g. 0,4,8): one store run each")
    seeds: Annotated[Seeds, BeforeValidator(csv_ints)] = Field(
        default_factory=lambda: [0, 1, 2], min_length=1, description="seeds of the drawn examples, "
        "comma-separated (0-shot is deterministic: scored once)")
    sampling: Literal["balanced", "random"] = Field("balanced", description="how the k examples are "
                                                    "drawn from train: balanced (classes in turn, as "
                                                    "equal as k allows) or random (uniform)")
    template: Annotated[str, BeforeValidator(_escapes)] = Field(
        DEFAULT_TEMPLATE, description="prompt with a {text} placeholder; the verbalizer follows it "
        "after --target-delimiter (\\n in the flag is a newline)")
    verbalizers: Annotated[dict[str, str] | None, BeforeValidator(_pairs)] = Field(
        None, description="LABEL=WORD,... : the continuation scored for each label (default: the "
        "label names)")
    target_delimiter: Annotated[str, BeforeValidator(_escapes)] = Field(
        " ", description="between a prompt and its verbalizer (lm-eval's default)")
    fewshot_delimiter: Annotated[str, BeforeValidator(_escapes)] = Field(
        "\n\n", description="after each in-context example (lm-eval's default)")
    limit: int | None = Field(None, ge=1, description="classify only the first N texts of the split")
    batch_size: int = Field(16, ge=1, description="sequences per forward pass")
    speed: bool = Field(True, description="measure the cost (latency at batch 1 and 32, examples/s)")
    warmup: int = Field(2, ge=0, description="untimed calls before timing")
    repeats: int = Field(5, ge=3, description="timed calls (median reported)")
    threads: int | None = Field(None, ge=1, description="torch threads (default: torch's choice)")


# --- prompts ------------------------------------------------------------------------------------

def check_template(template: str) -> None:
    if "{text}" not in template:
        raise UserError(f"the template {template!r} has no {{text}} placeholder",
                        "e.g. --template 'Review: {text}\\nSentiment:'")


def verbalizer_words(label_names: list[str], given: dict[str, str] | None) -> list[str]:
    """The continuation word of each label (in label order): `given` overrides the label names."""
    given = given or {}
    unknown = [k for k in given if k not in label_names]
    if unknown:
        raise UserError(f"verbalizer for unknown label '{unknown[0]}'",
                        f"the labels are: {', '.join(label_names)}")
    words = [given.get(n, n) for n in label_names]
    if any(not w.strip() for w in words):
        raise UserError(f"the verbalizer of label '{label_names[[not w.strip() for w in words].index(True)]}' "
                        "is empty", "give each label a word, e.g. --verbalizers pos=great,neg=terrible")
    if len(set(words)) < len(words):
        dup = next(w for w in words if words.count(w) > 1)
        raise UserError(f"two labels share the verbalizer '{dup}', so they cannot be told apart",
                        "give each label its own word")
    return words


def fill(template: str, text: str) -> str:
    # replace, not str.format: texts and templates may hold other braces
    return template.replace("{text}", text)


def prompt(cfg: ZeroShotConfig, text: str, shots: list[tuple[str, str]]) -> str:
    """The context of `text`: each (example text, its verbalizer) in lm-eval's few-shot format,
    then the filled template."""
    demos = "".join(fill(cfg.template, t) + cfg.target_delimiter + w + cfg.fewshot_delimiter for t, w in shots)
    return demos + fill(cfg.template, text)


def draw_shots(labels: np.ndarray, k: int, seed: int, sampling: str) -> list[int]:
    """Indices of k distinct pool rows, in a seeded random order. balanced: the classes take turns
    (in a seeded order) until k are drawn, a class that runs out is skipped; random: uniform."""
    if k > len(labels):
        raise UserError(f"--shots {k} is larger than the {len(labels)} labelled training examples",
                        f"use at most {len(labels)} shots")
    rng = np.random.default_rng(seed)
    if sampling == "random":
        return [int(i) for i in rng.choice(len(labels), size=k, replace=False)]
    pools = {c: list(rng.permutation(np.flatnonzero(labels == c))) for c in np.unique(labels)}
    picked: list[int] = []
    order = rng.permutation(list(pools))
    while len(picked) < k:
        for c in order:
            if pools[c] and len(picked) < k:
                picked.append(int(pools[c].pop()))
    return [picked[i] for i in rng.permutation(len(picked))]


# --- scoring --------------------------------------------------------------------------------------

def score(model, tok, cfg: ZeroShotConfig, texts: list[str], words: list[str],
          shots: list[tuple[str, str]]) -> tuple[np.ndarray, int]:
    """(log-likelihood of each label's continuation after each text's prompt, shape
    (len(texts), len(words)); inputs truncated at the left)."""
    from supremum.evaluate.loglik import loglikelihoods

    pairs = [(prompt(cfg, t, shots), cfg.target_delimiter + w) for t in texts for w in words]
    # k shots: every prompt starts with the same demonstrations, encoded once (no change in the scores)
    lls, truncated = loglikelihoods(model, tok, pairs, cfg.batch_size, shared_prefix=bool(shots))
    return lls.reshape(len(texts), len(words)), truncated


def predictions(lls: np.ndarray, words: list[str]) -> dict[str, np.ndarray]:
    """acc: argmax of the scores; acc_norm: argmax of score / characters of the verbalizer."""
    chars = np.array([float(len(w)) for w in words])
    return {"acc": lls.argmax(-1), "acc_norm": (lls / chars).argmax(-1)}


def _quality(labels: list[int], preds: dict[str, np.ndarray], names: list[str]) -> dict:
    from supremum.evaluate.quality import classification_metrics

    m = classification_metrics(labels, preds["acc"], names)
    norm = classification_metrics(labels, preds["acc_norm"], names)
    return {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "acc_norm": norm["accuracy"],
            "macro_f1_norm": norm["macro_f1"], "confusion_matrix": m["confusion_matrix"]}


def spread(values: list[float], deterministic: bool = False) -> dict:
    """Mean and sample standard deviation (ddof 1) of per-seed values. One value has no spread
    to measure (sd None), unless the result cannot depend on the seed (0-shot: sd 0)."""
    sd = statistics.stdev(values) if len(values) > 1 else (0.0 if deterministic else None)
    return {"mean": statistics.fmean(values), "sd": sd, "n": len(values)}


def majority_baseline(train_labels: list[int], labels: list[int], names: list[str]) -> dict:
    """The most frequent training label predicted for every text (ties: the first label)."""
    from supremum.evaluate.quality import classification_metrics

    top = int(np.bincount(train_labels, minlength=len(names)).argmax())
    m = classification_metrics(labels, np.full(len(labels), top), names)
    return {"label": names[top], "accuracy": m["accuracy"], "macro_f1": m["macro_f1"]}


# --- cost -------------------------------------------------------------------------------------------

def measure_cost(model, tok, cfg: ZeroShotConfig, texts: list[str], words: list[str],
                 shots: list[tuple[str, str]]) -> dict:
    """Latency of classifying 1 and 32 texts (prompting, tokenization and every label's forward
    pass included), as evaluate/speed.py times: untimed warm-up calls, then timed calls, median."""
    from supremum.evaluate.speed import param_counts, peak_rss_mb, time_interleaved
    from supremum.machine import load_during, mark_spread

    b32 = (texts * (32 // max(1, len(texts)) + 1))[:32]
    with load_during() as load:
        t = time_interleaved({"b1": lambda: score(model, tok, cfg, texts[:1], words, shots),
                              "b32": lambda: score(model, tok, cfg, b32, words, shots)}, cfg.warmup, cfg.repeats)
    for b in ("b1", "b32"):
        mark_spread(load, t[b]["median_ms"], t[b]["p95_ms"])
    out = {**param_counts(model), "threads": _threads(), "load": load,
           "latency_b1": {"batch_size": 1, "with_tokenization": t["b1"]},
           "latency_b32": {"batch_size": 32, "with_tokenization": t["b32"]},
           "examples_per_s": 32 / (t["b32"]["median_ms"] / 1000), "peak_rss_mb": peak_rss_mb()}
    out["method"] = (f"perf_counter; classifying 1 and 32 texts of the split (prompt building, tokenization "
                     f"and the {len(words)} label continuations each, forward batch {cfg.batch_size}) "
                     f"timed alternately, {cfg.warmup} warm-up + {cfg.repeats} timed calls each; median; "
                     "examples_per_s = 32 / median batch-32 time; load: the 1-minute load average (the larger of "
                     "before and after) and the cores, busy when it exceeded them by more than 0.5 or when a "
                     "p95 exceeded 3x its median")
    return out


def _threads() -> int:
    import torch

    return torch.get_num_threads()


# --- the run ------------------------------------------------------------------------------------

def load_lm(cfg: ZeroShotConfig):
    """(model, tokenizer): a causal-LM artifact (directory or id) as its backend loads it (a GGUF
    export runs in llama.cpp), else a base model by alias, directory or .gguf file."""
    from supremum.evaluate.causal import load_causal_lm

    return load_causal_lm(cfg.model, cfg.backend)[:2]


def _check(cfg: ZeroShotConfig, data) -> None:
    if cfg.split == "train" and any(cfg.shots):
        raise UserError("in-context examples are drawn from train, so train cannot be the scored split",
                        "pass --split dev or --split test")
    data.split(cfg.split)  # a missing split is a one-line error before the model loads
    pool = len(data.split("train"))
    if max(cfg.shots) > pool:
        raise UserError(f"--shots {max(cfg.shots)} is larger than the {pool} labelled training examples",
                        f"use at most {pool} shots")


def run_shots(model, tok, cfg: ZeroShotConfig, k: int, data, words: list[str]) -> dict:
    """Quality per seed and its spread for k shots (0 shots: one deterministic pass)."""
    texts, labels = data.texts(cfg.split)[:cfg.limit], data.labels(cfg.split)[:cfg.limit]
    train = data.split("train")
    per_seed, prompts = [], {}
    for seed in (cfg.seeds if k else [None]):
        idx = draw_shots(train["label"].to_numpy(), k, seed, cfg.sampling) if k else []
        shots = [(train["text"].iloc[i], words[train["label"].iloc[i]]) for i in idx]
        t0 = time.perf_counter()
        lls, truncated = score(model, tok, cfg, texts, words, shots)
        q = _quality(labels, predictions(lls, words), data.label_names)
        per_seed.append({"seed": seed, **q, "shot_rows": idx, "truncated_inputs": truncated,
                         "seconds": time.perf_counter() - t0})
        prompts[seed] = shots
    res = {"shots": k, "per_seed": per_seed, "example_prompt": prompt(cfg, texts[0], prompts[per_seed[0]["seed"]])}
    for key in ("accuracy", "macro_f1", "acc_norm", "macro_f1_norm"):
        res[key] = spread([s[key] for s in per_seed], deterministic=k == 0)
    if cfg.speed:
        res["cost"] = measure_cost(model, tok, cfg, texts[:32], words, prompts[per_seed[0]["seed"]])
    return res


def zeroshot(cfg: ZeroShotConfig, *, command: str = "", store=None) -> dict:
    """Classify cfg.split of cfg.data with cfg.model by verbalizer log-likelihood at each k of
    cfg.shots; one store run (kind "zeroshot") per k. Returns {"model", "data", "split",
    "labels", "verbalizers", "majority", "results": [per k: accuracy/macro_f1/acc_norm/
    macro_f1_norm as {mean, sd, n}, per_seed, cost]}. Raises UserError on a template without
    {text}, a verbalizer for an unknown label, shots beyond the training pool, a missing split."""
    import torch

    from supremum.artifact import new_id
    from supremum.data import load_data
    from supremum.machine import fingerprint
    from supremum.store import Store

    check_template(cfg.template)
    data = load_data(cfg.data)
    words = verbalizer_words(data.label_names, cfg.verbalizers)
    _check(cfg, data)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    store = store or Store()
    model, tok = load_lm(cfg)
    labels = data.labels(cfg.split)[:cfg.limit]
    majority = majority_baseline(data.labels("train"), labels, data.label_names)
    out = {"model": cfg.model, "backend": cfg.backend, "data": cfg.data.path, "split": cfg.split,
           "examples": len(labels), "labels": data.label_names, "verbalizers": dict(zip(data.label_names, words,
                                                                                       strict=True)),
           "sampling": cfg.sampling, "majority": majority, "results": []}
    for k in cfg.shots:
        one = cfg.model_copy(update={"shots": [k]})
        with store.run(new_id(), "zeroshot", command, one.model_dump(mode="json"), fingerprint()) as run:
            res = run_shots(model, tok, cfg, k, data, words)
            run.finish(_run_metrics(cfg, k, res, out))
        out["results"].append(res)
    return out


def _run_metrics(cfg: ZeroShotConfig, k: int, res: dict, out: dict) -> dict:
    """What the store row holds: the frontier reads accuracy/macro_f1 (means over seeds), the
    variant's name, data, split, machine and cost (`supremum.frontier.variants`)."""
    from supremum.machine import fingerprint

    seeds = f", {res['accuracy']['n']} seeds" if k else ""
    spread_of = {key: res[key] for key in ("accuracy", "macro_f1", "acc_norm", "macro_f1_norm")}
    return {"model": cfg.model, "backend": cfg.backend, "variant": f"{cfg.model} {k}-shot ({cfg.backend})",
            "lineage": f"{k}-shot prompting ({cfg.sampling}{seeds})" if k else "0-shot prompting",
            "task": CLASSIFICATION.pipeline_tag, "data": cfg.data.path, "split": cfg.split,
            "accuracy": res["accuracy"]["mean"], "macro_f1": res["macro_f1"]["mean"],
            "acc_norm": res["acc_norm"]["mean"], "spread": spread_of, "per_seed": res["per_seed"],
            "majority": out["majority"], "verbalizers": out["verbalizers"], "template": cfg.template,
            "examples": out["examples"], **({"cost": res["cost"]} if "cost" in res else {}),
            "machine": fingerprint()}
