"""Batch sources: what the training loop iterates, whichever pipeline produces the batches.

Every source yields ``(images, targets)`` already on the training device and is seeded per epoch:
the same (seed, epoch) gives the same batches, so a resumed run continues exactly. A train source set
to ``skip`` batches serves the rest of the epoch's, as drawn, without loading the skipped ones (a run
resumed mid-epoch). With several
processes, a train source yields this rank's part of each global batch (as drawn for the whole
batch) and an eval source this rank's part of the split; ``num_samples`` is the whole split's size.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler, Subset

from trainer.config import RunConfig
from trainer.data.cache import cache_dir
from trainer.data.cub import CubIndex, Splits
from trainer.data.dataset import CubDataset
from trainer.data.fast import build_fast_source
from trainer.data.transforms import eval_transform, train_transform
from trainer.parallel.distributed import World
from trainer.seeds import order_seed, sample_seed


class BatchSource(Protocol):
    num_samples: int

    def __len__(self) -> int: ...

    def set_epoch(self, epoch: int, *, skip: int = 0) -> None: ...

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]: ...


class SizedDataset(Protocol):
    """A map-style dataset that knows its length, as DataLoader's sampler needs."""

    def __len__(self) -> int: ...

    def __getitem__(self, item: int) -> Any: ...


class _PerSampleSeeded(Dataset):
    """Draws each image's augmentation from a seed of (run seed, epoch, image index).

    The augmentation then depends neither on the worker count nor on which worker loads an
    image, and the global RNG of the process is left as it was.
    """

    def __init__(self, dataset: SizedDataset, seed: int):
        self.dataset = dataset
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item: int):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(sample_seed(self.seed, self.epoch, item))
            return self.dataset[item]


class _RankParts(BatchSampler):
    """The global batches of ``sampler`` (DataLoader's own shuffle order), this rank's part of each.

    A last global batch smaller than the world leaves some ranks an empty part: it is not sampled
    (a DataLoader cannot collate nothing), and the source yields an empty batch in its place.
    """

    def __init__(
        self, sampler: RandomSampler | SequentialSampler, *, batch_size: int, world: World, drop_last: bool = False
    ):
        super().__init__(sampler, batch_size, drop_last=drop_last)
        self.world = world
        self.skip = 0  # the epoch's first global batches, already trained

    def __iter__(self) -> Iterator[list[int]]:
        for number, batch in enumerate(super().__iter__()):
            if number < self.skip:  # drawn (the order stays the one of the whole epoch), never loaded
                continue
            start, stop = self.world.part(len(batch))
            if start < stop:
                yield batch[start:stop]

    def __len__(self) -> int:
        return len(self.world_parts())

    def world_parts(self) -> list[int]:
        """The size of this rank's part of each global batch, empty ones included."""
        total = len(self.sampler)  # type: ignore[arg-type]
        if self.drop_last:
            total -= total % self.batch_size
        parts = []
        for first in range(0, total, self.batch_size):
            start, stop = self.world.part(min(self.batch_size, total - first))
            parts.append(stop - start)
        return parts


class ReferenceBatchSource:
    """The report's pipeline: PIL decode and per-image torchvision transforms in DataLoader workers.

    Training draws the order of the whole split, as one process would, and loads this rank's part of
    each global batch (full global batches only with ``drop_last``); evaluation loads this rank's part
    of the split, in batches of its share. On CUDA, batches are copied through pinned memory by
    DataLoader's pin thread, on the current GPU (``trainer.devices.use_device`` makes that the run's).
    """

    def __init__(
        self,
        *,
        dataset: SizedDataset,
        batch_size: int,
        shuffle: bool,
        device: torch.device,
        seed: int,
        num_workers: int,
        drop_last: bool = False,
        world: World | None = None,
    ):
        world = world or World()
        self.device = device
        self.seed = seed
        self.num_samples = len(dataset)
        self._dataset = _PerSampleSeeded(dataset, seed)
        self._shuffle_generator = torch.Generator()
        self._image_shape: tuple[int, ...] | None = None
        loaded: Dataset = self._dataset
        if shuffle:
            # DataLoader's own shuffle (RandomSampler in BatchSampler), whose draws one process made.
            self._parts = _RankParts(
                RandomSampler(self._dataset, generator=self._shuffle_generator),
                batch_size=batch_size,
                world=world,
                drop_last=drop_last,
            )
        else:
            start, stop = world.part(self.num_samples)
            loaded = Subset(self._dataset, range(start, stop))
            self._parts = _RankParts(
                SequentialSampler(loaded), batch_size=max(1, batch_size // world.size), world=World()
            )
        self._loader = DataLoader(
            loaded,
            batch_sampler=self._parts,
            num_workers=num_workers,
            pin_memory=device.type == "cuda",
        )

    def __len__(self) -> int:
        return len(self._parts.world_parts())

    def set_epoch(self, epoch: int, *, skip: int = 0) -> None:
        self._dataset.epoch = epoch
        self._shuffle_generator.manual_seed(order_seed(self.seed, epoch))
        self._parts.skip = skip

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        batches = iter(self._loader)
        for size in self._parts.world_parts()[self._parts.skip :]:
            if size == 0:
                yield self._empty_batch()
                continue
            images, targets = next(batches)
            yield images.to(self.device, non_blocking=True), targets.to(self.device, non_blocking=True)

    def _empty_batch(self) -> tuple[Tensor, Tensor]:
        if self._image_shape is None:
            self._image_shape = tuple(self._dataset[0][0].shape)
        return (
            torch.empty((0, *self._image_shape), device=self.device),
            torch.empty(0, dtype=torch.int64, device=self.device),
        )


@dataclass
class BatchSources:
    train: BatchSource
    valid: BatchSource
    test: BatchSource


def build_batch_sources(
    config: RunConfig, *, index: CubIndex, splits: Splits, device: torch.device, world: World | None = None
) -> BatchSources:
    """The train, valid and test sources of a run; ``world``: the processes sharing them (default: one).

    With ``runtime.compile`` the train sources serve full batches only: the compiled step then sees
    one shape and compiles once (see ``RuntimeConfig.compile``).
    """
    size = config.data.image_size
    drop_last = config.runtime.compile
    if config.data.pipeline == "fast":

        def fast(indices: list[int], train: bool) -> BatchSource:
            return build_fast_source(
                index=index,
                indices=indices,
                train=train,
                image_size=size,
                batch_size=config.batch_size,
                device=device,
                seed=config.seed,
                cache_dir=cache_dir(index.root),
                compile=config.runtime.compile,
                drop_last=drop_last and train,
                world=world,
            )

        return BatchSources(fast(splits.train, True), fast(splits.valid, False), fast(splits.test, False))

    def reference(indices: list[int], train: bool) -> BatchSource:
        transform = train_transform(size) if train else eval_transform(size)
        return ReferenceBatchSource(
            dataset=CubDataset(index, indices, transform),
            batch_size=config.batch_size,
            shuffle=train,
            device=device,
            seed=config.seed,
            num_workers=config.data.num_workers,
            drop_last=drop_last and train,
            world=world,
        )

    return BatchSources(reference(splits.train, True), reference(splits.valid, False), reference(splits.test, False))
