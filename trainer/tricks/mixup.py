"""Mixup (Zhang et al. 2018) within one batch.

The partner of each image is another image of the same batch (a permutation), so mixup costs one
blend, not a second data loader (the report's doubled epoch time). The targets stay class
indices; TrainingLoss mixes the two losses with the same lam.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class MixedBatch:
    images: Tensor
    target_a: Tensor
    target_b: Tensor
    lam: float

    @property
    def dominant_targets(self) -> Tensor:
        """The labels that dominate the mix: what training accuracy counts against."""
        return self.target_a if self.lam >= 0.5 else self.target_b


def sample_beta(alpha: float, generator: torch.Generator) -> float:
    """One draw of Beta(alpha, alpha) from ``generator``.

    torch.distributions.Beta takes no generator; it samples through this same Dirichlet kernel.
    float64 keeps small alphas (mass at 0 and 1) from underflowing.
    """
    concentration = torch.tensor([alpha, alpha], dtype=torch.float64)
    return torch._sample_dirichlet(concentration, generator=generator)[0].item()


def mixup(images: Tensor, targets: Tensor, *, alpha: float, generator: torch.Generator) -> MixedBatch:
    """``lam * x + (1 - lam) * x[perm]`` with lam ~ Beta(alpha, alpha); alpha 0 returns the batch as is.

    ``generator`` is a CPU generator, so a seed gives the same lam and partners on any device.
    """
    if alpha == 0:
        return MixedBatch(images=images, target_a=targets, target_b=targets, lam=1.0)
    lam = sample_beta(alpha, generator)
    perm = torch.randperm(images.shape[0], generator=generator)
    if images.device.type == "cuda":
        # From pinned memory the copy is asynchronous: no wait for the GPU on every step.
        perm = perm.pin_memory()
    perm = perm.to(images.device, non_blocking=True)
    mixed = images.mul(lam).add_(images[perm], alpha=1 - lam)
    return MixedBatch(images=mixed, target_a=targets, target_b=targets[perm], lam=lam)
