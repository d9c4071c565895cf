"""Generation quality on instruction data: the model answers every held-out prompt and each
answer is scored against the reference answer.

Metrics (corpus level, over the answers of the split):
- exact_match: share (0-1) of answers equal to the reference after stripping surrounding whitespace;
- chrf, bleu: sacrebleu's corpus chrF (character 6-grams, β=2; Popović 2015) and BLEU (4-grams,
  13a tokenization, exponential smoothing; Papineni et al. 2002), 0-100;
- rouge_l: mean over answers of rouge-score's ROUGE-L F-measure (Lin 2004), 0-100, with words
  found by a Unicode tokenizer: rouge-score's default keeps only a-z and 0-9, which would cut
  "Männer" into "m" and "nner".
The reference implementations compute the numbers; nothing is re-implemented here.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from supremum.errors import UserError
from supremum.fsutil import write_bytes
from supremum.lm.data import LMData, render
from supremum.lm.generation import generate, sampler

#: examples shown in reports: this many best and worst answers by sentence chrF
SHOWN = 3


class UnicodeWords:
    """rouge-score tokenizer: lower-cased Unicode word characters (letters, digits, underscore)."""

    def tokenize(self, text: str) -> list[str]:
        return re.findall(r"\w+", text.lower())


def generation_metrics(outputs: list[str], references: list[str]) -> dict:
    """Exact match (0-1), chrF, BLEU and ROUGE-L (0-100) of `outputs` against `references`."""
    import sacrebleu
    from rouge_score import rouge_scorer

    if len(outputs) != len(references) or not outputs:
        raise ValueError("generation_metrics needs as many outputs as references, at least one")
    scorer = rouge_scorer.RougeScorer(["rougeL"], tokenizer=UnicodeWords())
    rouge = [scorer.score(r, o)["rougeL"].fmeasure for o, r in zip(outputs, references, strict=True)]
    return {"exact_match": sum(o.strip() == r.strip() for o, r in zip(outputs, references, strict=True))
            / len(outputs),
            "chrf": sacrebleu.corpus_chrf(outputs, [references]).score,
            "bleu": sacrebleu.corpus_bleu(outputs, [references]).score,
            "rouge_l": 100 * sum(rouge) / len(rouge)}


def sentence_chrf(output: str, reference: str) -> float:
    import sacrebleu

    return sacrebleu.sentence_chrf(output, [reference]).score


def prompts_and_references(data: LMData, split: str, limit: int | None) -> list[tuple[list[dict], str]]:
    """(conversation before the last answer, that answer) for each example of the split."""
    out = []
    for r in data.split(split)[:limit]:
        msgs = r["messages"]
        last = max(i for i, m in enumerate(msgs) if m["role"] == "assistant")
        out.append((msgs[:last], msgs[last]["content"]))
    return out


def stop_tokens(model, tok) -> set[int]:
    """End-of-sequence ids: the tokenizer's and the model's generation config's (chat models often
    end a turn with a token of their own, e.g. <|im_end|>)."""
    ids = {tok.eos_token_id} if tok.eos_token_id is not None else set()
    gen = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids |= set(gen) if isinstance(gen, list) else ({gen} if gen is not None else set())
    return ids


def check_instruction(data: LMData) -> None:
    if data.kind != "instruction":
        raise UserError("--generate scores answers to prompts, and the data is plain text",
                        "give instruction data (JSONL with prompt/response or chat messages)")


def answer(model, tok, data: LMData, cfg, split: str, outputs: Path | None) -> dict:
    """Generate an answer to each prompt of `split` (cfg: max_new_tokens, temperature, top_p,
    seed, generate_limit), score them, and write every prompt, reference and output to `outputs`
    (JSONL, one row per example; temporary name, then rename). UserError on text data."""
    check_instruction(data)
    pairs = prompts_and_references(data, split, cfg.generate_limit)
    stop, pick = stop_tokens(model, tok), sampler(cfg.temperature, cfg.top_p, cfg.seed)
    rows, t0 = [], time.perf_counter()
    for i, (context, reference) in enumerate(pairs):
        ids = generate(model, render(tok, context, generation_prompt=True), cfg.max_new_tokens, stop, pick)
        text = tok.decode([t for t in ids if t not in stop], skip_special_tokens=True)
        prompt = next((m["content"] for m in reversed(context) if m["role"] == "user"), "")
        rows.append({"index": i, "prompt": prompt, "reference": reference, "output": text,
                     "context": context, "new_tokens": len(ids), "stopped": ids[-1] in stop,
                     "chrf": sentence_chrf(text, reference)})
    seconds = time.perf_counter() - t0
    metrics = generation_metrics([r["output"] for r in rows], [r["reference"] for r in rows])
    ranked = sorted(rows, key=lambda r: (-r["chrf"], r["index"]))
    brief = lambda r: {k: r[k] for k in ("index", "prompt", "reference", "output", "chrf")}  # noqa: E731
    how = "greedy" if cfg.temperature == 0 else (f"sampling at temperature {cfg.temperature:g}, top_p "
                                                 f"{cfg.top_p:g}, seed {cfg.seed}")
    detail = {"examples": len(rows), "decoding": how, "max_new_tokens": cfg.max_new_tokens,
              "truncated": sum(not r["stopped"] for r in rows), "seconds": seconds,
              "new_tokens": sum(r["new_tokens"] for r in rows),
              "tokens_per_s": sum(r["new_tokens"] for r in rows) / seconds,
              "best": [brief(r) for r in ranked[:SHOWN]], "worst": [brief(r) for r in ranked[::-1][:SHOWN]],
              "outputs": str(outputs) if outputs else None,
              "method": ("answer to each prompt rendered as the model was trained (chat template or role "
                         f"lines), {how}, until end-of-sequence or {cfg.max_new_tokens} tokens; exact "
                         "match on stripped text (0-1); sacrebleu corpus chrF and BLEU (0-100); mean "
                         "rouge-score ROUGE-L F (0-100, Unicode word tokens); best/worst by sentence chrF")}
    if outputs is not None:
        write_bytes(outputs, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8"))
    return {**metrics, "generation_quality": detail}
