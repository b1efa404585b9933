"""How many images a dataset's training split holds, for what is worked out before a run starts."""

from __future__ import annotations

from trainer.data.cub import make_splits, read_cub


def train_split_size(root: str, *, split: str, valid_fraction: float, split_seed: int) -> int:
    """The training images a run on ``root`` trains on, after the validation hold-out.

    Raises DatasetError (or OSError) when the dataset at ``root`` cannot be read.
    """
    index = read_cub(root)
    return len(make_splits(index, split=split, valid_fraction=valid_fraction, split_seed=split_seed).train)
