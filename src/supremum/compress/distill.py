"""Knowledge distillation: train a student on a teacher's softened predictions (the objective
is the task's: `supremum.tasks.distillation`).

The student is the artifact being compressed (typically layer-dropped or pruned), or a model
named by `student` (any smaller model with the same tokenizer). The teacher defaults to the
nearest ancestor that was not structurally compressed: the fine-tuned model it came from.

loss = alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE(student, labels)
       + hidden_weight * MSE(proj(student hidden), teacher hidden)     (mapped layers)
       + attention_weight * MSE(student attention, teacher attention) (head-averaged maps)
"""

from __future__ import annotations

import torch
from torch import nn

from supremum import backends
from supremum.artifact import CompressionStep
from supremum.compress import STRUCTURAL, arch
from supremum.compress.configs import DistillConfig
from supremum.compress.registry import Compressed, register
from supremum.config import TrainConfig
from supremum.errors import UserError
from supremum.evaluate.stage import parent_of
from supremum.tasks.distillation import LogitDistillation, TokenDistillation

# A distilled student is as far from the reference as the structure it was distilled into.
NOT_A_TEACHER = (*STRUCTURAL, "distill")


def teacher_of(art, store=None):
    """The nearest ancestor without structural compression (its weights are the reference)."""
    cur = art
    while any(c.method in NOT_A_TEACHER for c in cur.manifest.compression):
        if not cur.manifest.parents:
            break
        cur = parent_of(cur, store)
    if cur is art:
        raise UserError(f"artifact {art.id} has no uncompressed ancestor to learn from",
                        "pass teacher=<artifact>, or student=<model> to distill this one into it")
    return cur


def _load_models(model, cfg: DistillConfig, ctx):
    from supremum.evaluate.stage import resolve_artifact
    from supremum.models import load_model

    if cfg.student:
        teacher = resolve_artifact(cfg.teacher) if cfg.teacher else None
        teacher_model = backends.load(teacher, calibrated=False)[0] if teacher else model
        student, _ = load_model(cfg.student, ctx.task, label_names=ctx.parent.label_names or None)
        return student, teacher_model, (teacher or ctx.parent).id
    teacher = resolve_artifact(cfg.teacher) if cfg.teacher else teacher_of(ctx.parent)
    return model, backends.load(teacher, calibrated=False)[0], teacher.id


def layer_map(student, teacher, report_chain: list[CompressionStep]) -> list[int]:
    """Teacher layer matched to each student layer: the kept indices after drop-layers,
    otherwise evenly spaced."""
    ns, nt = len(arch.layer_list(student)[1]), len(arch.layer_list(teacher)[1])
    for step in reversed(report_chain):
        kept = step.report.get("layers_kept")
        if kept and len(kept) == ns:
            return kept
    return [round((j + 1) * nt / ns) - 1 for j in range(ns)]


# The objectives are the tasks' (`Task.distill_loss`); the old names stay importable.
Loss, LMLoss = LogitDistillation, TokenDistillation


@register(DistillConfig)
def distill(model, cfg: DistillConfig, ctx) -> Compressed:
    from supremum.compress.prune import shapes_transform

    student, teacher, teacher_id = _load_models(model, cfg, ctx)
    mapping = layer_map(student, teacher, ctx.parent.manifest.compression)
    report = {"teacher": teacher_id, "layer_map": mapping, **recover(student, teacher, mapping, ctx, cfg)}
    extra = {"base_model": cfg.student} if cfg.student else {}
    return Compressed(student, [shapes_transform(student)], report, extra=extra)


def recover(student, teacher, mapping: list[int], ctx, cfg: DistillConfig) -> dict:
    """Train `student` in place against `teacher` on the task's training data; the best dev
    checkpoint is kept. Also the recovery step of pruning and low-rank factorization."""
    from supremum.train.loop import train

    for p in student.parameters():
        p.requires_grad_(p.is_floating_point())  # loaded artifacts come frozen, for inference
    if cfg.attention_weight > 0:
        for m in (student, teacher):
            m.set_attn_implementation("eager")  # SDPA does not return attention maps
    proj = _projections(student, teacher, len(mapping)) if cfg.hidden_weight > 0 else None
    if proj is not None:
        student.distill_proj = proj  # trained with the student, removed before saving
    tok = ctx.tokenizer
    tr = ctx.encoded("train")
    dev = ctx.encoded("dev") if ctx.has_split("dev") else None
    tcfg = TrainConfig(epochs=cfg.epochs, max_steps=cfg.max_steps, lr=cfg.lr, batch_size=cfg.batch_size,
                       bf16=cfg.bf16, seed=cfg.seed, eval_every=cfg.eval_every, keep_best=dev is not None,
                       checkpoint_every=ctx.checkpoint_every)
    torch.manual_seed(cfg.seed)
    task = ctx.task
    objective = {**task.objective(bf16=cfg.bf16), "loss_fn": task.distill_loss(teacher, cfg, mapping, proj)}
    result, _ = train(student, tr, dev, tcfg, tok.pad_token_id, **objective, **ctx.training_checkpoint())
    if proj is not None:
        del student.distill_proj
    if cfg.attention_weight > 0:
        student.set_attn_implementation("sdpa")
    student.eval()
    st = result.state
    return {"steps": st.step, **task.dev_result(st.best_score), "evals": st.evals,
            "train_seconds": round(result.train_seconds, 2)}


def _projections(student, teacher, n: int) -> nn.ModuleList:
    ws, wt = student.config.hidden_size, teacher.config.hidden_size
    return nn.ModuleList([nn.Identity() if ws == wt else nn.Linear(ws, wt) for _ in range(n)])
