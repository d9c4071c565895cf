"""Log-likelihood of a continuation given a context under a causal LM, as lm-evaluation-harness
computes it for `loglikelihood` / `multiple_choice` requests.

Source: EleutherAI/lm-evaluation-harness, lm_eval/models/huggingface.py (HFLM): `_encode_pair`
moves the context's trailing whitespace onto the continuation, encodes context + continuation
as one string and takes the continuation's tokens as those after the context's own encoding
(so a merge across the boundary is scored as the continuation's); `tok_encode` adds no special
tokens for causal models (add_bos_token=False by default); `_loglikelihood_tokens` feeds
(context + continuation)[-(max_length + 1):][:-1] and sums the log-softmax of the continuation's
tokens at the positions that predict them. An empty context is replaced by one token (HFLM: the
end-of-text token) so the first continuation token has a position to be predicted from.
"""

from __future__ import annotations

import copy

import numpy as np
import torch


def encode_pair(tok, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """(context ids, continuation ids), tokenized as lm-eval's HFLM._encode_pair does."""
    spaces = len(context) - len(context.rstrip())
    if spaces:
        context, continuation = context[:-spaces], context[-spaces:] + continuation
    whole = tok(context + continuation, add_special_tokens=False)["input_ids"]
    ctx = tok(context, add_special_tokens=False)["input_ids"] if context else []
    if not ctx:
        ctx = [tok.eos_token_id if tok.eos_token_id is not None else tok.bos_token_id]
        return ctx, whole
    return ctx, whole[len(ctx):]


def max_context(model) -> int:
    """Tokens the model attends over: its trained positions (llama.cpp: its context size)."""
    n = getattr(model, "n_ctx", None) or getattr(getattr(model, "config", None), "max_position_embeddings", None)
    return int(n or 2048)


def loglikelihoods(model, tok, pairs: list[tuple[str, str]], batch_size: int = 16,
                   max_length: int | None = None, shared_prefix: bool = False) -> tuple[np.ndarray, int]:
    """(sum of log-probs (nats) of each continuation's tokens given its context, shape (len(pairs),);
    how many inputs lost tokens at the left to fit `max_length`, default the model's context).

    `model(input_ids, attention_mask).logits` of shape (batch, tokens, vocab): a transformers
    causal LM or the llama.cpp backend (see `score_tokens`). `shared_prefix`: the contexts start
    alike (k in-context examples): a PyTorch model runs the token ids they all start with once
    (`score_after_prefix`).
    """
    max_length = max_length or max_context(model)
    encoded = [encode_pair(tok, context, continuation) for context, continuation in pairs]
    if shared_prefix and isinstance(model, torch.nn.Module):
        # the common ids, not the ids of the common text: a tokenizer may merge across its end
        prefix = common_prefix([ctx for ctx, cont in encoded if len(ctx) + len(cont) - 1 <= max_length])
        scores = score_after_prefix(model, prefix, encoded, batch_size, max_length, tok.pad_token_id)
    else:
        scores = score_tokens(model, encoded, batch_size, max_length, tok.pad_token_id)
    truncated = sum(len(ctx) + len(cont) - 1 > max_length for ctx, cont in encoded)
    return np.array([s for s, _ in scores], dtype=np.float64), truncated


@torch.inference_mode()
def score_tokens(model, requests: list[tuple[list[int], list[int]]], batch_size: int = 16,
                 max_length: int | None = None, pad: int | None = None) -> list[tuple[float, bool]]:
    """Per (context ids, continuation ids): the summed log-prob (nats) of the continuation's
    tokens and whether each of them is the argmax at its position (lm-eval's `is_greedy`).

    The model sees (context + continuation)[-(max_length + 1):][:-1] (lm-eval's HFLM
    `_loglikelihood_tokens`: a long context loses tokens at the left). Sequences are
    right-padded, longest first, so padding never precedes a scored token.
    Raises ValueError: a continuation longer than max_length (default: the model's context).
    """
    max_length = max_length or max_context(model)
    seqs = []
    for ctx, cont in requests:
        if len(cont) > max_length:
            raise ValueError(f"a continuation of {len(cont)} tokens exceeds the model's {max_length}")
        seqs.append((ctx + cont)[-(max_length + 1):][:-1])
    out: list[tuple[float, bool]] = [(0.0, True)] * len(requests)
    groups = same_inputs(seqs)
    order = sorted(groups, key=lambda g: -len(g))
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        width = len(rows[0])
        ids = torch.full((len(rows), width), pad if pad is not None else 0, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, seq in enumerate(rows):
            ids[r, :len(seq)] = torch.tensor(seq)
            mask[r, :len(seq)] = 1
        logp = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits.float(), dim=-1)
        for r, seq in enumerate(rows):
            for i in groups[seq]:
                cont = torch.tensor(requests[i][1])
                out[i] = _continuation(logp[r, len(seq) - len(cont):len(seq)], cont)
    return out


def same_inputs(seqs: list[list[int]]) -> dict[tuple[int, ...], list[int]]:
    """The distinct model inputs of `seqs`, each with the indices of the requests it serves.

    Requests whose inputs are the same ids (each label's one-token verbalizer after the same
    prompt: the input is the prompt alone) share one forward pass; lm-eval's HFLM does the same
    for one-token continuations (its Collator groups by context): one forward per prompt, not per label."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, seq in enumerate(seqs):
        groups.setdefault(tuple(seq), []).append(i)
    return groups


def _continuation(logp: torch.Tensor, cont: torch.Tensor) -> tuple[float, bool]:
    """(summed log-prob of `cont`, whether each token is the argmax) from its positions' log-probs
    `logp` of shape (len(cont), vocab)."""
    return float(logp.gather(-1, cont.unsqueeze(-1)).sum()), bool((logp.argmax(-1) == cont).all())


def common_prefix(seqs: list[list[int]]) -> list[int]:
    """The longest list every one of `seqs` starts with ([] for none)."""
    if not seqs:
        return []
    first, n = min(seqs), 0
    last = max(seqs)  # lexicographic extremes: what they share, all share
    while n < min(len(first), len(last)) and first[n] == last[n]:
        n += 1
    return first[:n]


@torch.inference_mode()
def score_after_prefix(model, prefix: list[int], requests: list[tuple[list[int], list[int]]],
                       batch_size: int = 16, max_length: int | None = None,
                       pad: int | None = None) -> list[tuple[float, bool]]:
    """`score_tokens` for requests whose contexts start with the token ids `prefix`, the prefix
    run once: its KV cache (transformers `past_key_values`) is copied into every batch, which then
    runs only the tokens after it. With k in-context examples the prefix is most of every prompt,
    and lm-eval's HFLM re-encodes it for each request and label.

    Same tokens at the same positions as `score_tokens`, so the same scores up to float rounding
    (tested). A request goes through `score_tokens` instead when its context does not start with
    the prefix's ids (a merge across the boundary), is the prefix alone, or would be cut at the
    left. `model`: a transformers causal LM (PEFT-wrapped included)."""
    max_length = max_length or max_context(model)
    n_prefix = len(prefix)
    shared = [i for i, (ctx, cont) in enumerate(requests)
              if n_prefix and len(ctx) > n_prefix and ctx[:n_prefix] == prefix
              and len(ctx) + len(cont) - 1 <= max_length]
    out: list[tuple[float, bool]] = [(0.0, True)] * len(requests)
    rest = sorted(set(range(len(requests))) - set(shared))
    for i, s in zip(rest, score_tokens(model, [requests[i] for i in rest], batch_size, max_length, pad),
                    strict=True):
        out[i] = s
    if not shared:
        return out
    from transformers import DynamicCache

    from supremum.lm.generation import cache_kwarg

    key, cache = cache_kwarg(model), DynamicCache(config=model.config)
    model(input_ids=torch.tensor([prefix]), use_cache=True, **{key: cache})  # fills the cache in place
    groups = same_inputs([(requests[i][0] + requests[i][1])[n_prefix:-1] for i in shared])
    order = sorted(groups, key=lambda g: -len(g))
    for start in range(0, len(order), batch_size):
        tails = order[start:start + batch_size]
        ids = torch.full((len(tails), len(tails[0])), pad if pad is not None else 0, dtype=torch.long)
        mask = torch.zeros((len(tails), n_prefix + len(tails[0])), dtype=torch.long)
        mask[:, :n_prefix] = 1
        for r, tail in enumerate(tails):
            ids[r, :len(tail)] = torch.tensor(tail)
            mask[r, n_prefix:n_prefix + len(tail)] = 1
        batch_cache = copy.deepcopy(cache)  # the forward appends to it: every batch starts from the prefix
        batch_cache.batch_repeat_interleave(len(tails))
        logits = model(input_ids=ids, attention_mask=mask, use_cache=True, **{key: batch_cache}).logits
        logp = torch.log_softmax(logits.float(), dim=-1)
        for r, tail in enumerate(tails):
            for i in (shared[j] for j in groups[tail]):
                ctx, cont = requests[i][0], torch.tensor(requests[i][1])
                first = len(ctx) - 1 - n_prefix  # tail position predicting the continuation's first token
                out[i] = _continuation(logp[r, first:first + len(cont)], cont)
    return out
