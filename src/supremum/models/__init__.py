"""Model loading: aliases, local directories, GGUF files, hub ids, tiny test models."""

from supremum.models.loading import ALIASES, ENCODERS, is_decoder, load_model, resolve_source

__all__ = ["ALIASES", "ENCODERS", "is_decoder", "load_model", "resolve_source"]
