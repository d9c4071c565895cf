"""The training loop for classifiers: readable top to bottom.

One optimizer step = `grad_accum` micro-batches whose summed loss is divided by the number of
examples in the step, so accumulation gives the same gradient as one large batch.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from supremum import device
from supremum.config import TrainConfig
from supremum.data.batching import Split, batch_order, iterate
from supremum.train import adversarial, distributed, precision, sharding
from supremum.train import checkpoint as ckpt
from supremum.train.divergence import bad_weights, diverged, finite, grad_norm
from supremum.train.optim import build_optimizer, lr_factor, set_lr, warmup_steps
from supremum.train.scoring import accuracy_scorer
from supremum.train.state import TrainResult, TrainState


def plan_steps(n_train: int, cfg: TrainConfig, world: int = 1) -> tuple[int, int]:
    """(optimizer steps per epoch, total optimizer steps); batch_size is per process."""
    per_epoch = math.ceil(math.ceil(n_train / (cfg.batch_size * world)) / cfg.grad_accum)
    total = cfg.max_steps or max(1, math.ceil(cfg.epochs * per_epoch))
    return per_epoch, total


def train(model, train_split: Split, dev: Split | None, cfg: TrainConfig, pad_id: int, *,
          ckpt_dir: Path | None = None, resume: bool = False,
          on_step: Callable[[dict], None] | None = None,
          loss_fn: Callable | None = None,
          after_step: Callable | None = None,
          scorer: Callable | None = None,
          on_eval: Callable[[int, float], None] | None = None) -> tuple[TrainResult, dict | None]:
    """Train in place; returns the result and the best trainable weights (when keep_best).

    `loss_fn(model, batch, labels)` replaces the summed cross-entropy (distillation uses it);
    `after_step(model, step)` runs after each optimizer step while the gradients still exist;
    `scorer(model, dev) -> (score, record)` replaces dev accuracy (higher score is better; the
    record goes into the evaluation log). `on_eval(step, score)` runs after each dev evaluation
    (a hyperparameter search reports to its pruner there; an exception it raises ends training).

    A non-finite loss, gradient norm, dev score or trainable weight raises `Diverged` (a
    UserError naming the step and learning rate) on every process at the same step, before the
    optimizer applies that step, so no non-finite state is checkpointed, kept as best or returned.

    `cfg.request` (train.precision) is resolved first (`precision`: auto probes bf16 against fp32
    on dev), recorded in the state and printed; training and dev scoring then run in it."""
    dist = distributed.current()
    sharded = dist.active and cfg.parallel == "fsdp"
    where = device.resolve(cfg.device)
    precision.check(cfg.request, where.type)
    model.to(where)  # before sharding and the optimizer, which must hold the parameters on the device
    if cfg.gradient_checkpointing:
        checkpointing(model)
    resuming = resume and ckpt_dir is not None and ckpt.exists(ckpt_dir)
    # Probed before sharding: FSDP's lazy initialization inside the probe's inference mode would
    # leave inference tensors that the training forward cannot save for backward. A resumed run
    # keeps its checkpoint's decision (a probe of the trained weights could decide otherwise).
    probed = None if resuming else _resolve_precision(model, dev, cfg, where, pad_id, scorer, dist)
    if sharded:
        sharding.shard(model)  # before the optimizer, which must hold the sharded parameters
    opt = build_optimizer(model, cfg)
    per_epoch, total = plan_steps(len(train_split.ids), cfg, dist.world)
    warm = warmup_steps(cfg, total)
    state, best = TrainState(), None
    if resuming:
        state, best = ckpt.load_checkpoint(ckpt_dir, model, opt, sharded)  # loaded onto `where`
        state.devices = state.devices or ["cpu"]  # checkpoints from before --device were all CPU runs
    if not state.devices or state.devices[-1] != str(where):
        state.devices.append(str(where))
    # A checkpoint from before train.precision holds none; its config asked for fp32 or bf16 (no probe).
    state.precision = state.precision or probed or _resolve_precision(model, dev, cfg, where, pad_id, scorer, dist)
    cfg = cfg.model_copy(update={"precision": state.precision["resolved"], "bf16": None})
    if dist.main and state.precision["requested"] == "auto":  # a decision this run made: say it
        sys.stderr.write(precision.Precision(**state.precision).line() + "\n")
    scaler = torch.amp.GradScaler("cuda") if cfg.precision == "fp16" else None
    lengths = [len(x) for x in train_split.ids]
    fwd = _ddp(model) if dist.active and not sharded else model
    if cfg.compile:
        fwd = _compiled(fwd)
    model.train()
    while state.step < total and not state.stopped_early:
        # Every rank draws the same global batches (batch_size per process x processes) and
        # trains on its slice, so N processes step exactly like one process with N x the batch.
        batches = batch_order(lengths, cfg.batch_size * dist.world, cfg.seed, state.epoch, cfg.group_by_length)
        steps = [batches[i : i + cfg.grad_accum] for i in range(0, len(batches), cfg.grad_accum)]
        for j in range(state.batch_in_epoch, len(steps)):
            t0 = time.perf_counter()
            lr = set_lr(opt, cfg.lr, lr_factor(state.step, warm, total, cfg.scheduler))
            loss, n = optimizer_step(fwd, opt, train_split, steps[j], pad_id, cfg, loss_fn,
                                      after_step and (lambda m, s=state.step: after_step(model, s)), dist,
                                      guard=_guard(cfg, state.step + 1, lr), scaler=scaler)
            state.train_seconds += time.perf_counter() - t0
            if cfg.compile and not state.compile:
                state.compile = {"first_step_s": round(time.perf_counter() - t0, 3)}
            state.samples += n
            state.step += 1
            state.batch_in_epoch = j + 1
            state.log.append({"step": state.step, "loss": loss, "lr": lr})
            end_of_epoch = j + 1 == len(steps)
            if dev is not None and _eval_due(state.step, total, end_of_epoch, cfg):
                best = _evaluate(model, dev, pad_id, cfg, state, best, scorer, sharded, dist, lr, on_eval)
            if on_step:
                just = state.evals[-1] if state.evals and state.evals[-1]["step"] == state.step else {}
                on_step({**state.log[-1], **just, "total": total,
                         "samples_per_s": state.samples / max(state.train_seconds, 1e-9)})
            if ckpt_dir is not None and cfg.checkpoint_every and state.step % cfg.checkpoint_every == 0:
                _checkpoint(ckpt_dir, model, opt, state, best, dist, sharded)
            if state.step >= total or state.stopped_early:
                break
        else:
            state.epoch += 1
            state.batch_in_epoch = 0
    if cfg.compile:
        state.compile["graphs"] = _compiled_graphs()
    if state.log:  # an update can overflow the weights even from a finite gradient
        _check_weights(model, cfg, state.step, state.log[-1]["lr"], dist)
    if best is not None and cfg.keep_best:
        sharding.load_trainable(model, best, sharded)
    model.eval()
    # Back on the CPU: what follows (saving, the CPU runtimes, latency) expects it there.
    model.to("cpu")
    return TrainResult(state, state.train_seconds, state.samples, state.evals), best


def _resolve_precision(model, dev: Split | None, cfg: TrainConfig, where, pad_id: int, scorer,
                       dist: distributed.Dist) -> dict:
    """`precision.choose` from this machine's fingerprint, then the probe on dev; every process
    takes bf16 only if all of them kept it (their probes run on the same weights and data)."""
    from supremum.machine import fingerprint

    chosen = precision.probe(precision.choose(cfg.request, fingerprint(), where.type, where.index),
                             model, dev, pad_id, where, scorer)
    if dist.active and chosen.requested == "auto":
        kept = distributed.all_reduce_sum(float(chosen.resolved == "bf16"), dist)
        if chosen.resolved == "bf16" and kept < dist.world:
            chosen = precision.Precision("auto", "fp32", chosen.reason + "; another process's probe "
                                         "disagreed: fell back to fp32")
    return chosen.record()


def _compiled(module):
    """`module` compiled by torch.compile (inductor) with dynamic shapes: dynamic padding gives a
    new sequence length at most steps, and a static graph per length would recompile each time."""
    torch._dynamo.utils.counters.clear()
    return torch.compile(module, dynamic=True)


def _compiled_graphs() -> int:
    """Graphs torch.compile has compiled in this process since `_compiled` (1 = no recompiles)."""
    return int(torch._dynamo.utils.counters["stats"]["unique_graphs"])


def checkpointing(model) -> None:
    """Gradient checkpointing through transformers (`gradient_checkpointing_enable`, non-reentrant:
    dropout's random state is replayed, so the gradients equal the stored-activation ones). With
    frozen embeddings (LoRA and the other adapters) the inputs must require grad, or the
    checkpointed blocks would see no tensor needing a gradient and train nothing."""
    from supremum.errors import UserError

    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    if not getattr(inner, "supports_gradient_checkpointing", False):
        raise UserError(f"train.gradient_checkpointing: {type(inner).__name__} does not support it",
                        "drop --gradient-checkpointing")
    inner.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    inner.enable_input_require_grads()


def _checkpoint(path: Path, model, opt, state: TrainState, best, dist: distributed.Dist, sharded: bool) -> None:
    """Rank 0 writes; with FSDP every rank first takes part in gathering the full state."""
    if not (dist.main or sharded):
        return
    trainable, optimizer = sharding.trainable_state(model, sharded), sharding.optimizer_state(model, opt, sharded)
    if dist.main:
        ckpt.save_checkpoint(path, trainable, optimizer, state, best)


def _ddp(model):
    from torch.nn.parallel import DistributedDataParallel

    # find_unused_parameters: methods such as prefix tuning leave some trainable tensors out of
    # some steps' graphs.
    return DistributedDataParallel(model, find_unused_parameters=True)


def _guard(cfg: TrainConfig, step: int, lr: float) -> Callable[[float, float], None]:
    """Raise `Diverged` for a non-finite loss or gradient norm of optimizer step `step` (1-based)."""
    def check(loss: float, norm: float) -> None:
        for what, value in (("loss", loss), ("gradient norm", norm)):
            if not finite(value):
                raise diverged(what, value, step, lr, cfg.max_grad_norm, cfg.precision)

    return check


def _check_weights(model, cfg: TrainConfig, step: int, lr: float, dist: distributed.Dist) -> None:
    bad = bad_weights(model, dist)
    if bad:
        raise diverged("model", f"non-finite in {bad} trainable tensor(s)", step, lr, cfg.max_grad_norm,
                       cfg.precision)


def optimizer_step(model, opt, data: Split, micro: list[list[int]], pad_id: int,
                   cfg: TrainConfig, loss_fn: Callable | None = None,
                   after: Callable | None = None,
                   dist: distributed.Dist = distributed.Dist(),
                   guard: Callable[[float, float], None] | None = None,
                   scaler: torch.amp.GradScaler | None = None) -> tuple[float, int]:
    """One optimizer step over the micro-batches `micro` (lists of example indices into `data`,
    the global batch): backward of each micro-batch's summed loss scaled to the global batch's
    mean, gradient clipping to cfg.max_grad_norm, `guard(loss, grad_norm)` (may raise), the update,
    `after(model)`. Returns (mean loss over the global batch, examples in it). `loss_fn(model,
    batch, labels)` gives a summed loss (default: cross-entropy with cfg.label_smoothing).

    Computes in `cfg.request` (resolved: fp32, bf16 or fp16; auto is resolved by `train`). With
    fp16, `scaler` scales the loss; a step whose scaled gradient overflowed is skipped by the
    scaler (that is its job), so only the loss is guarded then."""
    autocast = cfg.request
    if autocast == "auto":
        raise ValueError("optimizer_step needs a resolved precision (train resolves auto)")
    n = sum(len(b) for b in micro)
    # This rank's slice of each global micro-batch; DDP averages gradients over ranks, so the
    # loss is scaled by the world size to give the gradient of the global batch's mean loss.
    micro = [b[dist.rank::dist.world] for b in micro]
    total_loss = 0.0
    lf, where = loss_fn or _cross_entropy(cfg), device.of(model)
    for batch in iterate(data.ids, [b for b in micro if b], pad_id, data.labels):
        batch = device.to(batch, where)
        labels = batch.pop("labels")

        def compute(batch=batch, labels=labels) -> torch.Tensor:
            with device.autocast(where, autocast):
                return lf(model, batch, labels) * (dist.world / n)

        if cfg.adversarial:
            total_loss += adversarial.backward(model, compute, cfg.adversarial)
        else:
            loss = compute()
            (scaler.scale(loss) if scaler else loss).backward()
            total_loss += loss.item()
    # Both values are the same on every process (the loss all-reduced, the norm of DDP's averaged
    # gradients), so `guard` stops every rank at this step, before the update is applied.
    total_loss = distributed.all_reduce_sum(total_loss, dist) / dist.world
    if scaler:
        scaler.unscale_(opt)
    norm = grad_norm([p for p in model.parameters() if p.grad is not None], cfg.max_grad_norm)
    if guard:
        guard(total_loss, 0.0 if scaler else norm)
    if scaler:
        scaler.step(opt)
        scaler.update()
    else:
        opt.step()
    if after:
        after(model)
    opt.zero_grad(set_to_none=True)
    return total_loss, n


def _cross_entropy(cfg: TrainConfig) -> Callable:
    """The default summed loss. Under CPU autocast cross-entropy still runs in fp32 (checked:
    identical to computing it outside the autocast region)."""
    def loss(model, batch: dict, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(model(**batch).logits.float(), labels,
                               label_smoothing=cfg.label_smoothing, reduction="sum")

    return loss


def _eval_due(step: int, total: int, end_of_epoch: bool, cfg: TrainConfig) -> bool:
    if step >= total:
        return True
    if cfg.eval_every:
        return step % cfg.eval_every == 0
    return end_of_epoch


def _evaluate(model, dev: Split, pad_id: int, cfg: TrainConfig, state: TrainState, best, scorer=None,
              sharded: bool = False, dist: distributed.Dist = distributed.Dist(), lr: float = 0.0,
              on_eval: Callable[[int, float], None] | None = None):
    """Score on dev; keep the state when it is the best so far. Non-finite weights (a classifier's
    accuracy over NaN logits still looks like a number) or a non-finite score raise `Diverged`,
    so neither is ever kept as the best."""
    _check_weights(model, cfg, state.step, lr, dist)
    # A scorer that sets no precision of its own computes in the run's (resolved) one.
    with device.autocast(device.of(model), cfg.request):
        acc, record = (scorer or accuracy_scorer(pad_id, False))(model, dev)
    if not finite(acc):
        name = next(iter(record), "dev score")
        raise diverged(name.replace("_", " "), record.get(name, acc), state.step, lr, cfg.max_grad_norm,
                       cfg.request)
    state.evals.append({"step": state.step, **record})
    if on_eval is not None:
        on_eval(state.step, acc)
    if state.best_score is None or acc > state.best_score:
        state.best_score, state.best_step, state.bad_evals = acc, state.step, 0
        return sharding.trainable_state(model, sharded) if cfg.keep_best else None
    state.bad_evals += 1
    if cfg.early_stopping and state.bad_evals >= cfg.early_stopping:
        state.stopped_early = True
    return best
