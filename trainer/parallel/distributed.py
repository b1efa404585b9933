"""One run over several processes: who this process is, joining and leaving the group, the sums.

torchrun (``python -m torch.distributed.run``) starts one process per device and tells each its place
through RANK, WORLD_SIZE and LOCAL_RANK. A process started without them is a world of one, and
everything here is then a no-op, so the loop reads the same either way.

What keeps a run's result independent of the number of processes: every rank draws the epoch's
order and augmentations for the global batch and takes its own contiguous part of it (``World.part``);
BatchNorm normalizes over the global batch (``sync_batchnorm``); each rank's loss is weighted by its
share of the global batch, so DDP's mean of the gradients is the gradient of the global batch's mean
loss; and the epoch's sums (loss, hits, images) are added over ranks before anything is stored.
"""

from __future__ import annotations

import collections
import os
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from trainer.parallel.sync_batchnorm import convert_sync_batchnorm
from trainer.processes import die_with_launcher


class DistributedError(RuntimeError):
    """torchrun's environment does not describe a usable world; the message says what is wrong."""


@dataclass(frozen=True)
class World:
    """This process's place among the ones training the run: rank 0 of 1 when run alone."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0 alone reports and writes the run folder."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def part(self, count: int) -> tuple[int, int]:
        """This rank's ``[start, stop)`` of ``count`` items in order: contiguous, every item in exactly
        one part, part sizes differing by at most one (so a part is empty only when count < size)."""
        return count * self.rank // self.size, count * (self.rank + 1) // self.size

    def all_sum(self, tensor: Tensor) -> Tensor:
        """``tensor`` summed over all ranks, in place; every rank gets the same sum."""
        if self.distributed:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def any(self, flag: bool) -> bool:
        """Whether ``flag`` is true on any rank. Over CPU tensors (the gloo side group under NCCL): the
        answer needs no GPU work finished, so asking forces no CUDA sync."""
        if not self.distributed:
            return flag
        tensor = torch.tensor([1 if flag else 0], dtype=torch.int32)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX, group=_side_groups.get("cpu"))
        return bool(tensor.item())

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def share_buffers(self, model: nn.Module) -> None:
        """Rank 0's buffers (BatchNorm's running statistics) on every rank: what the checkpoint holds
        is then what every rank evaluates with."""
        if self.distributed:
            for buffer in model.buffers():
                dist.broadcast(buffer, src=0)

    def gather(self, value: str) -> list[str]:
        """``value`` of every rank, in rank order."""
        if not self.distributed:
            return [value]
        values: list[str | None] = [None] * self.size
        dist.all_gather_object(values, value)
        return [str(item) for item in values]


def world_from_environment(environ: Mapping[str, str] | None = None) -> World:
    """The world torchrun describes in RANK, WORLD_SIZE and LOCAL_RANK; a world of one without them."""
    environ = os.environ if environ is None else environ
    if "WORLD_SIZE" not in environ:
        return World()
    try:
        world = World(
            rank=int(environ["RANK"]), size=int(environ["WORLD_SIZE"]), local_rank=int(environ.get("LOCAL_RANK", "0"))
        )
    except (KeyError, ValueError) as exc:
        raise DistributedError(
            f"WORLD_SIZE is set but RANK/LOCAL_RANK are not whole numbers ({exc}); start the trainer with torchrun"
        ) from None
    if world.size < 1 or not 0 <= world.rank < world.size or world.local_rank < 0:
        raise DistributedError(f"rank {world.rank} of world size {world.size} is not a place in that world")
    return world


# Under NCCL, a gloo group over the same ranks for the small CPU-side agreements (``World.any``), created
# once, when the process joins; absent under gloo, whose default group is on the CPU already.
_side_groups: dict[str, dist.ProcessGroup] = {}


@contextmanager
def joined(world: World, device: torch.device) -> Iterator[None]:
    """Inside, this process belongs to the run's process group: NCCL between GPUs, gloo between CPUs.

    The group is left only when the block ends normally: after a failure (often a peer's), tearing
    NCCL down can hang, and the process is about to exit anyway.
    """
    if not world.distributed:
        yield
        return
    die_with_launcher()
    if device.type == "cuda":
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device)
        side = dist.new_group(backend="gloo")
        assert isinstance(side, dist.ProcessGroup)  # every rank is a member
        _side_groups["cpu"] = side
    else:
        dist.init_process_group("gloo")
    yield
    _side_groups.clear()
    dist.destroy_process_group()


def global_batch_sizes(num_samples: int, batch_size: int) -> list[int]:
    """The size of each global batch of an epoch over ``num_samples``: full ones, then the rest."""
    return [min(batch_size, num_samples - first) for first in range(0, num_samples, batch_size)]


def describe_software() -> str:
    """The versions a run's result depends on: tricklab's own and PyTorch's (with its CUDA)."""
    try:
        own = version("tricklab")
    except PackageNotFoundError:  # a checkout run without installing it
        own = "unknown"
    cuda = f", CUDA {torch.version.cuda}" if torch.version.cuda else ""
    return f"tricklab {own}, torch {torch.__version__}{cuda}"


def describe_devices(world: World, device: torch.device) -> str:
    """What trains the run, as the run page shows it: "4 × H200", "2 × CPU (gloo)", "1 × CPU"."""
    counts = collections.Counter(world.gather(_device_name(world, device)))
    return ", ".join(f"{count} × {name}" for name, count in counts.items())


def _device_name(world: World, device: torch.device) -> str:
    if device.type != "cuda":
        return "CPU (gloo)" if world.distributed else "CPU"
    # "NVIDIA H200" reads as "H200": CUDA devices are NVIDIA's anyway.
    return torch.cuda.get_device_name(device).removeprefix("NVIDIA ")


def synced_batchnorm(model: nn.Module, *, world: World, device: torch.device) -> nn.Module:
    """``model`` with BatchNorm over the global batch, when several processes train; else as it is."""
    return convert_sync_batchnorm(model, device) if world.distributed else model


def data_parallel(model: nn.Module, *, world: World, device: torch.device) -> nn.Module:
    """``model`` as the training steps call it: itself alone, else wrapped in DDP, which averages the
    gradients over ranks (the parameters, and the optimizer over them, stay those of ``model``)."""
    if not world.distributed:
        return model
    if device.type == "cpu":
        # CPU convolutions give a 1x1 kernel's gradient other strides than its bucket's (equivalent
        # ones, the dimensions being of size 1); DDP copies it instead of aliasing, and says so.
        warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
    # Gradients as views of DDP's buckets: no copy into them.
    return DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None, gradient_as_bucket_view=True
    )
