"""Word attributions of a classifier's predicted class, one function per method.

Gradient methods (captum) attribute to the output of the input-embedding layer and need a
PyTorch model with gradients; occlusion needs only the artifact's own predict function, so ONNX
Runtime and ensemble artifacts are explained as they run; attention rollout is a weaker,
class-agnostic baseline (it says where attention flows, not what changes the prediction).

Signs: positive supports the predicted class. Sources: Sundararajan et al. 2017 (Integrated
Gradients), Shrikumar et al. 2016 (gradient x input), Zeiler & Fergus 2014 (occlusion), Abnar &
Zuidema 2020 (attention rollout).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch

from supremum.explain.words import Encoded, merge

GRADIENT = ("integrated-gradients", "input-x-gradient")


@dataclass
class Attribution:
    """Word scores (one per word of the encoded text) and what the method reports besides."""

    words: np.ndarray
    extra: dict = field(default_factory=dict)


def _embeddings(model) -> torch.nn.Module:
    return model.get_input_embeddings()


def _forward(model) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda ids: model(input_ids=ids).logits.float()


def baseline_ids(enc: Encoded, pad_id: int) -> torch.Tensor:
    """The reference input of Integrated Gradients: special tokens kept, every other token the
    padding token (as in captum's BERT tutorial)."""
    return torch.tensor([[t if w is None else pad_id for t, w in zip(enc.ids, enc.token_word, strict=True)]])


def integrated_gradients(model, enc: Encoded, target: int, pad_id: int, steps: int) -> Attribution:
    """Integrated Gradients of the target logit on the embedding layer, summed over the hidden
    dimension and over each word's tokens. `convergence_delta` = sum of attributions minus
    (logit(x) - logit(baseline)): the integral's numerical error, in logits."""
    from captum.attr import LayerIntegratedGradients

    lig = LayerIntegratedGradients(_forward(model), _embeddings(model))
    attr, delta = lig.attribute(torch.tensor([enc.ids]), baseline_ids(enc, pad_id), target=target,
                                n_steps=steps, return_convergence_delta=True)
    tokens = attr.sum(-1)[0].detach().double().numpy()
    return Attribution(merge(tokens, enc.token_word, len(enc.words)),
                       {"convergence_delta": float(delta.item()), "steps": steps,
                        "sum": float(tokens.sum()), "baseline": "padding token at every non-special position"})


def input_x_gradient(model, enc: Encoded, target: int) -> Attribution:
    """Gradient of the target logit times the embedding output, summed over hidden and tokens."""
    from captum.attr import LayerGradientXActivation

    attr = LayerGradientXActivation(_forward(model), _embeddings(model)).attribute(
        torch.tensor([enc.ids]), target=target)
    return Attribution(merge(attr.sum(-1)[0].detach().double().numpy(), enc.token_word, len(enc.words)))


def occlusion(predict: Callable[[list[list[int]]], np.ndarray], enc: Encoded, target: int,
              replace_id: int, batch_size: int) -> Attribution:
    """Per word: p(target | x) - p(target | x with the word's tokens replaced by `replace_id`),
    by captum's FeatureAblation with one feature group per word, through `predict` (token ids ->
    class probabilities, the artifact's own runtime)."""
    from captum.attr import FeatureAblation

    n = len(enc.words)
    # special tokens get groups of their own (numbered after the words), whose scores are dropped
    group = [w if w is not None else n + i for i, w in enumerate(enc.token_word)]
    fa = FeatureAblation(lambda ids: torch.from_numpy(predict(ids.tolist())[:, target]))
    attr = fa.attribute(torch.tensor([enc.ids]), baselines=replace_id, feature_mask=torch.tensor([group]),
                        perturbations_per_eval=batch_size)[0].double().numpy()
    first = {w: i for i, w in reversed(list(enumerate(enc.token_word))) if w is not None}
    return Attribution(np.array([attr[first[w]] for w in range(n)]), {"replacement_token_id": replace_id})


@contextmanager
def _eager_attention(model):
    """Attention weights come only from the eager implementation (sdpa does not return them)."""
    config = model.config
    before = getattr(config, "_attn_implementation", None)
    if before not in (None, "eager"):
        model.set_attn_implementation("eager")
    try:
        yield
    finally:
        if before not in (None, "eager"):
            model.set_attn_implementation(before)


@torch.no_grad()
def attention_rollout(model, enc: Encoded, read_first: bool) -> Attribution:
    """Attention rollout: per layer, heads averaged, the residual added (0.5 A + 0.5 I) and rows
    renormalized; the layers multiplied; the row of the token the classifier reads ([CLS] when
    `read_first`, else the last token). Non-negative and the same for every class."""
    with _eager_attention(model):
        out = model(input_ids=torch.tensor([enc.ids]), output_attentions=True)
    if not out.attentions:
        raise RuntimeError("the model returned no attention weights")
    n = len(enc.ids)
    rollout = torch.eye(n, dtype=torch.float64)
    for layer in out.attentions:
        a = 0.5 * layer[0].double().mean(0) + 0.5 * torch.eye(n, dtype=torch.float64)
        rollout = (a / a.sum(-1, keepdim=True)) @ rollout
    row = rollout[0 if read_first else n - 1].numpy()
    return Attribution(merge(row, enc.token_word, len(enc.words)),
                       {"read_from": "first token" if read_first else "last token"})


NO_BACKWARD = "an autograd kernel was not registered"


def gradient_problem(model, ids: list[int]) -> str | None:
    """Why gradients cannot be taken through `model` (None when they can): it is not PyTorch, or
    one of its operators (e.g. int8 dynamic quantization's) has no backward. PyTorch only warns
    when it backprops through such an operator and goes on with gradients that skip it (around
    it through the residual paths): silently wrong attributions, so the warning refuses too."""
    import warnings

    if not isinstance(model, torch.nn.Module) or not hasattr(model, "get_input_embeddings"):
        return "its runtime computes no gradients"
    error = None
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        try:
            input_x_gradient(model, Encoded("", ids, [], [None] * len(ids), [], 0), 0)
        except RuntimeError as e:  # nothing differentiable reaches the output
            error = str(e).splitlines()[0][:80]
    ops = sorted({str(w.message).partition(": ")[0] for w in seen if NO_BACKWARD in str(w.message)})
    if ops:
        return f"{', '.join(ops)} has no gradient (no autograd kernel)"
    return f"it has no gradient (autograd: {error})" if error else None


def attention_problem(model, ids: list[int]) -> str | None:
    """Why attention rollout cannot run on `model` (None when it can)."""
    if not isinstance(model, torch.nn.Module) or not hasattr(model, "set_attn_implementation"):
        return "it reads PyTorch attention weights"
    try:
        attention_rollout(model, Encoded("", ids, [], [None] * len(ids), [], 0), True)
    except (RuntimeError, ValueError, TypeError) as e:
        return "the model returns no attention weights (" + str(e).splitlines()[0][:120] + ")"
    return None
