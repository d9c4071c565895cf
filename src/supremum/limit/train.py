"""One scale-sweep run: a small decoder-only transformer (transformers' Llama, random init) trained
from scratch on D tokens of a stream, then its held-out loss.

The loop is ours and short on purpose: pretraining on fixed windows needs none of the
fine-tuning loop's machinery (tokenization, methods, dev selection), and every run of a sweep
must follow the same stated rule:

- shape: width d, depth L, head size 8 below d=64 and 16 from there, SwiGLU feed-forward 8d/3
  (rounded up to a multiple of 8), RoPE (no position parameters), tied input/output embeddings;
- N = non-embedding parameters (everything except the tied embedding matrix), counted exactly;
- optimizer AdamW (beta 0.9/0.95, eps 1e-8, weight decay 0.1 on matrices), gradient clip 1.0;
- peak learning rate 0.008 * sqrt(128 / d) (2x beat 1x on a Markov pilot at every checkpoint),
  linear warm-up over 5% of steps (at least 5),
  cosine decay to 10% of the peak at the last step;
- each training window is used once (windows are a seeded permutation of non-overlapping
  slices of the training stream; a second pass only when D exceeds the stream, recorded as epochs).

A run whose loss or gradient norm turns NaN/Infinity stops at that step (`Diverged`, before the
update): a diverged run has no loss to fit, and its NaN must not reach result.json or the fit.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from supremum.train import distributed
from supremum.train.divergence import Diverged, finite


@dataclass(frozen=True)
class Shape:
    d: int
    layers: int

    @property
    def head_dim(self) -> int:
        return 8 if self.d < 64 else 16

    @property
    def ffn(self) -> int:
        return int(math.ceil(8 * self.d / 3 / 8) * 8)

    def label(self) -> str:
        return f"d{self.d}L{self.layers}"


# Widths from ~5e3 to ~5e6 non-embedding parameters; depth grows slowly with width.
LADDER = [Shape(16, 2), Shape(24, 2), Shape(32, 2), Shape(48, 3), Shape(64, 3), Shape(96, 4),
          Shape(128, 4), Shape(192, 5), Shape(256, 6)]


def peak_lr(shape: Shape) -> float:
    return 0.008 * math.sqrt(128 / shape.d)


def build_model(shape: Shape, vocab: int, ctx: int, seed: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=vocab, hidden_size=shape.d, intermediate_size=shape.ffn,
                      num_hidden_layers=shape.layers, num_attention_heads=shape.d // shape.head_dim,
                      num_key_value_heads=shape.d // shape.head_dim, max_position_embeddings=ctx,
                      tie_word_embeddings=True, attention_dropout=0.0, bos_token_id=None,
                      eos_token_id=None, pad_token_id=None)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg)
    model.config._attn_implementation = "sdpa"
    return model


def non_embedding_params(model) -> int:
    emb = model.get_input_embeddings().weight
    return sum(p.numel() for p in model.parameters() if p is not emb)


def _schedule(step: int, steps: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    t = (step - warmup) / max(1, steps - warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t))


def optimizer(model, lr: float):
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
                             lr=lr, betas=(0.9, 0.95), eps=1e-8)


@torch.no_grad()
def eval_loss(model, windows: torch.Tensor, skip: int, batch: int = 64) -> float:
    """Mean next-token loss (nats) over targets with at least `skip` tokens of context."""
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(windows), batch):
        w = windows[i:i + batch]
        logits = model(input_ids=w[:, :-1]).logits.float()
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), w[:, 1:], reduction="none")
        nll = nll[:, max(0, skip - 1):]  # target j (1-based) sees j tokens; keep j >= skip
        total += float(nll.sum())
        count += nll.numel()
    model.train()
    return total / count


def windows_of(stream: np.ndarray, ctx: int) -> torch.Tensor:
    n = (len(stream) - 1) // ctx
    idx = np.arange(n)[:, None] * ctx + np.arange(ctx + 1)[None, :]
    return torch.from_numpy(stream[idx].astype(np.int64))


def train_run(shape: Shape, train: np.ndarray, heldout: torch.Tensor, *, vocab: int, tokens: int, ctx: int,
              batch_tokens: int, seed: int, skip: int, evals: int = 6) -> dict:
    """Train on `tokens` tokens; returns the final held-out loss and its curve."""
    model = build_model(shape, vocab, ctx, seed)
    dist = distributed.current()
    fwd = _ddp(model) if dist.active else model
    seqs = max(1, batch_tokens // ctx)
    steps = max(1, tokens // (seqs * ctx))
    warmup = max(5, int(0.05 * steps))
    lr = peak_lr(shape)
    opt = optimizer(model, lr)
    wins = windows_of(train, ctx)
    rng = np.random.default_rng(seed)
    need = steps * seqs
    order = np.concatenate([rng.permutation(len(wins)) for _ in range(math.ceil(need / len(wins)))])[:need]
    eval_at = sorted({int(round(steps * (i + 1) / evals)) for i in range(evals)})
    curve, t0 = [], time.perf_counter()
    for step in range(steps):
        lr_now = lr * _schedule(step, steps, warmup)
        for g in opt.param_groups:
            g["lr"] = lr_now
        # Every rank draws the same windows and trains on its share; DDP averages the gradients,
        # so N processes take the same step as one (equal shares: seqs % N == 0, checked by the sweep).
        batch = wins[order[step * seqs:(step + 1) * seqs]][dist.rank::dist.world]
        loss = train_step(fwd, opt, batch, model, dist, guard=_guard(shape, step + 1, lr_now))
        if step + 1 in eval_at and dist.main:  # only rank 0 reports; the others wait at the next step
            curve.append([(step + 1) * seqs * ctx, eval_loss(model, heldout, skip)])
    if not dist.main:
        return {}
    elapsed = time.perf_counter() - t0
    n = non_embedding_params(model)
    d_seen = steps * seqs * ctx
    return {"shape": shape.label(), "d": shape.d, "layers": shape.layers, "N": n,
            "N_total": sum(p.numel() for p in model.parameters()), "D": d_seen, "flops": 6 * n * d_seen,
            "steps": steps, "batch_tokens": seqs * ctx, "lr": lr, "warmup": warmup,
            "epochs": d_seen / (len(wins) * ctx), "loss": curve[-1][1], "curve": curve,
            "train_loss_last": loss, "seconds": elapsed, "tokens_per_s": d_seen / elapsed, "nproc": dist.world}


def train_step(fwd, opt, w: torch.Tensor, model=None, dist: distributed.Dist = distributed.Dist(),
               guard=None) -> float:
    """One optimizer step on windows `w` (next-token loss over every position); returns the loss,
    averaged over processes. `fwd` runs the forward (the model, or its DDP wrapper); `model` holds
    the parameters; `guard(loss, grad_norm)` runs before the update (both the same on every rank)."""
    logits = fwd(input_ids=w[:, :-1]).logits
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), w[:, 1:].reshape(-1))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    norm = float(torch.nn.utils.clip_grad_norm_((model or fwd).parameters(), 1.0))
    value = distributed.all_reduce_sum(float(loss.detach()), dist) / dist.world
    if guard:
        guard(value, norm)
    opt.step()
    return value


def _guard(shape: Shape, step: int, lr: float):
    def check(loss: float, norm: float) -> None:
        for what, value in (("loss", loss), ("gradient norm", norm)):
            if not finite(value):
                raise Diverged(f"{shape.label()} diverged at step {step} (lr {lr:.3g}): the {what} is {value}",
                               "the sweep's training rule is fixed (so its runs compare): leave this shape "
                               "out of sizes, or use a larger batch_tokens")

    return check


def _ddp(model):
    """DDP over the process group the worker joined (`distributed.init`)."""
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model)
