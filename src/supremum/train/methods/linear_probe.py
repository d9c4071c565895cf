"""Linear probe: the encoder frozen, a logistic regression (scikit-learn, L-BFGS, L2) fit on its
sentence embeddings, written into the model as its linear classification head.

No gradient steps: the head has a convex objective, so it is fit to convergence in closed loop by
scikit-learn rather than approximated by SGD. The artifact is an ordinary classifier whose
forward pools like a sentence-transformer (supremum.models.sentence) and whose softmax equals
scikit-learn's `predict_proba`; it loads, evaluates, compresses and serves like any other.
SetFit (supremum.train.methods.setfit) ends with this same head on its trained body.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field

from supremum.errors import UserError
from supremum.train.methods import FitContext, MethodConfig, register

if TYPE_CHECKING:
    import numpy as np
    from torch import nn

#: the `train.*` options a fitted head honours: seed, threads and the embedding batch size
FIT_OPTIONS = frozenset({"seed", "threads", "batch_size"})


class SentenceHeadOptions(MethodConfig):
    """Pooling and head options shared by the methods that fit a logistic head on embeddings."""

    pooling: Literal["auto", "mean", "cls"] = Field(
        "auto", description="sentence embedding from token states: mean over tokens, or the first "
        "token; auto = what the model's sentence-transformers config (modules.json) declares, else mean")
    normalize: bool | None = Field(None, description="L2-normalize the embedding (default: as the "
                                   "model's sentence-transformers config declares, else false)")
    max_iter: int = Field(1000, ge=1, description="L-BFGS iterations of the logistic regression at most")


class LinearProbeConfig(SentenceHeadOptions):
    name: Literal["linear-probe"] = "linear-probe"
    words: ClassVar[str | None] = "linear probe"
    train_options: ClassVar[frozenset[str]] = FIT_OPTIONS
    c: float = Field(1.0, gt=0, description="inverse L2 regularization strength of the logistic "
                     "regression (scikit-learn's C)")


def sentence_classifier(model: nn.Module, cfg: SentenceHeadOptions) -> nn.Module:
    """The model pooling as its sentence-transformers config says (or as `cfg` overrides)."""
    from supremum.models.sentence import declared_pooling, to_sentence_classifier

    try:
        declared = declared_pooling(getattr(model, "name_or_path", None) or None)
        model = to_sentence_classifier(
            model, (declared or ("mean", False))[0] if cfg.pooling == "auto" else cfg.pooling,
            (declared or ("mean", False))[1] if cfg.normalize is None else cfg.normalize)
    except ValueError as e:
        raise UserError(f"{cfg.name}: {e}", "set method.pooling to mean or cls") from None
    return model


def embeddings(model: nn.Module, ids: list[list[int]], pad_id: int, batch_size: int) -> np.ndarray:
    """(texts, hidden) float64 sentence embeddings of token ids, in the order of `ids`."""
    import numpy as np
    import torch

    from supremum.data.batching import collate, eval_order

    out = np.zeros((len(ids), model.config.hidden_size))
    model.eval()
    with torch.inference_mode():
        for b in eval_order([len(x) for x in ids], batch_size):
            out[b] = model.embed(**collate([ids[i] for i in b], pad_id)).double().numpy()
    return out


def check_labels(y: list[int], n_labels: int, what: str) -> None:
    """UserError when a label id in 0..n_labels-1 has no training example: no head row
    fit by a logistic regression could predict it."""
    missing = sorted(set(range(n_labels)) - set(y))
    if missing:
        raise UserError(f"{what}: the training split has no example of label id(s) {missing}",
                        "give at least one labelled example of every class")


def fit_head(x: np.ndarray, y: list[int], n_labels: int, c: float, max_iter: int, seed: int, what: str):
    """scikit-learn's LogisticRegression (lbfgs, L2) fit on embeddings `x` (texts, hidden)
    with label ids `y`; see check_labels for the error."""
    from sklearn.linear_model import LogisticRegression

    check_labels(y, n_labels, what)
    return LogisticRegression(C=c, max_iter=max_iter, random_state=seed).fit(x, y)


def write_head(model: nn.Module, clf) -> None:
    """Copy a fitted LogisticRegression into `model.classifier`, so softmax(logits) equals
    `clf.predict_proba`: k > 2 classes keep coef_ (k, hidden) and intercept_ (k,); binary
    sklearn holds one logit w.x + b for class 1, written as the pair (-(w.x + b)/2, (w.x + b)/2),
    whose softmax is (1 - sigmoid, sigmoid)."""
    import numpy as np
    import torch

    w, b = clf.coef_, clf.intercept_
    if w.shape[0] == 1:
        w, b = np.vstack([-w / 2, w / 2]), np.concatenate([-b / 2, b / 2])
    with torch.no_grad():
        model.classifier.weight.copy_(torch.from_numpy(w))
        model.classifier.bias.copy_(torch.from_numpy(b))


def fitted(model: nn.Module, ctx: FitContext, seconds: float, steps: int, loss: float, samples: int):
    """The TrainResult of a fitted model: one evaluation on dev (accuracy), after fitting."""
    from supremum.train.scoring import accuracy_scorer
    from supremum.train.state import TrainResult, TrainState

    st = TrainState(step=steps, epoch=1, train_seconds=seconds, samples=samples)
    st.log.append({"step": steps, "loss": loss, "lr": 0.0})
    if ctx.dev is not None and ctx.dev.ids:
        acc, record = accuracy_scorer(ctx.tokenizer.pad_token_id, False)(model, ctx.dev)
        st.evals.append({"step": steps, **record})
        st.best_score, st.best_step = acc, steps
    model.eval()
    return TrainResult(st, seconds, samples, st.evals)


@register(LinearProbeConfig)
class LinearProbe:
    @staticmethod
    def apply(model: nn.Module, cfg: LinearProbeConfig, total_steps: int) -> nn.Module:
        model = sentence_classifier(model, cfg)
        for name, p in model.named_parameters():
            p.requires_grad_(name.startswith("classifier."))
        return model

    @staticmethod
    def fit(model: nn.Module, cfg: LinearProbeConfig, ctx: FitContext):
        from sklearn.metrics import log_loss

        t0 = time.perf_counter()
        x = embeddings(model, ctx.train.ids, ctx.tokenizer.pad_token_id, ctx.train_cfg.batch_size)
        n = model.config.num_labels
        clf = fit_head(x, ctx.train.labels, n, cfg.c, cfg.max_iter, ctx.train_cfg.seed, cfg.name)
        write_head(model, clf)
        loss = float(log_loss(ctx.train.labels, clf.predict_proba(x), labels=list(range(n))))
        return fitted(model, ctx, time.perf_counter() - t0, int(clf.n_iter_.max()), loss, len(x))

    @staticmethod
    def finalize(model: nn.Module, cfg: LinearProbeConfig) -> tuple[nn.Module, str]:
        return model, "full"
