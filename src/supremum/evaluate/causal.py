"""Loading a causal language model for scoring and generation, whatever the reference names: a
causal-LM artifact (its directory, or its artifact/run id in the store; loaded by its backend,
so a GGUF export runs in llama.cpp), or a base model (alias, transformers directory, .gguf file).
Classifier artifacts and encoders are refused: their "LM head" predicts labels or masked tokens,
and scoring a continuation with it would silently give noise."""

from __future__ import annotations

from pathlib import Path

from supremum.artifact import MANIFEST, Artifact, open_artifact
from supremum.errors import UserError
from supremum.models import is_decoder
from supremum.tasks import CAUSAL_LM

HINT = "give a causal LM (alias, model directory, .gguf, or a causal-LM artifact)"


def load_causal_lm(ref: str, backend: str = "pytorch") -> tuple:
    """(model, tokenizer, artifact or None) in eval mode. `backend` applies to base models only
    ("llamacpp": the model's own GGUF file in llama.cpp); an artifact runs on its own backend.
    Raises UserError: a classifier artifact, an encoder, an unknown name or id."""
    from supremum.models.loading import ALIASES

    path = Path(ref)
    if (path / MANIFEST).is_file():
        return _artifact_lm(open_artifact(ref))
    if not path.exists() and ref not in ALIASES:
        from supremum.store import Store

        store = Store()
        row = store.get_artifact(ref) or {"path": (store.get_run(ref) or {}).get("artifact_path")}
        if row["path"]:
            return _artifact_lm(open_artifact(row["path"]))
    if backend == "llamacpp":
        from supremum.evaluate.stage import load_llamacpp

        return (*load_llamacpp(ref), None)
    from supremum.models import load_model

    model, tok = load_model(ref, CAUSAL_LM)
    if not is_decoder(model.config):
        raise UserError(f"{ref} is an encoder ({model.config.model_type}), not a causal language model: it "
                        "cannot score a continuation", "give a causal LM, e.g. smollm2-135m or tiny-llama")
    return model.eval(), tok, None


def _artifact_lm(art: Artifact) -> tuple:
    from supremum import backends

    if art.task != CAUSAL_LM.pipeline_tag:
        raise UserError(f"{art.path}: a {art.task} artifact has no language-model head to score or generate "
                        "text with", HINT)
    return (*backends.load(art), art)
