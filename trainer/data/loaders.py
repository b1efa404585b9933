"""Batch sources: what the training loop iterates, whichever pipeline produces the batches.

Every source yields ``(images, targets)`` already on the training device and is seeded per epoch:
the same (seed, epoch) gives the same batches, so a resumed run continues exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from trainer.config import RunConfig
from trainer.data.cache import cache_dir
from trainer.data.cub import CubDataset, CubIndex, Splits
from trainer.data.fast import build_fast_source
from trainer.data.transforms import eval_transform, train_transform
from trainer.seeds import order_seed, sample_seed


class BatchSource(Protocol):
    num_samples: int

    def __len__(self) -> int: ...

    def set_epoch(self, epoch: int) -> None: ...

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


class ReferenceBatchSource:
    """The report's pipeline: PIL decode and per-image torchvision transforms in DataLoader workers."""

    def __init__(
        self,
        *,
        dataset: SizedDataset,
        batch_size: int,
        shuffle: bool,
        device: torch.device,
        seed: int,
        num_workers: int,
    ):
        self.device = device
        self.seed = seed
        self.num_samples = len(dataset)
        self._dataset = _PerSampleSeeded(dataset, seed)
        self._shuffle_generator = torch.Generator()
        self._loader = DataLoader(
            self._dataset,
            batch_size=batch_size,
            shuffle=shuffle,
            generator=self._shuffle_generator,
            num_workers=num_workers,
            pin_memory=device.type == "cuda",
            drop_last=False,
        )

    def __len__(self) -> int:
        return len(self._loader)

    def set_epoch(self, epoch: int) -> None:
        self._dataset.epoch = epoch
        self._shuffle_generator.manual_seed(order_seed(self.seed, epoch))

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        for images, targets in self._loader:
            yield images.to(self.device, non_blocking=True), targets.to(self.device, non_blocking=True)


@dataclass
class BatchSources:
    train: BatchSource
    valid: BatchSource
    test: BatchSource


def build_batch_sources(config: RunConfig, *, index: CubIndex, splits: Splits, device: torch.device) -> BatchSources:
    size = config.data.image_size
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
        )

    return BatchSources(reference(splits.train, True), reference(splits.valid, False), reference(splits.test, False))
