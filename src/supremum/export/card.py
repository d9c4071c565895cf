"""The model card of an export: `README.md` with YAML front-matter as the Hugging Face Hub reads
it (base_model, datasets, pipeline_tag, license when known, library_name, model-index with the
measured results), plus a `supremum` block (lineage, parents, temperature, the machine each
result was measured on) and a short body saying the same in words."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

import yaml

from supremum import __version__
from supremum.artifact import Artifact
from supremum.evaluate.result import EvalResult

CARD = "README.md"
#: per task, the eval metrics reported (key in metrics.json -> model-index metric type)
EVAL_METRICS = {"text-classification": {"accuracy": "accuracy", "macro_f1": "f1"},
                "text-generation": {"perplexity": "perplexity", "bits_per_byte": "bits_per_byte"}}
#: per task, the training record's dev score (measured on the dev split during training)
TRAIN_METRICS = {"text-classification": {"dev_accuracy": "accuracy"},
                 "text-generation": {"dev_perplexity": "perplexity"}}


def base_model_id(name: str) -> str:
    """The hub id behind an alias (minilm-l6 -> sentence-transformers/all-MiniLM-L6-v2), else
    the name as recorded."""
    from supremum.models.loading import ORIGINS

    return ORIGINS.get(name, (name, None))[0]


def _license(name: str) -> str | None:
    from supremum.models.loading import ORIGINS

    return ORIGINS.get(name, (name, None))[1]


def _dataset(art: Artifact) -> str | None:
    """The training data's name: a local file or folder by its name (kept in the supremum block,
    since the Hub's `datasets` key names Hub datasets), anything else as given."""
    path = art.manifest.trained_data_path
    if not path:
        return None
    return Path(path).name if Path(path).exists() else str(path)


def _hub_dataset(art: Artifact) -> str | None:
    """The data as a Hub dataset id (`owner/name`), when the recorded path is not a local one;
    supremum reads local files, so this is usually None."""
    path = art.manifest.trained_data_path
    if not path or Path(path).expanduser().exists() or Path(path).suffix or str(path).startswith(("/", ".", "~")):
        return None
    return str(path)


def _training_machine(art: Artifact) -> dict | None:
    from supremum.store import Store

    if not art.manifest.run_id:
        return None
    try:
        run = Store().get_run(art.manifest.run_id)
    except Exception:  # noqa: BLE001 - the card needs no store: a run recorded elsewhere is just unknown
        return None
    return (run or {}).get("machine") or None


def _measurement(art: Artifact, key: str, m: dict) -> tuple[dict, str, str | None, dict | None] | None:
    """(metric names wanted, split, data, machine) of one metrics.json entry, None to skip it."""
    if key == "training":
        return TRAIN_METRICS.get(art.task, {}), "dev", _dataset(art), _training_machine(art)
    if ":" in key and not key.startswith("sensitivity:"):
        data, split = key.rsplit(":", 1)
        machine = EvalResult(m).machine
        return EVAL_METRICS.get(art.task, {}), split, data, machine
    return None


def _words(key: str) -> str:
    return key.removeprefix("dev_").replace("_", " ")  # dev_accuracy of training: the split says dev


def results(art: Artifact) -> list[dict]:
    """One model-index result per measurement in metrics.json: its metrics (values as
    measured), dataset and split, and the machine it ran on (None: not recorded)."""
    from supremum.machine import short

    out = []
    for key, m in art.metrics.items():
        found = _measurement(art, key, m) if isinstance(m, dict) else None
        if found is None:
            continue
        wanted, split, data, machine = found
        metrics = [{"type": kind, "value": float(m[k]), "name": f"{split} {_words(k)}"}
                   for k, kind in wanted.items() if isinstance(m.get(k), int | float) and math.isfinite(m[k])]
        if metrics:
            out.append({"task": {"type": art.task},
                        "dataset": {"name": data or "unknown", "type": data or "unknown", "split": split},
                        "metrics": metrics, "source": {"name": f"supremum {key}"},
                        "machine": short(machine) if machine else None})
    return out


def front_matter(art: Artifact, fmt, info: dict) -> dict:
    from supremum.export.source import inputs

    m = art.manifest
    res = results(art)
    front = {"base_model": base_model_id(m.base_model), "datasets": [d] if (d := _hub_dataset(art)) else [],
             "pipeline_tag": art.task, "library_name": fmt.library, "tags": ["supremum", fmt.name]}
    if lic := _license(m.base_model):
        front["license"] = lic
    if res:  # the Hub's metadata check refuses a model-index without results
        front["model-index"] = [{"name": art.id, "results": [{k: v for k, v in r.items() if k != "machine"}
                                                              for r in res]}]
    front["supremum"] = {
        "artifact_id": art.id, "lineage": art.lineage, "parents": m.parents, "method": m.method,
        "data": _dataset(art),
        "labels": art.label_names or None, "temperature": m.temperature, "inputs": inputs(art),
        "measured_on": {r["source"]["name"].removeprefix("supremum "): r["machine"] for r in res},
        "export": {"format": fmt.name, "tool_version": __version__,
                   "created": datetime.now(UTC).isoformat(timespec="seconds"), **info},
    }
    return front


def _body(art: Artifact, front: dict) -> str:
    lines = [f"# {art.id}", "", f"Exported by supremum as `{front['tags'][1]}` from artifact {art.id} "
             f"(lineage `{art.lineage}`), fine-tuned from `{front['base_model']}`.", ""]
    lines += [_inputs_sentence(art, front["supremum"]["inputs"]), ""]
    if art.manifest.temperature is not None:
        t = art.manifest.temperature
        lines += [f"**Temperature {t:.4g}**: this artifact was calibrated. The exported weights give the "
                  f"logits as trained; divide them by {t:.4g} before the softmax for the calibrated "
                  "probabilities (predictions are the same either way).", ""]
    res = front["model-index"][0]["results"] if "model-index" in front else []
    if res:
        lines += ["| measurement | metric | value | machine |", "|---|---|---|---|"]
        for r, machine in zip(res, front["supremum"]["measured_on"].values(), strict=True):
            for x in r["metrics"]:
                where = machine or "not recorded"
                lines.append(f"| {r['source']['name']} | {x['name']} | {x['value']:.6g} | {where} |")
    else:
        lines.append("No measurements recorded (run `supremum eval` on the artifact before exporting).")
    return "\n".join(lines) + "\n"


def _inputs_sentence(art: Artifact, cut: dict) -> str:
    n, side = cut["max_length"], cut["truncation_side"]
    if art.task == "text-classification":
        return (f"**Max length {n} tokens**: trained and evaluated on texts cut to {n} tokens (tokens past "
                f"that dropped on the {side}). The tokenizer's `model_max_length` is {n}: call it with "
                "`truncation=True` to get the predictions measured here.")
    return (f"**Max length {n} tokens**: trained on blocks of {n} tokens (`supremum eval` scores "
            "perplexity in windows of that length unless given `--window`).")


def write_card(art: Artifact, out: Path, fmt, info: dict) -> None:
    front = front_matter(art, fmt, info)
    text = "---\n" + yaml.safe_dump(front, sort_keys=False, allow_unicode=True) + "---\n\n" + _body(art, front)
    (out / CARD).write_text(text, encoding="utf-8")
