"""Token generation for the server: each request is a `Sequence`; one engine decodes them on the
inference thread (the batcher's, in turn with classification batches).

PyTorch causal LMs get **continuous batching** (iteration-level scheduling, Yu et al. 2022,
"Orca"): sequences join and leave the running batch between any two decoding steps, and every
step is one forward pass over all running sequences. Design: one left-padded batch whose KV cache
is re-formed only when membership changes, chosen over stacking per-request caches at every
step (a copy of every cache per token) and over paged attention (vLLM; needs its own kernels):

- a new sequence is prefilled alone at batch 1 (its prompt's forward pass is exactly the
  one-at-a-time one, nothing padded), then its cache is left-padded to the batch's length and
  concatenated to the batch;
- decoding steps pass a 2-D attention mask (padding hidden) and `position_ids` counting only each
  row's real tokens, so a row is computed as it would be alone;
- a finished row is dropped by index, and positions that became padding in every row are cut.

The copy is paid when a sequence joins or leaves, not per token. At temperature 0 a batched
sequence decodes the same tokens as one-at-a-time generation (tests/test_serve_openai.py).

llama.cpp artifacts are batched the same way through llama.cpp's multi-sequence batch API (one
context, a sequence id per running request, one `llama_decode` per step; `LlamaCppBatchEngine`).
Not batched, one sequence at a time through transformers' `generate` (`SerialEngine`): PyTorch
models whose cache is not plain full attention (sliding-window or hybrid layers) and
prompt-learning adapters (prefix tuning brings its own cache).
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from supremum.serve import kv
from supremum.serve.batcher import Saturated

#: sampling keeps the 50 most likely tokens before top-p, as transformers' and llama.cpp's defaults
TOP_K = 50


@dataclass(frozen=True)
class Sampling:
    """How to pick tokens: greedy at temperature 0; else temperature, top-k, top-p, seeded."""

    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    top_k: int = TOP_K


def sample(logits: torch.Tensor, s: Sampling, gen: torch.Generator) -> int:
    """One token id from a row of next-token logits [vocab] (temperature, top-k, top-p, as in
    transformers' TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper)."""
    if s.temperature == 0:
        return int(logits.argmax())
    x = logits.float() / s.temperature
    if not torch.isfinite(x.max()):  # a temperature so small that the logits overflow: its limit, greedy
        return int(logits.argmax())
    if 0 < s.top_k < x.numel():
        x = x.masked_fill(x < torch.topk(x, s.top_k).values[-1], float("-inf"))
    if s.top_p < 1:
        low, order = torch.sort(x)  # ascending: drop the least likely tokens whose mass is <= 1 - top_p
        drop = low.softmax(-1).cumsum(-1) <= 1 - s.top_p
        drop[-1] = False  # the most likely token always stays
        x = x.scatter(0, order, low.masked_fill(drop, float("-inf")))
    return int(torch.multinomial(x.softmax(-1), 1, generator=gen))


@dataclass
class Sequence:
    """One request's tokens. The engine thread appends (`add`); the request's coroutine waits on
    `updates()` and reads `tokens`, `finish_reason` ("stop": end-of-sequence or a stop string;
    "length": max_tokens or the context is full) and `text()`."""

    prompt: list[int]
    sampling: Sampling
    limit: int  # max_tokens, cut to the context left after the prompt
    eos: frozenset[int]
    decode: Callable[[list[int]], str]
    loop: asyncio.AbstractEventLoop
    tokens: list[int] = field(default_factory=list)
    finish_reason: str | None = None
    cancelled: bool = False
    error: BaseException | None = None

    def __post_init__(self) -> None:
        self.generator = torch.Generator().manual_seed(
            self.sampling.seed if self.sampling.seed is not None else random.getrandbits(63))
        self._events: asyncio.Queue = asyncio.Queue()
        self._lock = threading.Lock()  # a reader sees a token together with the finish it caused

    @property
    def done(self) -> bool:
        return self.finish_reason is not None or self.cancelled or self.error is not None

    def add(self, token: int) -> bool:
        """Record a decoded token (engine thread); True when the sequence is finished."""
        with self._lock:
            if token in self.eos:
                self.finish_reason = "stop"
            else:
                self.tokens.append(token)
                if self.sampling.stop and self._stopped():
                    self.finish_reason = "stop"
                elif len(self.tokens) >= self.limit:
                    self.finish_reason = "length"
        self._notify()
        return self.finish_reason is not None

    def finish(self, reason: str) -> None:
        self.finish_reason = reason
        self._notify()

    def fail(self, error: BaseException) -> None:
        self.error = error
        self._notify()

    def _notify(self) -> None:
        self.loop.call_soon_threadsafe(self._events.put_nowait, None)

    def _stopped(self) -> bool:
        text = self.decode(self.tokens)
        return any(s in text for s in self.sampling.stop)

    def snapshot(self) -> tuple[str, bool]:
        """(the answer so far, finished?), read together."""
        with self._lock:
            return self.text(), self.finish_reason is not None

    def text(self) -> str:
        """The answer so far, cut before the first stop string."""
        text = self.decode(list(self.tokens))
        cuts = [i for i in (text.find(s) for s in self.sampling.stop) if i >= 0]
        return text[: min(cuts)] if cuts else text

    async def wait(self, timeout: float) -> None:
        """Until finished; TimeoutError (and the sequence cancelled) after `timeout` seconds in all."""
        async def drain():
            async for _ in self.updates(timeout):
                pass

        try:
            await asyncio.wait_for(drain(), timeout)
        except TimeoutError:
            self.cancelled = True
            raise

    async def updates(self, timeout: float):
        """Yields after each new token until finished; TimeoutError if none comes within `timeout`
        seconds (the sequence is then cancelled); re-raises the engine's error."""
        while True:
            try:
                await asyncio.wait_for(self._events.get(), timeout)
            except (TimeoutError, asyncio.CancelledError):
                self.cancelled = True
                raise
            if self.error is not None:
                raise self.error
            yield
            if self.finish_reason is not None:
                return


class Engine:
    """The queue and the driver shared by every engine: `submit` queues a sequence; while any is
    queued or running, the driver runs `_step` on the inference thread, one call at a time."""

    def __init__(self, model, tok, batcher, max_batch: int, max_queue: int, context: int,
                 on_step: Callable[[int], None] | None = None) -> None:
        self.model, self.tok, self.batcher = model, tok, batcher
        self.max_batch, self.max_queue, self.context = max_batch, max_queue, context
        self.on_step = on_step or (lambda n: None)
        self.pending: deque[Sequence] = deque()
        self.running: list[Sequence] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
        eos = set(eos if isinstance(eos, list) else [eos]) | {tok.eos_token_id}
        self.eos = frozenset(e for e in eos if e is not None)

    @property
    def depth(self) -> int:
        return len(self.pending) + len(self.running)

    def submit(self, prompt: list[int], sampling: Sampling) -> Sequence:
        """Queue a generation; Saturated when `max_queue` sequences are already waiting or running.
        The caller checks that the prompt leaves room in the context (`context`)."""
        if self.depth >= self.max_queue:
            raise Saturated
        seq = Sequence(list(prompt), sampling, min(sampling.max_tokens, self.context - len(prompt)), self.eos,
                       lambda ids: self.tok.decode(ids, skip_special_tokens=True), asyncio.get_running_loop())
        if seq.limit <= 0:
            seq.finish("length")
            return seq
        self.pending.append(seq)
        self._wake.set()
        return seq

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._drive())

    async def stop(self) -> None:
        while self.depth:
            await asyncio.sleep(0.01)
        if self._task:
            self._task.cancel()

    async def _drive(self) -> None:
        while True:
            if not self.depth:
                self._wake.clear()
                await self._wake.wait()
                continue
            try:
                await self.batcher.run_exclusive(self._step)
            except Exception as e:  # noqa: BLE001 - the running sequences get the error, the server goes on
                for seq in self.running:
                    seq.fail(e)
                self._reset()

    def _step(self) -> None:
        raise NotImplementedError

    def _reset(self) -> None:
        self.running = []


