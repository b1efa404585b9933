"""A run's tricks as the training loop sees them: one object built from ``TricksConfig``.

Label smoothing and distillation live in the loss, mixup on the batch; the loop asks this object
to mix each batch and to score the model's logits on it, and never branches on a trick itself. A
new trick changes this module and the config, not the loop.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from trainer.config import TricksConfig
from trainer.seeds import mixup_seed
from trainer.tricks.losses import LossParts, TrainingLoss
from trainer.tricks.mixup import MixedBatch, mixup


class Tricks:
    """``teacher``: the loaded, frozen distillation teacher, or None; ``seed``: the run's seed."""

    def __init__(self, config: TricksConfig, *, seed: int, teacher: nn.Module | None = None):
        self.mixup_alpha = config.mixup_alpha
        self.teacher = teacher
        self.seed = seed
        self.loss_fn = TrainingLoss(
            label_smoothing=config.label_smoothing, kd_alpha=config.kd.alpha, kd_temperature=config.kd.temperature
        )
        # On the CPU, so a seed gives the same mixing weights and partners on any device.
        self._mixup_generator = torch.Generator()

    @property
    def distils(self) -> bool:
        return self.teacher is not None

    def set_epoch(self, epoch: int) -> None:
        """Seed the epoch's draws, so a resumed run mixes exactly as a straight one."""
        self._mixup_generator.manual_seed(mixup_seed(self.seed, epoch))

    def mix_state(self) -> Tensor:
        """Where the epoch's draws stand, for a run stopped mid-epoch."""
        return self._mixup_generator.get_state()

    def restore_mix_state(self, state: Tensor) -> None:
        """Continue the epoch's draws from ``mix_state()``; after ``set_epoch``."""
        self._mixup_generator.set_state(state)

    def mix(self, images: Tensor, targets: Tensor) -> MixedBatch:
        return mixup(images, targets, alpha=self.mixup_alpha, generator=self._mixup_generator)

    def loss(self, logits: Tensor, batch: MixedBatch) -> LossParts:
        """The training loss of the model's ``logits`` on ``batch``, run under the loop's autocast."""
        teacher_logits = None
        if self.teacher is not None:
            # The teacher sees the same (mixed) images; no graph or version counters are kept for it.
            # The clone turns the inference tensor into one the student's loss may save for backward.
            with torch.inference_mode():
                teacher_logits = self.teacher(batch.images)
            teacher_logits = teacher_logits.clone()
        return self.loss_fn(
            logits.float(),
            batch.target_a,
            batch.target_b,
            batch.lam,
            None if teacher_logits is None else teacher_logits.float(),
        )
