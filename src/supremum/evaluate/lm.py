"""Evaluation of a causal LM on held-out text: perplexity, bits per byte, generation cost and a
few greedy samples."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

from supremum.config import DataConfig, EvalConfig
from supremum.evaluate.speed import generation_cost, param_counts
from supremum.lm.data import LMData, load_lm_data, render, stream
from supremum.lm.generation import greedy
from supremum.lm.metrics import perplexity
from supremum.preprocessing import WHOLE, Preprocessing, scored
from supremum.tasks import CAUSAL_LM

SAMPLES = 3
SAMPLE_PROMPT_TOKENS = 32


def evaluation_tokens(tok, data: LMData, split: str, max_tokens: int | None) -> tuple[list[int], str]:
    """The token stream scored for perplexity (documents or rendered conversations, each ended by
    end-of-sequence), cut to max_tokens, and the text those tokens spell (for bits per byte)."""
    if data.kind == "text":
        ids = stream(tok, data.split(split))
    else:
        ids = [t for r in data.split(split) for t in render(tok, r["messages"], generation_prompt=False)]
    if max_tokens:
        ids = ids[:max_tokens]
    return ids, tok.decode(ids[1:], skip_special_tokens=True)


def sample_prompts(tok, data: LMData, split: str, ids: list[int]) -> list[list[int]]:
    """Instruction data: the first test conversations up to the first answer. Text: 32-token
    pieces of held-out text at evenly spaced places."""
    if data.kind == "instruction":
        out = []
        for r in data.split(split)[:SAMPLES]:
            first = next(i for i, m in enumerate(r["messages"]) if m["role"] == "assistant")
            out.append(render(tok, r["messages"][:first], generation_prompt=True))
        return out
    step = max(1, (len(ids) - SAMPLE_PROMPT_TOKENS) // SAMPLES)
    return [ids[i : i + SAMPLE_PROMPT_TOKENS] for i in range(0, step * SAMPLES, step)
            if len(ids[i : i + SAMPLE_PROMPT_TOKENS]) == SAMPLE_PROMPT_TOKENS] or [ids[:SAMPLE_PROMPT_TOKENS]]


def evaluate_lm(model, tok, data_cfg: DataConfig, cfg: EvalConfig, prep: Preprocessing, *,
                outputs: Path | None = None, parent: Callable[[], tuple] | None = None) -> dict:
    """Perplexity etc. on cfg.split of the data (split "all": every record, nothing cut); windows
    of cfg.window tokens, default prep.max_length (the training block length of an artifact).
    cfg.generate: answers scored (lm.quality), written to `outputs`. cfg.reference_data: the
    forgetting block (lm.forgetting), against `parent()` -> (model, tokenizer, name) when given."""
    data = load_lm_data(data_cfg, whole=cfg.split == WHOLE)
    if cfg.generate:  # refused before any model time is spent
        from supremum.lm.quality import check_instruction

        check_instruction(data)
    ids, text = evaluation_tokens(tok, data, cfg.split, cfg.max_tokens)
    if len(ids) < 2:
        from supremum.errors import UserError

        raise UserError(f"the {cfg.split} split of {data_cfg.path} has fewer than 2 tokens", "give more text")
    window = cfg.window or prep.max_length
    prep.check_fits(window, "--window" if cfg.window else "--max-length")
    t0 = time.perf_counter()
    # Windows per batch capped at 8: a batch's logits are windows x tokens x vocabulary floats.
    ppl = perplexity(model, ids, window, cfg.stride or max(1, window // 2), min(cfg.batch_size, 8))
    nbytes = len(text.encode("utf-8"))
    out = {"task": CAUSAL_LM.pipeline_tag, "data": data_cfg.path, "split": cfg.split,
           "scored": scored(ppl["tokens"], "tokens", data_cfg.path, cfg.split),
           "perplexity": ppl["perplexity"], "loss": ppl["loss"],
           "bits_per_byte": ppl["nll"] / math.log(2) / max(nbytes, 1),
           "perplexity_detail": {**ppl, "bytes": nbytes, "method": (
               f"strided sliding window: windows of {ppl['window']} tokens every {ppl['stride']} tokens, "
               f"each of the {ppl['tokens']} tokens after the first scored once; bits per byte = "
               "summed NLL / ln 2 / UTF-8 bytes of the scored text")},
           "eval_seconds": time.perf_counter() - t0}
    prompts = sample_prompts(tok, data, cfg.split, ids)
    out["samples"] = [{"prompt": tok.decode(p, skip_special_tokens=True),
                       "completion": tok.decode(greedy(model, p, cfg.new_tokens, tok.eos_token_id),
                                                skip_special_tokens=True)} for p in prompts]
    if cfg.generate:
        from supremum.lm.quality import answer

        out.update(answer(model, tok, data, cfg, cfg.split, outputs))
    if cfg.speed:
        prompt = (ids * (cfg.prompt_tokens // max(len(ids), 1) + 1))[: cfg.prompt_tokens]
        out["cost"] = {**param_counts(model),
                       "generation": generation_cost(model, prompt, cfg.new_tokens, cfg.gen_warmup,
                                                     cfg.gen_repeats)}
        out["cost"]["peak_rss_mb"] = out["cost"]["generation"]["peak_rss_mb"]
    if cfg.reference_data:  # after the cost: loading the parent must not count in this model's memory
        out["forgetting"] = _forgetting(model, tok, cfg, window, parent)
        out["forgetting_pct"] = out["forgetting"].get("change_pct")
    return out


def _forgetting(model, tok, cfg: EvalConfig, window: int, parent: Callable[[], tuple] | None) -> dict:
    from supremum.lm.forgetting import forgetting, reference_perplexity

    how = (cfg.reference_data, cfg.reference_tokens, window, cfg.stride or max(1, window // 2))
    mine = reference_perplexity(model, tok, *how)
    if parent is None:
        return forgetting(mine, None, None, cfg.reference_data)
    p_model, p_tok, name = parent()
    return forgetting(mine, reference_perplexity(p_model, p_tok, *how), name, cfg.reference_data)
