"""Attributions for causal LMs: which prompt tokens the log-likelihood of a continuation rests on.

Two methods, both captum's LLM attribution (captum.attr.LLMAttribution / LLMGradientAttribution,
attribution target the log-probability of the continuation):

- `occlusion`: FeatureAblation over prompt tokens: each token replaced by a baseline token, the
  drop in log p(continuation | prompt). Runs on the model's forward alone.
- `integrated-gradients`: LayerIntegratedGradients on the input embeddings, from the baseline
  prompt (every token the baseline token) to the prompt, per continuation token (captum sums the
  embedding dimensions); the sequence score is the sum over continuation tokens.

The continuation is the one given (`target`) or the model's greedy generation of
`max_new_tokens`. Scores are in nats of log-probability; positive: the token raises the
continuation's probability. Special tokens the tokenizer adds (BOS) are not attributed.
PyTorch causal-LM artifacts only (llama.cpp runs no captum forward).
"""

from __future__ import annotations

import time

from supremum.errors import UserError

METHODS = ("occlusion", "integrated-gradients")


def baseline_id(tok) -> int:
    """The stand-in token: unknown, else padding, else end-of-sequence (a token the model has
    seen carry little content), else id 0."""
    return next(i for i in (tok.unk_token_id, tok.pad_token_id, tok.eos_token_id, 0) if i is not None)


def check_methods(methods: list[str] | None) -> list[str]:
    chosen = list(methods or METHODS)
    if bad := [m for m in chosen if m not in METHODS]:
        raise UserError(f"method(s) {', '.join(bad)} do not apply to a causal LM",
                        f"use --methods {','.join(METHODS)}")
    return chosen


def explain_prompt(model, tok, prompt: str, method: str, *, target, steps: int = 50) -> dict:
    """One prompt explained by one method: {"prompt_tokens": [str] (n), "target_tokens": [str]
    (m), "sequence": [float] (n: score of each prompt token for the whole continuation),
    "per_token": [[float]] (m x n), "seconds"}. `target`: the continuation's token ids."""
    import torch
    from captum.attr import (
        FeatureAblation,
        LayerIntegratedGradients,
        LLMAttribution,
        LLMGradientAttribution,
        TextTokenInput,
    )

    base = baseline_id(tok)
    skip = [i for i in (tok.bos_token_id,) if i is not None]
    inp = TextTokenInput(prompt, tok, baselines=base, skip_tokens=skip)
    t0 = time.perf_counter()
    if method == "occlusion":
        # one forward over prompt + continuation (captum's token-by-token decoding gives the same
        # quantity through a KV cache, slower and with its rounding)
        res = LLMAttribution(FeatureAblation(model), tok).attribute(inp, target=target, forward_in_tokens=False)
    else:
        ids = inp.to_tensor()
        lig = LayerIntegratedGradients(model, model.get_input_embeddings())
        res = LLMGradientAttribution(lig, tok).attribute(inp, target=target, n_steps=steps,
                                                         baselines=torch.full_like(ids, base))
    return {"prompt_tokens": list(res.input_tokens), "target_tokens": list(res.output_tokens),
            "sequence": [float(x) for x in res.seq_attr],
            "per_token": None if res.token_attr is None else [[float(x) for x in row] for row in res.token_attr],
            "seconds": time.perf_counter() - t0}


def continuation(model, tok, prompt: str, target: str | None, max_new_tokens: int):
    """The continuation's token ids (1-D tensor): `target` tokenized without special tokens, or the
    model's greedy generation of up to `max_new_tokens` (stopping at end-of-sequence)."""
    import torch

    if target is not None:
        ids = tok(target, add_special_tokens=False)["input_ids"]
        if not ids:
            raise UserError("--target is empty: there is no continuation to explain", "give a non-empty --target")
        return torch.tensor(ids)
    enc = tok(prompt, return_tensors="pt")
    with torch.inference_mode():
        out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id)
    return out[0, enc["input_ids"].shape[1]:]


