"""`supremum explain`: attributions of a classifier artifact's predictions, their faithfulness,
the JSON and the HTML page, and a store run of kind `explain`."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from supremum.artifact import Artifact, new_id
from supremum.errors import UserError
from supremum.explain import attribution as attr
from supremum.explain.config import AOPC_PERCENTS, ExplainConfig
from supremum.explain.faithfulness import measure, summarize
from supremum.explain.words import Encoded, encode
from supremum.fsutil import write_bytes, write_json
from supremum.machine import fingerprint
from supremum.store import Store

ORDER = ("integrated-gradients", "input-x-gradient", "occlusion", "attention-rollout")
JSON_FILE, HTML_FILE = "explanations.json", "explanations.html"


def check_task(art: Artifact) -> None:
    if art.task != "text-classification":
        raise UserError(f"artifact {art.id} is a {art.task} model; explain supports classifiers only for now",
                        "give a text-classification artifact")


def examples_from_data(art: Artifact, data_cfg, split: str | None, limit: int) -> tuple[list[str], list[int], str]:
    """(texts, label ids, what was read in words): the first `limit` examples of the split,
    chosen as `eval` chooses it (dev of the training data; any other file whole)."""
    from supremum.data import load_data
    from supremum.preprocessing import WHOLE, eval_split, preprocessing_for, scored

    split = eval_split(art, data_cfg, split)
    data = load_data(data_cfg, label_names=preprocessing_for(art).label_names, whole=split == WHOLE)
    texts, labels = data.texts(split)[:limit], list(data.labels(split))[:limit]
    return list(texts), [int(y) for y in labels], scored(len(texts), "rows", data_cfg.path, split)


def _pad_id(tok) -> int:
    return next(i for i in (tok.pad_token_id, tok.unk_token_id, tok.eos_token_id, 0) if i is not None)


def _replace_id(tok) -> int:
    """Occlusion's stand-in for a word: the mask token where the tokenizer has one."""
    return next(i for i in (tok.mask_token_id, tok.unk_token_id, tok.pad_token_id, 0) if i is not None)


def choose_methods(art: Artifact, model, tok, probe: list[int], asked: list[str] | None) -> tuple[list[str], dict]:
    """The methods to run and {method: why not} for those this artifact cannot run. A method
    asked for by name that cannot run is a UserError."""
    grad = attr.gradient_problem(model, probe)
    problems = {"integrated-gradients": grad, "input-x-gradient": grad, "occlusion": None,
                "attention-rollout": attr.attention_problem(model, probe)}
    for m in asked or []:
        if problems[m]:
            raise UserError(f"{m} cannot explain artifact {art.id} ({art.manifest.backend}): {problems[m]}",
                            "use --methods occlusion, which runs on every backend")
    methods = [m for m in ORDER if (m in asked if asked else not problems[m])]
    return methods, {m: p for m, p in problems.items() if p and m not in methods}


def explain(art: Artifact, texts: list[str], labels: list[int] | None, cfg: ExplainConfig, *,
            output: str | Path | None = None, source: str = "--text", store: Store | None = None,
            command: str = "") -> dict:
    """Explain the artifact's prediction on each text (labels: their true class ids, or None).
    Returns the result written to `output/explanations.json` (default:
    $SUPREMUM_HOME/explanations/<run id>), with the HTML page beside it; recorded as a store run
    of kind `explain` whose metrics are the faithfulness summary."""
    from supremum import backends
    from supremum.preprocessing import preprocessing_for

    check_task(art)
    store = store or Store()
    run_id = new_id()
    out_dir = Path(output) if output else store.root / "explanations" / run_id
    config = {"explain": cfg.model_dump(), "source": source, "examples": len(texts), "output": str(out_dir)}
    with store.run(run_id, "explain", command, config, fingerprint(), parents=[art.id]) as run:
        prep = preprocessing_for(art)
        model, tok = backends.load(art)
        tok.truncation_side = prep.truncation_side
        encs = [encode(tok, t, prep.max_length) for t in texts]
        methods, skipped = choose_methods(art, model, tok, encs[0].ids, cfg.methods)
        result = _explain(art, model, tok, encs, labels, prep.label_names, methods, cfg)
        result |= {"run": run_id, "skipped": skipped, "source": source, "output": str(out_dir)}
        write_json(out_dir / JSON_FILE, result)
        from supremum.explain.page import render

        write_bytes(out_dir / HTML_FILE, render(result).encode())
        run.finish({k: result[k] for k in ("methods", "skipped", "faithfulness", "seconds", "settings",
                                            "output", "source")} | {"examples": len(encs)}, art)
    return result


def _explain(art, model, tok, encs: list[Encoded], labels, names: list[str], methods: list[str],
             cfg: ExplainConfig) -> dict:
    from supremum.evaluate.quality import softmax
    from supremum.infer import predict_logits

    pad = _pad_id(tok)

    def predict(ids: list[list[int]]) -> np.ndarray:
        return softmax(predict_logits(model, ids, pad, cfg.batch_size).astype(np.float64))

    probs = predict([e.ids for e in encs])
    seconds = dict.fromkeys(methods, 0.0)
    examples, faith = [], []
    for i, enc in enumerate(encs):
        target = int(probs[i].argmax())
        scores, extra = {}, {}
        for m in methods:
            t0 = time.perf_counter()
            a = _attribute(m, model, tok, enc, target, predict, cfg)
            seconds[m] += time.perf_counter() - t0
            scores[m], extra[m] = a.words, a.extra
        f = measure(predict, enc, target, float(probs[i, target]), scores, cfg.seeds)
        faith.append(f)
        examples.append({"text": enc.text, "tokens": enc.tokens, "token_word": enc.token_word, "words": enc.words,
                         "truncated_words": enc.truncated_words,
                         "label": names[labels[i]] if labels is not None else None,
                         "predicted": names[target], "probability": float(probs[i, target]),
                         "probabilities": {n: float(p) for n, p in zip(names, probs[i], strict=True)},
                         "scores": {m: [float(s) for s in scores[m]] for m in methods},
                         "details": {m: d for m, d in extra.items() if d},
                         "faithfulness": {m: f[m] for m in methods}})
    return {"artifact": art.id, "lineage": art.lineage, "backend": art.manifest.backend, "methods": methods,
            "settings": {"steps": cfg.steps, "seeds": cfg.seeds, "aopc_percents": list(AOPC_PERCENTS),
                         "batch_size": cfg.batch_size, "words": "whitespace-separated; tokens by offsets",
                         "removal": "the words' tokens deleted (special tokens kept)"},
            "faithfulness": summarize(faith, methods, cfg.seeds), "seconds": seconds, "examples": examples}


def _attribute(method: str, model, tok, enc: Encoded, target: int, predict, cfg: ExplainConfig):
    if method == "integrated-gradients":
        return attr.integrated_gradients(model, enc, target, _pad_id(tok), cfg.steps)
    if method == "input-x-gradient":
        return attr.input_x_gradient(model, enc, target)
    if method == "occlusion":
        return attr.occlusion(predict, enc, target, _replace_id(tok), cfg.batch_size)
    return attr.attention_rollout(model, enc, read_first=tok.cls_token_id is not None
                                  and enc.ids[0] == tok.cls_token_id)
