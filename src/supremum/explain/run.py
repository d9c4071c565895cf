"""`supremum explain`: attributions of a classifier artifact's predictions, their faithfulness,
explanation drift against a parent artifact, the JSON and the HTML page, and a store run of kind
`explain`."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from supremum.artifact import Artifact, new_id
from supremum.errors import UserError
from supremum.explain import drift
from supremum.explain.config import AOPC_PERCENTS, ExplainConfig
from supremum.explain.explainer import ORDER, Explainer, check_task, method_problems
from supremum.explain.faithfulness import measure, summarize
from supremum.explain.words import Encoded
from supremum.fsutil import write_bytes, write_json
from supremum.machine import fingerprint
from supremum.store import Store

__all__ = ["ORDER", "check_task", "choose_methods", "examples_from_data", "explain"]
JSON_FILE, HTML_FILE = "explanations.json", "explanations.html"


def examples_from_data(art: Artifact, data_cfg, split: str | None, limit: int) -> tuple[list[str], list[int], str]:
    """(texts, label ids, what was read in words): the first `limit` examples of the split,
    chosen as `eval` chooses it (dev of the training data; any other file whole)."""
    from supremum.data import load_data
    from supremum.preprocessing import WHOLE, eval_split, preprocessing_for, scored

    split = eval_split(art, data_cfg, split)
    data = load_data(data_cfg, label_names=preprocessing_for(art).label_names, whole=split == WHOLE)
    texts, labels = data.texts(split)[:limit], list(data.labels(split))[:limit]
    return list(texts), [int(y) for y in labels], scored(len(texts), "rows", data_cfg.path, split)


def choose_methods(art: Artifact, model, tok, probe: list[int], asked: list[str] | None,
                   problems: dict | None = None) -> tuple[list[str], dict]:
    """The methods to run and {method: why not} for those this artifact cannot run. A method
    asked for by name that cannot run is a UserError."""
    problems = problems if problems is not None else method_problems(model, probe)
    for m in asked or []:
        if problems[m]:
            raise UserError(f"{m} cannot explain artifact {art.id} ({art.manifest.backend}): {problems[m]}",
                            "use --methods occlusion, which runs on every backend")
    methods = [m for m in ORDER if (m in asked if asked else not problems[m])]
    return methods, {m: p for m, p in problems.items() if p and m not in methods}


def check_against(art: Artifact, parent: Artifact) -> None:
    """UserError unless `parent` is a classifier with the same classes as `art`."""
    check_task(parent)
    if parent.label_names != art.label_names:
        raise UserError(f"artifact {parent.id} has classes {parent.label_names} and {art.id} has "
                        f"{art.label_names}: their explanations are not of the same classes",
                        "give --against an artifact of the same task (the child's parent)")


def explain(art: Artifact, texts: list[str], labels: list[int] | None, cfg: ExplainConfig, *,
            output: str | Path | None = None, source: str = "--text", store: Store | None = None,
            command: str = "", against: Artifact | None = None) -> dict:
    """Explain the artifact's prediction on each text (labels: their true class ids, or None).
    With `against` (a parent artifact), also the explanation drift: the same texts explained
    under both with every method both can run (see `supremum.explain.drift`), under "drift".
    Returns the result written to `output/explanations.json` (default:
    $SUPREMUM_HOME/explanations/<run id>), with the HTML page beside it; recorded as a store run
    of kind `explain` whose metrics are the faithfulness summary (and the drift summary)."""
    check_task(art)
    if against is not None:
        check_against(art, against)
    store = store or Store()
    run_id = new_id()
    out_dir = Path(output) if output else store.root / "explanations" / run_id
    config = {"explain": cfg.model_dump(), "source": source, "examples": len(texts), "output": str(out_dir)}
    if against is not None:  # only when given: runs without it keep their config
        config["against"] = against.id
    with store.run(run_id, "explain", command, config, fingerprint(), parents=[art.id]) as run:
        ex = Explainer.load(art, cfg.batch_size)
        encs = [ex.encode(t) for t in texts]
        probe = encs[0].ids
        methods, skipped = choose_methods(art, ex.model, ex.tok, probe, cfg.methods, ex.problems(probe))
        result = _explain(ex, encs, labels, methods, cfg)
        result |= {"run": run_id, "skipped": skipped, "source": source, "output": str(out_dir)}
        if against is not None:
            result["drift"] = drift_against(ex, encs, result, Explainer.load(against, cfg.batch_size), cfg)
        write_json(out_dir / JSON_FILE, result)
        from supremum.explain.page import render

        write_bytes(out_dir / HTML_FILE, render(result).encode())
        keys = ("methods", "skipped", "faithfulness", "seconds", "settings", "output", "source", "drift")
        metrics = {k: result[k] for k in keys if k in result} | {"examples": len(encs)}
        if "drift" in metrics:  # the store keeps the summaries; the examples are in the JSON file
            d = metrics["drift"]
            metrics["drift"] = d | {"methods": {m: {k: v for k, v in s.items() if k != "per_example"}
                                                for m, s in d["methods"].items()}}
        run.finish(metrics, art)
    return result


def _explain(ex: Explainer, encs: list[Encoded], labels, methods: list[str], cfg: ExplainConfig) -> dict:
    art, names = ex.art, ex.label_names
    probs = ex.predict([e.ids for e in encs])
    seconds = dict.fromkeys(methods, 0.0)
    examples, faith = [], []
    for i, enc in enumerate(encs):
        target = int(probs[i].argmax())
        scores, extra = {}, {}
        for m in methods:
            t0 = time.perf_counter()
            a = ex.attribute(m, enc, target, cfg.steps)
            seconds[m] += time.perf_counter() - t0
            scores[m], extra[m] = a.words, a.extra
        f = measure(ex.predict, enc, target, float(probs[i, target]), scores, cfg.seeds)
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


def variant_name(art: Artifact) -> str:
    """What the sentence calls a variant: its last compression step, else its id."""
    steps = art.manifest.compression
    return steps[-1].method if steps else art.id


def drift_against(child: Explainer, encs: list[Encoded], result: dict, parent: Explainer,
                  cfg: ExplainConfig) -> dict:
    """The explanation drift of `child` (explained in `result`) from `parent` on the same texts:
    per method both can run, the agreement of their word scores for the parent's predicted class
    (the child's are re-attributed for that class where its own prediction differs), and the
    prediction agreement. Texts whose words differ under the two (truncated differently) are
    left out of the score comparison and counted."""
    names = child.label_names
    p_encs = [parent.encode(e.text) for e in encs]
    p_probs = parent.predict([e.ids for e in p_encs])
    p_targets = [int(p.argmax()) for p in p_probs]
    c_targets = [names.index(e["predicted"]) for e in result["examples"]]
    agree = float(np.mean([a == b for a, b in zip(p_targets, c_targets, strict=True)]))
    problems = parent.problems(p_encs[0].ids)
    methods = [m for m in result["methods"] if not problems[m]]
    same = [i for i, (a, b) in enumerate(zip(encs, p_encs, strict=True)) if a.words == b.words]
    per_method, seconds = {}, dict.fromkeys(methods, 0.0)
    for m in methods:
        rows = []
        for i in same:
            t0 = time.perf_counter()
            ps = parent.attribute(m, p_encs[i], p_targets[i], cfg.steps).words
            cs = (np.array(result["examples"][i]["scores"][m]) if c_targets[i] == p_targets[i]
                  else child.attribute(m, encs[i], p_targets[i], cfg.steps).words)
            seconds[m] += time.perf_counter() - t0
            rows.append({"example": i} | drift.compare(ps, cs))
        summary = drift.summarize(rows)
        per_method[m] = summary | {"sentence": drift.sentence(variant_name(child.art), m, summary, agree),
                                   "per_example": rows}
    return {"against": parent.art.id, "against_lineage": parent.art.lineage, "methods": per_method,
            "skipped": {m: problems[m] for m in result["methods"] if problems[m]},
            "prediction_agreement": agree, "examples": len(encs), "compared": len(same),
            "words_differ": len(encs) - len(same), "target": "the parent's predicted class",
            "top_k": list(drift.TOP_K), "seconds": seconds}
