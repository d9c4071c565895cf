"""`gguf` and `ollama`: a causal LM as a llama.cpp GGUF file whose metadata carries the chat
template (`tokenizer.chat_template`) and the end-of-turn token (`tokenizer.ggml.eot_token_id`,
which llama.cpp stops on like end-of-sequence), plus for `ollama` a `Modelfile`
(`ollama create NAME -f Modelfile`) with the template translated to Go, the default system
prompt and the stop strings.

PyTorch weights (adapters merged) go through supremum's GGUF writer and llama.cpp's quantizer
(`--quant`); an artifact already GGUF is copied with its quantization, and a gguf-lora
artifact's adapter travels as `adapter.gguf` (Ollama's ADAPTER)."""

from __future__ import annotations

import contextlib
import io
import shutil
import tempfile
from pathlib import Path

from supremum.artifact import Artifact
from supremum.errors import UserError
from supremum.export import ExportConfig, Refusal, register
from supremum.export.chat import Chat, chat, modelfile
from supremum.export.source import task_refusal

GGUF_FILE, LORA_FILE, MODELFILE = "model.gguf", "adapter.gguf", "Modelfile"


_refuses = task_refusal("text-generation", "GGUF covers causal LMs (llama.cpp runs decoders), not classifiers",
                        "llamacpp", "plain")


@register("gguf", "llama.cpp GGUF file with chat template and stop token", "gguf", _refuses)
def write_gguf_export(art: Artifact, out: Path, cfg: ExportConfig) -> dict:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(art.path))
    return _write(art, out, cfg, tok, chat(tok))


@register("ollama", "GGUF file plus an Ollama Modelfile", "gguf", _refuses)
def write_ollama(art: Artifact, out: Path, cfg: ExportConfig) -> dict:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(art.path))
    mf = modelfile(tok)  # refused before any weights are written
    info = _write(art, out, cfg, tok, chat(tok))
    lines = [f"FROM ./{GGUF_FILE}"] + ([f"ADAPTER ./{LORA_FILE}"] if info.get("adapter") else [])
    lines.append(f'TEMPLATE """{mf.template}"""')
    if mf.system:
        lines.append(f'SYSTEM """{mf.system}"""')
    lines += [f"PARAMETER stop {_quote(s)}" for s in mf.stops]
    (out / MODELFILE).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {**info, "modelfile": {"system": mf.system, "stops": mf.stops}}


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _write(art: Artifact, out: Path, cfg: ExportConfig, tok, c: Chat) -> dict:
    work = Path(tempfile.mkdtemp(prefix="supremum-export-"))
    try:
        if art.manifest.backend == "llamacpp":
            raw, quant = art.path / GGUF_FILE, art.manifest.gguf_quant or "as stored"
        else:
            raw, quant = work / GGUF_FILE, cfg.quant
            _from_pytorch(art, raw, quant)
        eot = tok.convert_tokens_to_ids(c.end_of_turn)
        _with_chat_metadata(raw, out / GGUF_FILE, c.jinja, eot if eot != tok.unk_token_id else None)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    adapter = art.path / LORA_FILE
    if art.manifest.backend == "llamacpp" and adapter.is_file():
        shutil.copyfile(adapter, out / LORA_FILE)
    return {"quant": quant, "chat_layout": c.layout, "end_of_turn": c.end_of_turn,
            "adapter": (out / LORA_FILE).is_file()}


def _from_pytorch(art: Artifact, out: Path, quant: str) -> None:
    import torch

    from supremum.export.source import plain_model
    from supremum.lm.gguf_export import quantize, write_gguf
    from supremum.models.loading import gguf_path

    model, tok = plain_model(art)
    try:
        source = gguf_path(art.manifest.base_model)  # its tokenizer metadata, as llama.cpp knows it
    except UserError:
        source = None
    f32 = out.with_name("f32.gguf")
    try:
        write_gguf(model, tok, f32, source)
    except UserError as e:  # an architecture the writer does not cover: the format does not apply
        raise Refusal(e.message) from None
    quantize(f32, out, quant, torch.get_num_threads())


def _with_chat_metadata(src: Path, dst: Path, template: str, eot: int | None) -> None:
    """`src` copied to `dst` with the chat template and end-of-turn token id set (gguf's own
    metadata rewriter: every other key and every tensor as they were)."""
    import gguf
    from gguf.scripts.gguf_new_metadata import MetadataDetails, copy_with_new_metadata

    reader = gguf.GGUFReader(str(src))
    arch = reader.fields[gguf.Keys.General.ARCHITECTURE].contents()
    new = {gguf.Keys.Tokenizer.CHAT_TEMPLATE: MetadataDetails(gguf.GGUFValueType.STRING, template)}
    if eot is not None:
        new[gguf.Keys.Tokenizer.EOT_ID] = MetadataDetails(gguf.GGUFValueType.UINT32, int(eot))
    writer = gguf.GGUFWriter(str(dst), arch=arch, endianess=reader.endianess)
    with contextlib.redirect_stderr(io.StringIO()):  # its progress bar
        copy_with_new_metadata(reader, writer, new, [])
