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

    def sequences(self, n: int) -> LlamaCppSequences:
        """A context holding up to `n` sequences at once (continuous batching in the server)."""
        return LlamaCppSequences(self.generator(), n, self.n_ctx, self.threads)

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


class LlamaCppSequences:
    """llama.cpp's multi-sequence batch API over the weights of a loaded `Llama`: one context with
    `n` sequence ids, each with its own KV cache of n_ctx positions; a prefill or a decoding step
    is one `llama_decode` over tokens tagged with their sequence id and position; a finished
    sequence's cache entries are removed by id (`llama_memory_seq_rm`)."""

    CHUNK = 512  # tokens per llama_decode of a prompt (the context's n_batch)

    def __init__(self, llm, n: int, n_ctx: int, threads: int) -> None:
        import ctypes

        import llama_cpp
        from llama_cpp import _internals

        params = llama_cpp.llama_context_default_params()
        params.n_ctx, params.n_seq_max, params.kv_unified = n_ctx * n, n, False
        params.n_batch = params.n_ubatch = max(self.CHUNK, n)
        params.n_threads = params.n_threads_batch = threads
        self.ctx = _internals.LlamaContext(model=llm._model, params=params, verbose=False)
        if llm._lora_adapter is not None:  # the artifact's LoRA, as on the Llama's own context
            adapters = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(llm._lora_adapter)
            if llama_cpp.llama_set_adapters_lora(self.ctx.ctx, adapters, 1, (ctypes.c_float * 1)(llm.lora_scale)):
                raise RuntimeError("llama.cpp refused the LoRA adapter on a batch context")
        self.batch = _internals.LlamaBatch(n_tokens=params.n_batch, embd=0, n_seq_max=1, verbose=False)
        self.n_vocab, self.llm = llm.n_vocab(), llm  # the Llama owns the weights: keep it alive
        atexit.register(self.close)

    def _run(self, items: list[tuple[int, int, int, bool]]) -> np.ndarray:
        """Decode (token, position, sequence id, wants logits) items; logits [wanted, vocab]."""
        b = self.batch.batch
        b.n_tokens = len(items)
        for i, (token, pos, seq, wanted) in enumerate(items):
            b.token[i], b.pos[i], b.seq_id[i][0], b.n_seq_id[i], b.logits[i] = token, pos, seq, 1, wanted
        self.ctx.decode(self.batch)
        rows = [i for i, item in enumerate(items) if item[3]]
        return np.stack([np.ctypeslib.as_array(self.ctx.get_logits_ith(i), shape=(self.n_vocab,)).copy()
                         for i in rows]) if rows else np.zeros((0, self.n_vocab), np.float32)

    def prefill(self, seq: int, ids: list[int]) -> np.ndarray:
        """The prompt of sequence `seq` (any earlier entries of that id removed); the last
        position's logits [vocab]."""
        self.free(seq)
        out = None
        for start in range(0, len(ids), self.CHUNK):
            chunk = ids[start : start + self.CHUNK]
            out = self._run([(t, start + i, seq, start + i == len(ids) - 1) for i, t in enumerate(chunk)])
        return out[0]

    def step(self, items: list[tuple[int, int, int]]) -> np.ndarray:
        """One token per sequence, (sequence id, token, position): logits [len(items), vocab]."""
        return self._run([(token, pos, seq, True) for seq, token, pos in items])

    def free(self, seq: int) -> None:
        self.ctx.kv_cache_seq_rm(seq, -1, -1)

    def close(self) -> None:
        self.batch.close()
        self.ctx.close()


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
    lora = art.path / LORA_FILE if art.manifest.gguf_lora else None
    return LlamaCppModel(art.path / GGUF_FILE, tf.AutoConfig.from_pretrained(str(art.path)), lora=lora), tok
