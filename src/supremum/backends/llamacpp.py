"""llama.cpp (llama-cpp-python) as an inference backend that looks like a transformers causal LM
to our callers: `model(input_ids=..., attention_mask=...).logits` for perplexity, and the
step interface of `supremum.lm.generation` for decoding. Token ids come from the artifact's
transformers tokenizer, so every backend is scored on the same tokens."""

from __future__ import annotations

import atexit
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from supremum.backends import register
from supremum.backends.foreign import ForeignModel
from supremum.errors import UserError

GGUF_FILE = "model.gguf"
LORA_FILE = "adapter.gguf"


def _llama(path: Path, n_ctx: int, threads: int, logits_all: bool, lora: Path | None = None):
    try:
        from llama_cpp import Llama
    except ImportError:
        raise UserError("the llama.cpp backend needs llama-cpp-python",
                        "pip install 'supremum[llama]' (builds llama.cpp from source, ~7 minutes)") from None
    llm = Llama(str(path), n_ctx=n_ctx, n_batch=min(n_ctx, 512), n_threads=threads,
                n_threads_batch=threads, logits_all=logits_all, verbose=False,
                lora_path=str(lora) if lora else None)
    atexit.register(llm.close)  # freed before interpreter teardown, when llama_cpp can still run
    return llm


class LlamaCppModel(ForeignModel):
    def __init__(self, path: str | Path, config=None, threads: int | None = None, n_ctx: int = 2048,
                 lora: str | Path | None = None) -> None:
        """`lora`: a LoRA adapter GGUF applied on top of the model at run time (not merged)."""
        self.path, self.config, self.lora = Path(path), config, Path(lora) if lora else None
        if not self.path.is_file():
            raise UserError(f"{self.path}: no GGUF file", "re-create the artifact")
        trained = getattr(config, "max_position_embeddings", None) or n_ctx
        self.threads, self.n_ctx = threads or torch.get_num_threads(), min(n_ctx, trained)
        self._scorer = self._gen = None

    def _scoring(self):
        if self._scorer is None:
            self._scorer = _llama(self.path, self.n_ctx, self.threads, logits_all=True, lora=self.lora)
        return self._scorer

    def generator(self):
        if self._gen is None:  # logits for the last position only: prefill as llama.cpp runs it
            self._gen = _llama(self.path, self.n_ctx, self.threads, logits_all=False, lora=self.lora)
        return self._gen

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **_):
        llm = self._scoring()
        rows = []
        for r in range(input_ids.shape[0]):
            n = int(attention_mask[r].sum()) if attention_mask is not None else input_ids.shape[1]
            llm.reset()
            llm.eval(input_ids[r, :n].tolist())
            logits = np.zeros((input_ids.shape[1], llm.n_vocab()), dtype=np.float32)
            logits[:n] = llm.scores[:n]
            rows.append(logits)
        return SimpleNamespace(logits=torch.from_numpy(np.stack(rows)))

    def stepper(self, pick=None) -> LlamaCppStepper:
        return LlamaCppStepper(self.generator(), pick)

    def cost_info(self) -> dict:
        from gguf import GGUFReader

        tensors = [t for p in (self.path, self.lora) if p for t in GGUFReader(str(p)).tensors]
        params = sum(int(np.prod(t.shape)) for t in tensors)
        return {"params": params, "weights_mb": sum(int(t.n_bytes) for t in tensors) / 2**20}

    def kernels(self) -> list[str]:
        from gguf import GGUFReader

        types = sorted({t.tensor_type.name for t in GGUFReader(str(self.path)).tensors})
        lora = " + LoRA adapter applied at run time" if self.lora else ""
        return [f"llama.cpp ({'/'.join(types)} tensors){lora}"]


class LlamaCppStepper:
    def __init__(self, llm, pick=None) -> None:
        self.llm = llm
        self.pick = pick  # see supremum.lm.generation.sampler; None = argmax

    def _next(self) -> int:
        # Without logits_all, llama-cpp-python keeps no Python copy of the logits: read the last
        # position's row from the context.
        row = np.ctypeslib.as_array(self.llm._ctx.get_logits_ith(-1), shape=(self.llm.n_vocab(),))
        return int(np.argmax(row)) if self.pick is None else self.pick(np.array(row, dtype=np.float32))

    def prefill(self, ids: list[int]) -> int:
        self.llm.reset()
        self.llm.eval(ids)
        return self._next()

    def step(self, token: int) -> int:
        self.llm.eval([token])
        return self._next()


@register("llamacpp")
def load(art):
    import transformers as tf

    tok = tf.AutoTokenizer.from_pretrained(str(art.path))
    lora = art.path / LORA_FILE if (art.manifest.gguf or {}).get("lora") else None
    return LlamaCppModel(art.path / GGUF_FILE, tf.AutoConfig.from_pretrained(str(art.path)), lora=lora), tok