def explain_lm(model, tok, prompts: list[str], methods: list[str], *, target: str | None,
               max_new_tokens: int, steps: int) -> dict:
    """Every prompt under every method, all explaining the same continuation of each prompt (the
    given `target`, or the greedy generation made once)."""
    model.eval()
    out = []
    for prompt in prompts:
        cont = continuation(model, tok, prompt, target, max_new_tokens)
        per = {m: explain_prompt(model, tok, prompt, m, target=cont, steps=steps) for m in methods}
        out.append({"prompt": prompt, "continuation": tok.decode(cont), "methods": per})
    return {"methods": methods, "baseline_token": baseline_id(tok), "examples": out,
            "settings": {"steps": steps, "max_new_tokens": max_new_tokens, "target": target,
                         "score": "change in log p(continuation | prompt), nats",
                         "source": "captum LLMAttribution (FeatureAblation), LLMGradientAttribution "
                                   "(LayerIntegratedGradients on the input embeddings)"}}


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Explanations of {{ r.artifact }}</title>
<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:70em}
.ex{border-top:1px solid #ccc;padding:.6em 0}.m{color:#555;font-size:.85em;width:12em;display:inline-block}
.w{padding:.1em .05em;border-radius:3px;white-space:pre-wrap}.note{color:#555;font-size:.9em}</style></head><body>
<h1>Which prompt tokens does {{ r.lineage }} ({{ r.artifact }}) rest its continuation on?</h1>
<p class="note">Score: {{ r.settings.score }}; green raises the continuation's probability, red lowers it
(shade: |score| over the prompt's largest). Baseline token id {{ r.baseline_token }}. {{ r.settings.source }}.</p>
{% for e in r.examples %}<div class="ex"><p>continuation: <b>{{ e.continuation }}</b></p>
{% for m, a in e.methods.items() %}<div><span class="m">{{ m }}</span>{% for t in a.prompt_tokens %}
<span class="w" style="background:{{ shade(a.sequence, loop.index0) }}"
 title="{{ "%.4g"|format(a.sequence[loop.index0]) }}">{{ t }}</span>{% endfor %}</div>{% endfor %}
</div>{% endfor %}</body></html>
"""


def run(art, prompts: list[str], methods: list[str] | None, *, target: str | None, max_new_tokens: int,
        steps: int, output=None, store=None, command: str = "") -> dict:
    """`explain_lm` on a PyTorch causal-LM artifact, written as explanations.json and
    explanations.html (default: $SUPREMUM_HOME/explanations/<run id>) and recorded as a store run
    of kind `explain-lm`. UserError: a llama.cpp artifact, a method that does not apply."""
    from pathlib import Path

    import jinja2

    from supremum import backends
    from supremum.artifact import new_id
    from supremum.explain.page import shade
    from supremum.fsutil import write_bytes, write_json
    from supremum.machine import fingerprint
    from supremum.store import Store

    chosen = check_methods(methods)
    if art.manifest.backend != "pytorch":
        raise UserError(f"artifact {art.id} runs in {art.manifest.backend}; causal-LM attributions need its "
                        "PyTorch weights", "explain the PyTorch artifact it was exported from (its parent)")
    store = store or Store()
    run_id = new_id()
    out_dir = Path(output) if output else store.root / "explanations" / run_id
    config = {"methods": chosen, "target": target, "max_new_tokens": max_new_tokens, "steps": steps,
              "examples": len(prompts), "output": str(out_dir)}
    with store.run(run_id, "explain-lm", command, config, fingerprint(), parents=[art.id]) as rec:
        model, tok = backends.load(art)
        result = explain_lm(model, tok, prompts, chosen, target=target, max_new_tokens=max_new_tokens, steps=steps)
        result |= {"artifact": art.id, "lineage": art.lineage, "run": run_id, "output": str(out_dir)}
        write_json(out_dir / "explanations.json", result)
        env = jinja2.Environment(autoescape=True)
        write_bytes(out_dir / "explanations.html", env.from_string(PAGE).render(r=result, shade=shade).encode())
        seconds = {m: sum(e["methods"][m]["seconds"] for e in result["examples"]) for m in chosen}
        rec.finish({"methods": chosen, "examples": len(prompts), "seconds": seconds, "output": str(out_dir)}, art)
    return result
