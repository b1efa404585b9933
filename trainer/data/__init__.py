"""CUB-200-2011 data: reading and checking the archive layout, splits, transforms, demo and fetch."""

from trainer.data.cub import (
    CubDataset,
    CubIndex,
    CubSample,
    DatasetError,
    Splits,
    dataset_report,
    find_cub_root,
    make_splits,
    read_cub,
)
from trainer.data.demo import write_demo_dataset
from trainer.data.fetch import fetch_cub
from trainer.data.transforms import IMAGENET_MEAN, IMAGENET_STD, eval_transform, train_transform

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "CubDataset",
    "CubIndex",
    "CubSample",
    "DatasetError",
    "Splits",
    "dataset_report",
    "eval_transform",
    "fetch_cub",
    "find_cub_root",
    "make_splits",
    "read_cub",
    "train_transform",
    "write_demo_dataset",
]
