"""The Bag-of-Tricks refinements, one module each: schedules, losses (label smoothing, distillation), mixup."""

from trainer.tricks.losses import LossParts, TrainingLoss, distillation_loss, smoothed_cross_entropy
from trainer.tricks.mixup import MixedBatch, mixup
from trainer.tricks.schedules import LRSchedule, apply_schedule, build_schedule, schedule_preview

__all__ = [
    "LRSchedule",
    "LossParts",
    "MixedBatch",
    "TrainingLoss",
    "apply_schedule",
    "build_schedule",
    "distillation_loss",
    "mixup",
    "schedule_preview",
    "smoothed_cross_entropy",
]
