"""The torch side of CUB-200-2011: the splits as the report drew them, and the Dataset of a split."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from PIL import Image

from trainer.data.cub import CubIndex, DatasetError, Splits, kept_for_training, split_pools


def make_splits(index: CubIndex, *, split: str, valid_fraction: float = 0.1, split_seed: int = 1234) -> Splits:
    """Train / valid / test indices into ``index.samples``.

    The train pool of ``split_pools`` loses its validation images exactly as
    ``torch.utils.data.random_split`` took them in the report's code: the pool, in sorted path order,
    permuted by a generator seeded with ``split_seed``, the first ``int(len * (1 - valid_fraction))`` kept.
    """
    train, test = split_pools(index, split=split)
    n_train = kept_for_training(len(train), valid_fraction)
    permutation = torch.randperm(len(train), generator=torch.Generator().manual_seed(split_seed)).tolist()
    return Splits(
        train=[train[i] for i in permutation[:n_train]],
        valid=[train[i] for i in permutation[n_train:]],
        test=test,
    )


class CubDataset(torch.utils.data.Dataset):
    """(transform(RGB PIL image), 0-based label) for the given indices into ``index.samples``."""

    def __init__(self, index: CubIndex, indices: list[int], transform: Callable[[Image.Image], Any] | None):
        self.index = index
        self.indices = list(indices)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, item: int) -> tuple[Any, int]:
        sample = self.index.samples[self.indices[item]]
        try:
            with Image.open(sample.path) as file:
                image = file.convert("RGB")
        except OSError as exc:
            raise DatasetError(
                f"cannot read image {sample.path} ({exc}); run `tricklab data check {self.index.root}` "
                "to list every damaged file"
            ) from None
        return (self.transform(image) if self.transform else image), sample.label
