"""The report's "Error analysis" section: for the most accurate classifier variant of the
frontier's group, its confusion matrix, accuracy by slice with 95% Wilson intervals, its most
confident errors with occlusion word scores, and the suspected label errors of a `supremum
ceiling` on the same data.

The word scores are computed here, when the report is made, not during `eval`: evaluation stays
a quality pass (the explain layer sits above evaluation), and only the few errors the page shows
are explained, for the one variant shown. Occlusion, because it runs through the artifact's own
runtime on every backend (ONNX Runtime, int8, ensembles), so the scores are those of the model
that made the errors; Integrated Gradients stays with `supremum explain`. An artifact no longer
at its recorded path leaves the errors without scores, said on the page.
"""

from __future__ import annotations

import csv
from pathlib import Path

from supremum.errors import UserError
from supremum.frontier import sign
from supremum.frontier.answer import name
from supremum.frontier.markdown import md_cell
from supremum.tasks import CLASSIFICATION

#: suspected label errors shown (the count says how many there are)
SUSPECTS_SHOWN = 10


def section(main: dict | None, store, limits: list) -> dict | None:
    """The section's data, or None when the group has no classifier evaluation with an error
    analysis (a causal LM, or evaluations recorded before it existed)."""
    if not main or main["task"] != CLASSIFICATION.pipeline_tag:
        return None
    metric = main["metric"]
    rows = sorted(main["frontier"] + main["dominated"], key=lambda r: -sign(metric) * r["metrics"][metric])
    for r in rows:
        e = ((store.get_run(r["run"]) or {}).get("metrics") or {}).get("error_analysis")
        if e:
            return _section(r, e, main, limits)
    return None


def _section(r: dict, e: dict, main: dict, limits: list) -> dict:
    names = e["confusion"]["labels"]
    errors, note = _explained(r.get("path"), e["confident_errors"], names)
    return {"name": name(r), "artifact": r["artifact"], "lineage": r["lineage"], "labels": names,
            "matrix": e["confusion"]["matrix"], "errors": e["errors"], "examples": e["examples"],
            "slices": [{"slice": s["slice"], "value": str(s["value"]), "examples": s["examples"],
                        "accuracy": f"{s['accuracy']:.4f}", "ci": f"[{s['ci'][0]:.3f}, {s['ci'][1]:.3f}]"}
                       for s in e["slices"]],
            "confident": errors, "attribution_note": note, "method": e["method"],
            "predictions": e.get("predictions"),
            "suspects": suspects(main["group"]["data"], main["group"]["split"], limits)}


def _explained(path: str | None, errors: list[dict], names: list[str]) -> tuple[list[dict], str]:
    """The errors with occlusion word scores for their predicted class, and what was done."""
    from supremum.explain.page import shade

    rows = [{**x, "confidence": f"{x['confidence']:.3f}", "words": [], "truncated_words": 0} for x in errors]
    if not errors:
        return rows, ""
    if not path or not Path(path).is_dir():
        return rows, "the artifact is no longer at its recorded path: words not scored"
    try:
        ex = _load(path)
        for row in rows:
            enc = ex.encode(row["text"])
            scores = ex.attribute("occlusion", enc, names.index(row["predicted"]), steps=1).words.tolist()
            row["words"] = [{"word": w, "colour": shade(scores, i), "score": f"{scores[i]:.4g}"}
                            for i, w in enumerate(enc.words)]
            row["truncated_words"] = enc.truncated_words
    except UserError as err:  # e.g. a slow tokenizer (no character offsets)
        return rows, f"words not scored: {err.message}"
    return rows, ("occlusion: each word's drop in the predicted class's probability when its tokens are "
                  "replaced by the mask token (green: supports the wrong prediction; red: speaks against it)")


def _load(path: str):
    """The artifact's Explainer, loaded without transformers' progress bar (the report has no bars)."""
    from transformers.utils import logging as hf_logging

    from supremum.artifact import open_artifact
    from supremum.explain.explainer import Explainer

    shown = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        return Explainer.load(open_artifact(path))
    finally:
        if shown:
            hf_logging.enable_progress_bar()


def suspects(data: str, split: str, limits: list) -> dict | None:
    """The suspected label errors of the latest `ceiling` on `data` (its `split` where it scored
    that split, else the split it measured): count, path, split and the first rows of the CSV."""
    found = [m for kind, _, m in limits if kind == "ceiling" and m.get("label_noise") and _same(m["data"], data)]
    if not found:
        return None
    ln = found[-1]["label_noise"]
    per = (ln.get("splits") or {}).get(split) or {"suspects_path": ln.get("suspects_path"), "suspects": None}
    at = per["suspects_path"] and Path(per["suspects_path"])
    if not at or not at.is_file():
        return None
    with at.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return {"path": str(at), "split": split if split in (ln.get("splits") or {}) else ln.get("split", "?"),
            "count": len(rows), "rate": ln.get("rate"), "rows": rows[:SUSPECTS_SHOWN]}


def _same(a: str, b: str) -> bool:
    return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()


def markdown(s: dict) -> list[str]:
    """The section as Markdown lines (no colours: the word scores in brackets)."""
    out = ["", f"## Error analysis of {s['name']} ({s['lineage']})", "",
           f"{s['errors']} errors in {s['examples']} examples. Rows: true class; columns: predicted.", "",
           "| true \\ predicted | " + " | ".join(s["labels"]) + " |", "|---|" + "---|" * len(s["labels"])]
    out += [f"| {n} | " + " | ".join(map(str, row)) + " |"
            for n, row in zip(s["labels"], s["matrix"], strict=True)]
    out += ["", "| slice | value | examples | accuracy | 95% interval |", "|---|---|---|---|---|"]
    out += [f"| {x['slice']} | {md_cell(x['value'])} | {x['examples']} | {x['accuracy']} | {x['ci']} |"
            for x in s["slices"]]
    if s["confident"]:
        out += ["", "Most confident errors:", "", "| confidence | true | predicted | text |", "|---|---|---|---|"]
        out += [f"| {x['confidence']} | {x['label']} | {x['predicted']} | "
                + md_cell(" ".join(f"{w['word']} ({w['score']})" for w in x["words"]) or x["text"], 300) + " |"
                for x in s["confident"]]
        out += ["", s["attribution_note"]] if s["attribution_note"] else []
    if s["suspects"]:
        sp = s["suspects"]
        out += ["", f"Suspected label errors ({sp['count']} on {sp['split']}, `{sp['path']}`):", "",
                "| row | given | suggested | confidence | text |", "|---|---|---|---|---|"]
        out += [f"| {x['row']} | {x['given_label']} | {x['suggested_label']} | {x['confidence']} | "
                f"{md_cell(x['text'])} |" for x in sp["rows"]]
    return out + ["", s["method"]]
