"""Greedy and sampled generation, one token at a step (its cost at batch 1, prefill and decode
timed apart, is `supremum.evaluate.speed.generation_cost`).

One step interface for every backend (`prefill(ids) -> next token`, `step(token) -> next token`):
PyTorch through the model's KV cache here, llama.cpp in `supremum.backends.llamacpp`. Our own loop
instead of `model.generate` because generate reports neither the prefill/decode split nor the
first token's time.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

#: a choice of the next token from the last position's logits (float32 numpy row); None = argmax
Pick = Callable[[np.ndarray], int] | None


def cache_kwarg(model) -> str:
    """The forward keyword of a transformers model's KV cache: transformers 5.2x renamed
    `past_key_values` to `cache` (older models, and PEFT's wrapper, keep the old name); the cache
    object is updated in place either way."""
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


class TorchStepper:
    def __init__(self, model, pick: Pick = None) -> None:
        from transformers import DynamicCache

        self.model = model.eval()
        self.key = cache_kwarg(model)
        self.cache = DynamicCache(config=model.config)
        self.pick = pick

    def _next(self, ids: list[int]) -> int:
        out = self.model(input_ids=torch.tensor([ids]), use_cache=True, **{self.key: self.cache})
        row = out.logits[0, -1]
        return int(row.argmax()) if self.pick is None else self.pick(row.float().numpy())

    @torch.inference_mode()
    def prefill(self, ids: list[int]) -> int:
        return self._next(ids)

    @torch.inference_mode()
    def step(self, token: int) -> int:
        return self._next([token])


def stepper(model, pick: Pick = None):
    if hasattr(model, "stepper"):  # llama.cpp
        return model.stepper(pick) if pick is not None else model.stepper()
    return TorchStepper(model, pick)


def greedy(model, ids: list[int], new_tokens: int, eos: int | None = None) -> list[int]:
    return generate(model, ids, new_tokens, {eos} if eos is not None else set())


def generate(model, ids: list[int], max_new_tokens: int, stop: set[int], pick: Pick = None) -> list[int]:
    """New token ids after the prompt `ids`, ending at the first token in `stop` (kept) or after
    `max_new_tokens`; greedy unless `pick` chooses from the logits (see `sampler`)."""
    s = stepper(model, pick)
    out = [s.prefill(ids)]
    while len(out) < max_new_tokens and out[-1] not in stop:
        out.append(s.step(out[-1]))
    return out


def sampler(temperature: float, top_p: float, seed: int) -> Pick:
    """Seeded sampling from softmax(logits / temperature), restricted to the smallest set of most
    probable tokens whose probability reaches top_p (nucleus sampling, Holtzman et al. 2020);
    None (greedy) at temperature 0."""
    if temperature == 0:
        return None
    rng = np.random.default_rng(seed)

    def pick(logits: np.ndarray) -> int:
        z = logits.astype(np.float64) / temperature
        p = np.exp(z - z.max())
        p /= p.sum()
        order = np.argsort(-p, kind="stable")
        keep = order[: int(np.searchsorted(np.cumsum(p[order]), top_p)) + 1]
        return int(rng.choice(keep, p=p[keep] / p[keep].sum()))

    return pick
