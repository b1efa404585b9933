"""Training losses: label smoothing, distillation, and their combination with mixup.

Mixup mixes the loss, never the class indices (the report's mistake: a cast of
``lam*y1 + (1-lam)*y2`` trains on a third, unrelated class). With label smoothing this equals
cross-entropy against the mixed smoothed targets. Validation loss is plain cross-entropy, elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor


def smoothed_cross_entropy(logits: Tensor, target: Tensor, epsilon: float) -> Tensor:
    """The report's ``(1-eps) * NLL + eps * mean_k(-log p_k)``, batch mean.

    This is exactly PyTorch's ``label_smoothing``, whose fused kernel we use.
    """
    return F.cross_entropy(logits, target, label_smoothing=epsilon)


def distillation_loss(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """``T^2 * KL(softmax(t/T) || softmax(s/T))``, batch mean (Hinton et al.).

    T^2 keeps the soft-target gradients on the scale of the hard-target ones as T grows. The
    teacher is detached: only the student learns.
    """
    student = F.log_softmax(student_logits / temperature, dim=-1)
    teacher = F.log_softmax(teacher_logits.detach() / temperature, dim=-1)
    return temperature**2 * F.kl_div(student, teacher, reduction="batchmean", log_target=True)


@dataclass
class LossParts:
    """The loss to backpropagate and its parts, each worth logging on its own."""

    loss: Tensor
    task_loss: Tensor
    kd_loss: Tensor | None


class TrainingLoss:
    """Label smoothing, mixup and distillation in one place; each is off at its neutral value.

    Without mixup pass ``target_b = target_a`` and ``lam = 1.0``. Without ``teacher_logits`` the
    loss is the task loss; with them it is ``alpha * task + (1 - alpha) * distillation``.
    """

    def __init__(self, *, label_smoothing: float, kd_alpha: float, kd_temperature: float):
        self.label_smoothing = label_smoothing
        self.kd_alpha = kd_alpha
        self.kd_temperature = kd_temperature

    def __call__(
        self,
        logits: Tensor,
        target_a: Tensor,
        target_b: Tensor,
        lam: float | Tensor,
        teacher_logits: Tensor | None = None,
    ) -> LossParts:
        task = smoothed_cross_entropy(logits, target_a, self.label_smoothing)
        if lam != 1.0:
            task = lam * task + (1 - lam) * smoothed_cross_entropy(logits, target_b, self.label_smoothing)
        if teacher_logits is None:
            return LossParts(loss=task, task_loss=task, kd_loss=None)
        kd = distillation_loss(logits, teacher_logits, self.kd_temperature)
        return LossParts(loss=self.kd_alpha * task + (1 - self.kd_alpha) * kd, task_loss=task, kd_loss=kd)
