"""The fast batch source: decode once into a uint8 cache, augment whole batches on the device.

The report's pipeline decodes and transforms every JPEG in Python on every epoch, which held its
ResNet50 to about 110 images/s on an A100. Here each image is decoded and resized once
(``cache.py``), the cache sits in GPU memory when there is room, and a batch is one gather plus a
fused normalize (``gpu_augment.py``) on the training device: no loader workers, no per-image work.

Where the cache lives:
- CUDA with room (the cache under ``GPU_CACHE_FRACTION`` of free memory): on the GPU; a batch never
  touches the host.
- CUDA without room: in host memory; each batch's images are copied into pinned memory and sent
  with a non-blocking copy, and only the augmentation runs on the GPU.
- CPU: the memory-mapped file itself.

Randomness: ``set_epoch`` seeds one CPU generator from (seed, epoch) that draws the epoch's order
and every sample's rotation, flip and crop, so the same (seed, epoch) gives the same batches on any
device and a resumed run continues exactly. Eval sources serve the cached centre crops in order.

Several processes (``world``): every rank draws the whole epoch's plan and serves its own part of
each global batch, so each sample keeps its place and its augmentation whatever the process count.
An eval source serves the rank's contiguous part of the split: each image is scored exactly once.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import Tensor

from trainer.data.cache import PackedImages, load_or_build
from trainer.data.cub import CubIndex
from trainer.data.gpu_augment import AugmentParams, augment, draw_params, normalization, normalize
from trainer.parallel.distributed import World
from trainer.seeds import order_seed

# Share of the GPU's free memory the cache may take; the rest stays for the model and activations.
GPU_CACHE_FRACTION = 0.5


class _Resident:
    """The cache on the training device: batches read it in place."""

    def __init__(self, packed: PackedImages, device: torch.device):
        self.pixels = packed.pixels.to(device)
        self.starts = packed.starts.to(device)

    def gather(self, rows: Tensor, rows_on_device: Tensor) -> tuple[Tensor, Tensor]:
        """Pixels on the device holding entries ``rows``, and the pixel row where each starts."""
        return self.pixels, self.starts[rows_on_device]

    def span(self, first: int, stop: int) -> Tensor:
        return self.pixels[first:stop]


class _Staged:
    """The cache in host memory: a batch's pixels go to the device through pinned memory."""

    def __init__(self, packed: PackedImages, device: torch.device):
        self.packed = packed
        self.device = device

    def _send(self, host: Tensor) -> Tensor:
        if self.device.type == "cuda":
            # PyTorch's pinned allocator holds the block until the non-blocking copy is done.
            host = host.pin_memory()
        return host.to(self.device, non_blocking=True)

    def gather(self, rows: Tensor, rows_on_device: Tensor) -> tuple[Tensor, Tensor]:
        starts, sizes = self.packed.starts[rows].tolist(), self.packed.sizes[rows]
        pixels = torch.cat([self.packed.pixels[s : s + n] for s, n in zip(starts, sizes.tolist(), strict=True)])
        return self._send(pixels), self._send(torch.cumsum(sizes, 0) - sizes)

    def span(self, first: int, stop: int) -> Tensor:
        return self._send(self.packed.pixels[first:stop])


def _place(packed: PackedImages, device: torch.device) -> _Resident | _Staged:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        if packed.pixels.numel() > GPU_CACHE_FRACTION * free:
            return _Staged(packed, device)
    return _Resident(packed, device)