class BatchEngine(Engine):
    """Continuous batching over a left-padded batch (see the module docstring)."""

    def __init__(self, *args, **kw) -> None:
        import inspect

        super().__init__(*args, **kw)
        base = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        # transformers 5.2x renamed `past_key_values` to `cache` (older models keep the old name)
        self.key = "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"
        self._reset()

    def _reset(self) -> None:
        self.running, self.cache = [], None
        self.mask = torch.zeros(0, 0, dtype=torch.long)  # [batch, cached positions]: 1 real, 0 padding
        self.pos = torch.zeros(0, dtype=torch.long)  # [batch]: the next token's position in its own sequence

    @torch.inference_mode()
    def _step(self) -> None:
        if any(s.cancelled for s in self.running):
            self._keep([i for i, s in enumerate(self.running) if not s.cancelled])
        while self.pending and len(self.running) < self.max_batch:
            seq = self.pending.popleft()
            if not seq.cancelled:
                self._admit(seq)
        if self.running:
            self._decode()

    def _forward(self, ids: torch.Tensor, cache, **kw) -> torch.Tensor:
        """Next-token logits [batch, vocab] in float32."""
        return self.model(input_ids=ids, use_cache=True, **{self.key: cache}, **kw).logits[:, -1].float()

    def _admit(self, seq: Sequence) -> None:
        from transformers import DynamicCache

        cache = DynamicCache(config=self.model.config)
        logits = self._forward(torch.tensor([seq.prompt]), cache)
        if seq.add(sample(logits[0], seq.sampling, seq.generator)):
            return  # finished on its first token: never joins the batch
        n = len(seq.prompt)
        if not self.running:
            self.cache, self.mask, self.pos = cache, torch.ones(1, n, dtype=torch.long), torch.tensor([n])
        else:
            length = self.mask.shape[1]
            width = max(length, n)
            kv.pad_left(self.cache, width - length)
            kv.pad_left(cache, width - n)
            kv.concat(self.cache, cache)
            self.mask = torch.cat([torch.nn.functional.pad(self.mask, (width - length, 0)),
                                   torch.nn.functional.pad(torch.ones(1, n, dtype=torch.long), (width - n, 0))])
            self.pos = torch.cat([self.pos, torch.tensor([n])])
        self.running.append(seq)

    def _decode(self) -> None:
        ids = torch.tensor([[s.tokens[-1]] for s in self.running])
        self.mask = torch.cat([self.mask, torch.ones(len(self.running), 1, dtype=torch.long)], dim=1)
        logits = self._forward(ids, self.cache, attention_mask=self.mask, position_ids=self.pos[:, None])
        self.pos = self.pos + 1
        self.on_step(len(self.running))
        rows = zip(self.running, logits, strict=True)
        finished = [s.add(sample(row, s.sampling, s.generator)) for s, row in rows]
        if any(finished):
            self._keep([i for i, f in enumerate(finished) if not f])

    def _keep(self, rows: list[int]) -> None:
        """Only these rows stay; positions that are padding in every remaining row are cut."""
        if not rows:
            self._reset()
            return
        index = torch.tensor(rows)
        kv.select(self.cache, index)
        self.mask, self.pos = self.mask[index], self.pos[index]
        self.running = [self.running[i] for i in rows]
        lead = int((self.mask.sum(0) == 0).long().cumprod(0).sum())  # leading all-padding columns
        kv.cut_left(self.cache, lead)
        self.mask = self.mask[:, lead:]


