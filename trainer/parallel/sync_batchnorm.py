"""BatchNorm over the global batch when several processes train.

On GPUs this is PyTorch's own ``nn.SyncBatchNorm``. That one refuses CPU tensors (its kernels are
CUDA-only), so CPU ranks under gloo get ``CpuSyncBatchNorm``: the same statistics from one
all-reduce of each channel's count, sum and sum of squares, and the same running-stat updates.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm


class _AllSum(torch.autograd.Function):
    """The sum over ranks, whose gradient is the sum over ranks of the gradients: every rank's loss
    depends on every rank's input through the global statistics."""

    @staticmethod
    def forward(ctx, tensor: Tensor) -> Tensor:
        total = tensor.clone()
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        total = grad.clone()
        dist.all_reduce(total)
        return total


class CpuSyncBatchNorm(_BatchNorm):
    """SyncBatchNorm for CPU ranks: in training, mean and variance are those of the global batch."""

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, input: Tensor) -> Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(input)
        self._check_input_dim(input)
        channels = input.size(1)
        dims = [0, *range(2, input.dim())]
        shape = [1, channels] + [1] * (input.dim() - 2)
        # In float64, the variance as E[x^2] - E[x]^2 loses nothing to cancellation, even where a
        # small batch's variance is tiny beside its squared mean. One all-reduce per layer and pass,
        # forward and backward, as nn.SyncBatchNorm does.
        wide = input.double()
        local = torch.cat([wide.new_full((1,), input.numel() // channels), wide.sum(dims), (wide * wide).sum(dims)])
        total = _AllSum.apply(local)
        count = total[0]
        if count.item() <= 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got {int(count.item())}")
        mean = total[1 : 1 + channels] / count
        var = total[1 + channels :] / count - mean * mean
        output = (input - mean.to(input.dtype).view(shape)) * torch.rsqrt(var + self.eps).to(input.dtype).view(shape)
        if self.affine:
            output = output * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            self._update_running_stats(mean.detach(), var.detach() * count / (count - 1))
        return output

    @torch.no_grad()
    def _update_running_stats(self, mean: Tensor, unbiased_var: Tensor) -> None:
        assert self.running_mean is not None and self.running_var is not None
        assert self.num_batches_tracked is not None
        self.num_batches_tracked.add_(1)
        # _BatchNorm's rule: exponential average, or a cumulative one when momentum is None.
        factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        self.running_mean.mul_(1 - factor).add_(mean.to(self.running_mean.dtype), alpha=factor)
        self.running_var.mul_(1 - factor).add_(unbiased_var.to(self.running_var.dtype), alpha=factor)


def convert_sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """Every BatchNorm of ``module`` made global: ``nn.SyncBatchNorm`` on CUDA, ``CpuSyncBatchNorm`` on
    CPU. Parameters and buffers are the same tensors, so an optimizer built before still applies, and
    the state_dict keeps its keys (a checkpoint loads into either form)."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return _convert_to_cpu_sync(module)


def _convert_to_cpu_sync(module: nn.Module) -> nn.Module:
    """``nn.SyncBatchNorm.convert_sync_batchnorm``, building ``CpuSyncBatchNorm`` instead."""
    converted = module
    if isinstance(module, _BatchNorm):
        converted = CpuSyncBatchNorm(
            module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats
        )
        if module.affine:
            converted.weight = module.weight
            converted.bias = module.bias
        converted.running_mean = module.running_mean
        converted.running_var = module.running_var
        converted.num_batches_tracked = module.num_batches_tracked
        converted.train(module.training)
    for name, child in module.named_children():
        converted.add_module(name, _convert_to_cpu_sync(child))
    return converted
