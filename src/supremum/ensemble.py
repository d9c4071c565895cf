"""Ensembles: several fine-tuned artifacts of one task combined into one artifact whose
prediction is the (weighted) mean of the members' class probabilities.

The ensemble directory holds a copy of every member (each a complete artifact, verified when
it loads), the shared tokenizer and a manifest with backend "ensemble"; it evaluates, enters
the frontier and serves like any other artifact. Its cost is honest: size is the sum of the
members, latency runs them one after another.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

from supremum.artifact import Artifact, new_id, save_artifact
from supremum.backends import load
from supremum.errors import UserError
from supremum.machine import fingerprint
from supremum.store import Store


def _tokenizer_signature(art: Artifact) -> str:
    """Members must tokenize identically, since one tokenization feeds them all."""
    import transformers as tf

    tok = tf.AutoTokenizer.from_pretrained(str(art.path))
    return f"{type(tok).__name__}:{sorted(tok.get_vocab().items())!r}"


def _check(arts: list[Artifact]) -> None:
    if len(arts) < 2:
        raise UserError("an ensemble needs at least two artifacts", "pass two or more artifact paths or ids")
    first = arts[0]
    for a in arts[1:]:
        if a.task != first.task or a.label_names != first.label_names:
            raise UserError(f"{a.id} predicts {a.label_names} ({a.task}) but {first.id} predicts "
                            f"{first.label_names} ({first.task})",
                            "ensemble artifacts of the same task and labels")
        if a.manifest.backend == "ensemble":
            raise UserError(f"{a.id} is itself an ensemble", "list its members instead")
    _check_preprocessing(arts)
    sigs = {_tokenizer_signature(a) for a in arts}
    if len(sigs) > 1:
        raise UserError("the artifacts use different tokenizers", "ensemble artifacts fine-tuned from the same "
                        "base model (or models sharing a tokenizer)")


def _check_preprocessing(arts: list[Artifact]) -> None:
    """One tokenization feeds every member, so all must have been trained with the same max
    length and truncation side (else a member would see inputs unlike its training)."""
    from supremum.preprocessing import preprocessing_for

    first = preprocessing_for(arts[0])
    for a in arts[1:]:
        p = preprocessing_for(a)
        if (p.max_length, p.truncation_side) != (first.max_length, first.truncation_side):
            raise UserError(f"{a.id} was trained on {p.max_length} tokens ({p.truncation_side} truncation) but "
                            f"{arts[0].id} on {first.max_length} ({first.truncation_side})",
                            "ensemble artifacts fine-tuned with the same --max-length")


def make_ensemble(arts: list[Artifact], output: str | Path | None = None, weights: list[float] | None = None,
                  store: Store | None = None, command: str = "") -> Artifact:
    store = store or Store()
    _check(arts)
    weights = weights or [1.0] * len(arts)
    if len(weights) != len(arts) or min(weights) <= 0:
        raise UserError(f"{len(weights)} weights for {len(arts)} members, or a weight <= 0",
                        "give one positive weight per member, e.g. --weights 1,1,2")
    weights = [w / sum(weights) for w in weights]
    art_id, run_id = new_id(), new_id()
    out = Path(output) if output else store.root / "artifacts" / art_id

    def copy_members(_model, tmp: Path) -> dict:
        for i, a in enumerate(arts):
            shutil.copytree(a.path, tmp / "members" / str(i), ignore=shutil.ignore_patterns(".*"))
        return {"backend": "ensemble"}

    with store.run(run_id, "ensemble", command, {"members": [a.id for a in arts], "weights": weights},
                   fingerprint(), parents=[a.id for a in arts]) as run:
        _, tok = load(arts[0])
        method = "ensemble(" + ",".join(a.lineage for a in arts) + ")"
        art = save_artifact(
            SimpleNamespace(config=SimpleNamespace(model_type=arts[0].manifest.model_type)), tok, out,
            task=arts[0].task, label_names=arts[0].label_names, base_model=arts[0].manifest.base_model,
            config={"members": [a.id for a in arts], "weights": weights,
                    "data": arts[0].manifest.trained_data}, storage="ensemble",
            parents=[a.id for a in arts], artifact_id=art_id, write_weights=copy_members,
            extra={"method": method, "members": [
                {"id": a.id, "lineage": a.lineage, "weight": w, "dir": f"members/{i}"}
                for i, (a, w) in enumerate(zip(arts, weights, strict=True))]})
        store.add_artifact(art.id, str(art.path), run_id, art.task, art.manifest.base_model, method)
        run.finish({"members": len(arts)}, art)
    return art