class SerialEngine(Engine):
    """One sequence at a time through transformers' `generate` (models the batch cannot hold)."""

    def _step(self) -> None:
        seq = self.pending.popleft()
        if seq.cancelled:
            return
        self.running = [seq]
        try:
            self._run(seq)
        finally:
            self.running = []

    @torch.inference_mode()
    def _run(self, seq: Sequence) -> None:
        from transformers import StoppingCriteria, StoppingCriteriaList

        class Streamer:  # transformers' streamer protocol: the prompt first, then each new token
            prompt_seen = False

            def put(self, value) -> None:
                if not self.prompt_seen:
                    self.prompt_seen = True
                    return
                if not seq.done:
                    seq.add(int(value.reshape(-1)[0]))

            def end(self) -> None:
                if not seq.done:
                    seq.finish("length")

        class Stop(StoppingCriteria):
            def __call__(self, input_ids, scores, **kw):
                return seq.done

        s = seq.sampling
        torch.manual_seed(seq.generator.initial_seed())  # generate samples from the global generator
        sampled = s.temperature > 0
        self.model.generate(input_ids=torch.tensor([seq.prompt]), attention_mask=torch.ones(1, len(seq.prompt),
                            dtype=torch.long), max_new_tokens=seq.limit, do_sample=sampled,
                            temperature=s.temperature if sampled else None, top_p=s.top_p if sampled else None,
                            top_k=s.top_k if sampled else None, pad_token_id=self.tok.pad_token_id
                            if self.tok.pad_token_id is not None else self.tok.eos_token_id,
                            streamer=Streamer(), stopping_criteria=StoppingCriteriaList([Stop()]))
        if not seq.done:
            seq.finish("length")