class FastBatchSource:
    """A BatchSource over a decoded cache; see the module docstring."""

    def __init__(
        self,
        packed: PackedImages,
        targets: list[int],
        *,
        train: bool,
        image_size: int,
        batch_size: int,
        device: torch.device,
        seed: int,
        compile: bool = False,
        drop_last: bool = False,
        world: World | None = None,
    ):
        self.num_samples = len(targets)
        self.train = train
        self.image_size = image_size
        self.batch_size = batch_size
        self.device = device
        self.seed = seed
        self.epoch = 0
        self.skip = 0
        self.drop_last = drop_last
        self.world = world or World()
        # An eval source's part of the split, served in batches of this rank's share of batch_size.
        self._eval_part = self.world.part(self.num_samples)
        self._eval_batch = max(1, batch_size // self.world.size)
        self._heights, self._widths = packed.heights, packed.widths
        self._device_sizes = packed.heights.to(device), packed.widths.to(device)
        self._store = _place(packed, device)
        self._targets = torch.tensor(targets, dtype=torch.int64, device=device)
        self._norm = normalization(device)
        # Fusing index, gather and normalize into one kernel matters on the CPU, where every eager
        # op is a pass over memory; on CUDA the eager ops cost about 1% of a ResNet50 step, less than
        # compiling them would take, so there they stay eager.
        self._augment = torch.compile(augment) if compile and device.type == "cpu" else augment

    def __len__(self) -> int:
        if self.train:
            return (
                (self.num_samples // self.batch_size)
                if self.drop_last
                else math.ceil(self.num_samples / self.batch_size)
            )
        first, stop = self._eval_part
        return math.ceil((stop - first) / self._eval_batch)

    def set_epoch(self, epoch: int, *, skip: int = 0) -> None:
        self.epoch = epoch
        self.skip = skip

    def epoch_plan(self) -> tuple[Tensor, AugmentParams]:
        """A train epoch's sample order and per-sample parameters (in that order), on the CPU."""
        generator = torch.Generator().manual_seed(order_seed(self.seed, self.epoch))
        order = torch.randperm(self.num_samples, generator=generator)
        return order, draw_params(generator, self._heights[order], self._widths[order], self.image_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        return self._train_batches() if self.train else self._eval_batches()

    def _train_batches(self) -> Iterator[tuple[Tensor, Tensor]]:
        return self.planned_batches(*self.epoch_plan(), skip=self.skip)

    def planned_batches(
        self, order: Tensor, params: AugmentParams, *, skip: int = 0
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """The train batches of the plan ``epoch_plan()`` drew (``len(self)`` of them), but the first ``skip``."""
        # One copy to the device per epoch; batches then only slice.
        params, order_on_device = params.to(self.device), order.to(self.device, non_blocking=True)
        heights, widths = self._device_sizes
        for first in range(skip * self.batch_size, min(len(self) * self.batch_size, self.num_samples), self.batch_size):
            start, stop = self.world.part(min(self.batch_size, self.num_samples - first))
            if start == stop:  # a last global batch smaller than the world: this rank sits it out
                yield self._empty_batch()
                continue
            batch = slice(first + start, first + stop)
            rows = order_on_device[batch]
            pixels, starts = self._store.gather(order[batch], rows)
            images = self._augment(
                pixels, starts, heights[rows], widths[rows], params.take(batch), self.image_size, self._norm
            )
            yield images, self._targets[rows]

    def _eval_batches(self) -> Iterator[tuple[Tensor, Tensor]]:
        # Eval entries are S x S centre crops served in order, so a batch is one contiguous span.
        side = self.image_size
        part_start, part_stop = self._eval_part
        for first in range(part_start, part_stop, self._eval_batch):
            count = min(self._eval_batch, part_stop - first)
            span = self._store.span(first * side * side, (first + count) * side * side)
            yield normalize(span.view(count, side, side, 3), self._norm), self._targets[first : first + count]

    def _empty_batch(self) -> tuple[Tensor, Tensor]:
        side = self.image_size
        return torch.empty((0, 3, side, side), device=self.device), self._targets[:0]


def build_fast_source(
    *,
    index: CubIndex,
    indices: list[int],
    train: bool,
    image_size: int,
    batch_size: int,
    device: torch.device,
    seed: int,
    cache_dir: Path,
    compile: bool = False,
    drop_last: bool = False,
    world: World | None = None,
) -> FastBatchSource:
    """A fast BatchSource over ``index.samples[i] for i in indices``, building its cache if needed.

    The one-time cache build decodes with every core. ``compile`` fuses the augmentation into one
    kernel with torch.compile (on the CPU only; see ``FastBatchSource``). ``drop_last``: a train
    source serves full batches only. ``world``: the processes that share the batches (default: this
    one alone).
    """
    samples = [index.samples[i] for i in indices]
    packed = load_or_build(
        [s.path for s in samples],
        root=index.root,
        kind="train" if train else "eval",
        image_size=image_size,
        cache_dir=cache_dir,
    )
    return FastBatchSource(
        packed,
        [s.label for s in samples],
        train=train,
        image_size=image_size,
        batch_size=batch_size,
        device=device,
        seed=seed,
        compile=compile,
        drop_last=drop_last,
        world=world,
    )
