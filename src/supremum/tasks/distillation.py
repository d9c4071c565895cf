"""Distillation objectives: a student's loss against a frozen teacher, per task.

Classifier: alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE(student, labels)
       + hidden_weight * MSE(proj(student hidden), teacher hidden)     (mapped layers)
       + attention_weight * MSE(student attention, teacher attention) (head-averaged maps)
Causal LM: the same logit terms per predicted token.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from supremum.errors import UserError


class LogitDistillation:
    """A classifier student: logits, and optionally mapped hidden states and attention maps.
    `cfg` is a DistillConfig; summed over examples (the loop divides by the examples)."""

    def __init__(self, teacher, cfg, mapping: list[int], proj: nn.ModuleList | None):
        self.teacher, self.cfg, self.mapping, self.proj = teacher.eval(), cfg, mapping, proj

    def __call__(self, student, batch: dict, labels: torch.Tensor) -> torch.Tensor:
        c = self.cfg
        need_h, need_a = c.hidden_weight > 0, c.attention_weight > 0
        with torch.no_grad():
            t = self.teacher(**batch, output_hidden_states=need_h, output_attentions=need_a)
        s = student(**batch, output_hidden_states=need_h, output_attentions=need_a)
        T = c.temperature
        kd = F.kl_div(F.log_softmax(s.logits.float() / T, -1), F.softmax(t.logits.float() / T, -1),
                      reduction="sum") * T * T
        loss = c.alpha * kd + (1 - c.alpha) * F.cross_entropy(s.logits.float(), labels, reduction="sum")
        n = len(labels)
        if need_h:
            mask = batch["attention_mask"].unsqueeze(-1).float()
            for j, i in enumerate(self.mapping):
                diff = (self.proj[j](s.hidden_states[j + 1].float()) - t.hidden_states[i + 1].float()) * mask
                loss = loss + c.hidden_weight * n * diff.pow(2).sum() / mask.sum() / diff.shape[-1]
        if need_a:
            for j, i in enumerate(self.mapping):
                sa, ta = s.attentions[j].float().mean(1), t.attentions[i].float().mean(1)
                loss = loss + c.attention_weight * n * F.mse_loss(sa, ta)
        return loss


class TokenDistillation:
    """Token-level distillation of a causal LM: per predicted position (labels not -100),
    alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * next-token CE, averaged over an
    example's positions and summed over examples (the loop divides by the examples)."""

    def __init__(self, teacher, cfg):
        if cfg.hidden_weight > 0 or cfg.attention_weight > 0:
            raise UserError("hidden_weight and attention_weight apply to classifiers",
                            "use logit distillation (alpha, temperature) for language models")
        self.teacher, self.cfg = teacher.eval(), cfg

    def __call__(self, student, batch: dict, labels: torch.Tensor) -> torch.Tensor:
        c, T = self.cfg, self.cfg.temperature
        with torch.no_grad():
            t = self.teacher(**batch).logits[:, :-1].float()
        s = student(**batch).logits[:, :-1].float()
        mask = (labels[:, 1:] != -100).float()
        kl = F.kl_div(F.log_softmax(s / T, -1), F.log_softmax(t / T, -1), log_target=True,
                      reduction="none").sum(-1) * T * T
        ce = F.cross_entropy(s.transpose(1, 2), labels[:, 1:], ignore_index=-100, reduction="none")
        per_token = c.alpha * kl + (1 - c.alpha) * ce
        return ((per_token * mask).sum(1) / mask.sum(1).clamp(min=1)).sum()