class LlamaCppBatchEngine(Engine):
    """Continuous batching on llama.cpp through its multi-sequence batch API: each running
    sequence owns a sequence id in one context (`LlamaCppSequences`); a new one is prefilled on its
    own, then every step decodes one token of each running sequence in one `llama_decode`; a
    finished one's cache entries are removed. Tokens are picked by `sample` from llama.cpp's
    logits, as on PyTorch."""

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self.ctx, self.slot = None, {}  # the context is built on the inference thread, on first use

    def _step(self) -> None:
        if self.ctx is None:
            self.ctx = self.model.sequences(self.max_batch)
        for s in [s for s in self.running if s.cancelled]:
            self._leave(s)
        while self.pending and len(self.running) < self.max_batch:
            seq = self.pending.popleft()
            if seq.cancelled:
                continue
            slot = min(set(range(self.max_batch)) - set(self.slot.values()))
            self.slot[id(seq)] = slot
            self.running.append(seq)
            logits = torch.from_numpy(self.ctx.prefill(slot, seq.prompt))
            if seq.add(sample(logits, seq.sampling, seq.generator)):
                self._leave(seq)
        if not self.running:
            return
        items = [(self.slot[id(s)], s.tokens[-1], len(s.prompt) + len(s.tokens) - 1) for s in self.running]
        logits = torch.from_numpy(self.ctx.step(items))
        self.on_step(len(self.running))
        for s, row in zip(list(self.running), logits, strict=True):
            if s.add(sample(row, s.sampling, s.generator)):
                self._leave(s)

    def _leave(self, seq: Sequence) -> None:
        self.ctx.free(self.slot.pop(id(seq)))
        self.running.remove(seq)

    def _reset(self) -> None:
        for s in list(self.running):
            try:
                self._leave(s)
            except Exception:  # noqa: BLE001 - after a failed decode: start over with a fresh context
                self.ctx, self.slot, self.running = None, {}, []


def context_length(model) -> int:
    """Tokens the model can attend to: llama.cpp's context, else the trained positions."""
    if hasattr(model, "n_ctx"):
        return int(model.n_ctx)
    cfg = getattr(model, "config", None)
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        if getattr(cfg, key, None):
            return int(getattr(cfg, key))
    return 2**31 - 1


def make_engine(model, tok, batcher, max_batch: int, max_queue: int, on_step=None) -> Engine:
    """The engine for this model: batched on llama.cpp, and on PyTorch where its cache allows."""
    args = (model, tok, batcher, max_batch, max_queue, context_length(model), on_step)
    if hasattr(model, "sequences"):
        return LlamaCppBatchEngine(*args)
    return BatchEngine(*args) if _batchable(model) else SerialEngine(*args)


def _batchable(model) -> bool:
    from transformers import DynamicCache

    if getattr(getattr(model, "peft_config", {}).get("default"), "is_prompt_learning", False):
        return False
    try:
        return kv.batchable(DynamicCache(config=model.config))
    except Exception:  # noqa: BLE001 - a config the cache cannot read: generate() copes
        return False

