"""CUB-200-2011 in its archive layout: reading, integrity checks, the two splits' sizes, without torch.

The archive's ``CUB_200_2011/`` folder holds ``images/<NNN.Class>/<file>.jpg`` and the text files
``images.txt`` (id path), ``image_class_labels.txt`` (id label, 1-based), ``train_test_split.txt``
(id 1=train/0=test) and ``classes.txt`` (id NNN.Class). Everything here reads only those.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image
from tqdm import tqdm

ROOT_NAME = "CUB_200_2011"
REQUIRED_FILES = ("images.txt", "image_class_labels.txt", "train_test_split.txt", "classes.txt")
SPLITS = ("seed", "official")
SEED_TRAIN_RATIO = 0.8
DEFAULT_VALID_FRACTION = 0.1
FIX_HINT = (
    "run `tricklab data fetch-cub DIR` for the real dataset or `tricklab data demo DIR` for a small generated one"
)
# How many offending ids or files a message lists before it only counts the rest.
SHOWN = 10


class DatasetError(Exception):
    """The dataset is missing, incomplete or inconsistent; the message says what and what to do."""


@dataclass(frozen=True)
class CubSample:
    image_id: int
    path: Path
    label: int  # 0-based; the files are 1-based


@dataclass
class CubIndex:
    root: Path  # the CUB_200_2011 folder
    classes: list[str]  # folder names, "001.Black_footed_Albatross", in label order
    samples: list[CubSample]  # in images.txt order
    official_train: list[bool]  # train_test_split.txt, aligned with samples


@dataclass
class Splits:
    """Indices into ``CubIndex.samples``."""

    train: list[int]
    valid: list[int]
    test: list[int]


def _listing(items: Iterable[Any]) -> str:
    items = list(items)
    shown = ", ".join(str(item) for item in items[:SHOWN])
    return shown + (f" and {len(items) - SHOWN} more" if len(items) > SHOWN else "")


def find_cub_root(root: str | Path) -> Path:
    """Return the CUB_200_2011 folder: ``root`` itself or ``root/CUB_200_2011``."""
    root = Path(root).expanduser()
    if (root / ROOT_NAME).is_dir():
        return root / ROOT_NAME
    if (root / "images.txt").is_file() or (root / "images").is_dir():
        return root
    if not root.exists():
        raise DatasetError(f"dataset folder {root} does not exist; {FIX_HINT}")
    raise DatasetError(
        f"no CUB-200-2011 dataset in {root}: expected {root / ROOT_NAME}/ "
        f"or images.txt and images/ directly in it; {FIX_HINT}"
    )


def _read_table(path: Path, columns: str) -> dict[int, str]:
    """Read an ``id value`` file into {id: value}, naming the line of any malformed entry."""
    table: dict[int, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        key, _, value = line.strip().partition(" ")
        value = value.strip()
        if not key.isdigit() or not value:
            raise DatasetError(f"{path} line {number}: expected '{columns}', got {line!r}; {FIX_HINT}")
        if int(key) in table:
            raise DatasetError(f"{path} line {number}: image id {key} appears twice; {FIX_HINT}")
        table[int(key)] = value
    return table


def _int_values(table: dict[int, str], path: Path, allowed: range, what: str) -> dict[int, int]:
    bad = [key for key, value in table.items() if not value.isdigit() or int(value) not in allowed]
    if bad:
        raise DatasetError(
            f"{path}: {what} must be {allowed.start}..{allowed.stop - 1}; "
            f"ids with other values: {_listing(bad)}; {FIX_HINT}"
        )
    return {key: int(value) for key, value in table.items()}


def _check_same_ids(images: dict[int, str], other: dict[int, Any], images_path: Path, other_path: Path) -> None:
    unknown = sorted(other.keys() - images.keys())
    missing = sorted(images.keys() - other.keys())
    if not unknown and not missing:
        return
    problems = [f"{images_path.name} lists {len(images)} images but {other_path.name} lists {len(other)}"]
    if missing:
        problems.append(f"ids missing from {other_path.name}: {_listing(missing)}")
    if unknown:
        problems.append(f"{other_path.name} names ids that {images_path.name} does not list: {_listing(unknown)}")
    raise DatasetError(f"{'; '.join(problems)}. The files come from different copies; {FIX_HINT}")


def read_cub(root: str | Path, *, verify_images: bool = False) -> CubIndex:
    """Read and check a CUB_200_2011 folder (or its parent).

    Checks that the four text files and ``images/`` exist, that they describe the same image ids,
    that labels name a listed class and that every image file exists. With ``verify_images`` each
    image is also decoded, which finds truncated or corrupt files (slow on the real 11,788).
    """
    root = find_cub_root(root)
    missing = [name for name in REQUIRED_FILES if not (root / name).is_file()]
    if not (root / "images").is_dir():
        missing.append("images/")
    if missing:
        raise DatasetError(f"{root} is incomplete: missing {', '.join(missing)}; {FIX_HINT}")

    classes_path = root / "classes.txt"
    class_table = _read_table(classes_path, "id NNN.Class_Name")
    if sorted(class_table) != list(range(1, len(class_table) + 1)):
        raise DatasetError(f"{classes_path}: class ids must run 1..{len(class_table)} without gaps; {FIX_HINT}")
    classes = [class_table[key] for key in range(1, len(class_table) + 1)]

    images_path = root / "images.txt"
    images = _read_table(images_path, "id relative/path.jpg")
    labels_path = root / "image_class_labels.txt"
    labels = _int_values(_read_table(labels_path, "id label"), labels_path, range(1, len(classes) + 1), "labels")
    split_path = root / "train_test_split.txt"
    is_train = _int_values(_read_table(split_path, "id 0|1"), split_path, range(0, 2), "values")
    _check_same_ids(images, labels, images_path, labels_path)
    _check_same_ids(images, is_train, images_path, split_path)
    if not images:
        raise DatasetError(f"{images_path} lists no images; {FIX_HINT}")

    samples = [CubSample(key, root / "images" / rel, labels[key] - 1) for key, rel in images.items()]
    absent = [str(sample.path.relative_to(root)) for sample in samples if not sample.path.is_file()]
    if absent:
        raise DatasetError(
            f"{len(absent)} of {len(samples)} images listed in {images_path.name} are missing under {root}: "
            f"{_listing(absent)}; the copy is incomplete, {FIX_HINT}"
        )
    index = CubIndex(root, classes, samples, [is_train[sample.image_id] == 1 for sample in samples])
    if verify_images:
        check_images(index)
    return index


def check_images(index: CubIndex) -> collections.Counter[str]:
    """Decode every image; return how many there are of each PIL mode. Raise naming unreadable ones."""
    modes: collections.Counter[str] = collections.Counter()
    unreadable = []
    for sample in tqdm(index.samples, desc="checking images", unit="img", disable=None, leave=False):
        try:
            with Image.open(sample.path) as image:
                # A reduced-scale JPEG decode still reads the whole file, so truncation is caught.
                image.draft("RGB", (64, 64))
                image.load()
                modes[image.mode] += 1
        except Exception as exc:  # noqa: BLE001 - PIL signals corrupt files with many exception types
            unreadable.append((sample.path, exc))
    if unreadable:
        raise unreadable_images(index.root, unreadable)
    return modes


def unreadable_images(root: Path, unreadable: list[tuple[Path, Exception]]) -> DatasetError:
    """The one-line error naming images that cannot be decoded, each with PIL's reason."""
    named = [f"{path.relative_to(root)} ({' '.join(str(exc).split())})" for path, exc in unreadable]
    return DatasetError(
        f"{len(named)} images under {root} cannot be read: {_listing(named)}; "
        f"replace them from the archive (re-extract it, or {FIX_HINT})"
    )


def _relative_parts(index: CubIndex, position: int) -> tuple[str, ...]:
    # Folder, then file name: the order torchvision's ImageFolder listed them in for the report.
    return index.samples[position].path.relative_to(index.root / "images").parts


def split_pools(index: CubIndex, *, split: str) -> tuple[list[int], list[int]]:
    """(train pool, test): positions in ``index.samples`` before the validation hold-out.

    ``seed``: per class, the first ``int(n * 0.8)`` files in sorted order train, the rest test (the
    report's code took directory order; sorting makes it reproducible). ``official``: the archive's
    train_test_split.txt. Both list the train pool in sorted path order (ImageFolder's order), which
    ``trainer.data.dataset.make_splits`` permutes to hold out validation.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    ordered = sorted(range(len(index.samples)), key=lambda position: _relative_parts(index, position))
    if split == "official":
        train = [position for position in ordered if index.official_train[position]]
        test = [position for position in ordered if not index.official_train[position]]
        return train, test
    by_class: dict[int, list[int]] = collections.defaultdict(list)
    for position in ordered:
        by_class[index.samples[position].label].append(position)
    train, test = [], []
    for label in sorted(by_class):
        files = by_class[label]
        n_train = int(len(files) * SEED_TRAIN_RATIO)
        train += files[:n_train]
        test += files[n_train:]
    return train, test


def kept_for_training(pool_size: int, valid_fraction: float) -> int:
    """How many of a train pool's images train after the validation hold-out (the rest validate)."""
    if not 0 < valid_fraction < 1:
        raise ValueError(f"valid_fraction must be between 0 and 1, got {valid_fraction}")
    return int(pool_size * (1 - valid_fraction))


def train_split_size(root: str | Path, *, split: str, valid_fraction: float) -> int:
    """The training images a run on ``root`` trains on, after the validation hold-out.

    Which images those are depends on ``split_seed``; how many does not, so this needs no torch.
    Raises DatasetError (or OSError) when the dataset at ``root`` cannot be read.
    """
    train, _ = split_pools(read_cub(root), split=split)
    return kept_for_training(len(train), valid_fraction)


def _split_gaps(index: CubIndex) -> list[str]:
    """Classes that one of the splits leaves without train or test images."""
    counts = collections.Counter(sample.label for sample in index.samples)
    official: dict[int, collections.Counter[bool]] = collections.defaultdict(collections.Counter)
    for sample, is_train in zip(index.samples, index.official_train, strict=True):
        official[sample.label][is_train] += 1
    problems = []
    for label, name in enumerate(index.classes):
        if counts[label] == 0:
            problems.append(f"class {name} has no images")
            continue
        if int(counts[label] * SEED_TRAIN_RATIO) == 0:
            problems.append(f"class {name} has {counts[label]} image: the seed split gives it no train images")
        for is_train, side in ((True, "train"), (False, "test")):
            if official[label][is_train] == 0:
                problems.append(f"class {name}: train_test_split.txt gives it no {side} images")
    return problems


def dataset_report(root: str | Path) -> str:
    """Text for ``tricklab data check``: what is there, split sizes, and problems that do not stop training."""
    index = read_cub(root)
    modes = check_images(index)
    rgb = modes.pop("RGB", 0)
    others = ", ".join(f"{count} {mode}" for mode, count in sorted(modes.items()))
    lines = [
        f"CUB-200-2011 layout at {index.root}",
        f"classes: {len(index.classes)}",
        f"images:  {len(index.samples):,} (all readable; {rgb:,} RGB"
        + (f", {others} converted to RGB when loaded)" if others else ")"),
        "",
        f"{'split':<10}{'train':>8}{'valid':>8}{'test':>8}",
    ]
    for split in SPLITS:
        pool, test = split_pools(index, split=split)
        n_train = kept_for_training(len(pool), DEFAULT_VALID_FRACTION)
        lines.append(f"{split:<10}{n_train:>8,}{len(pool) - n_train:>8,}{len(test):>8,}")
    lines.append("(valid: 10% of train held out with split_seed 1234, the defaults)")
    problems = _split_gaps(index)
    if not (index.root / "bounding_boxes.txt").is_file():
        problems.append("bounding_boxes.txt is missing (training does not use it)")
    lines.append("")
    lines.append("problems: " + ("none" if not problems else f"{len(problems)}"))
    lines += [f"  - {problem}" for problem in problems]
    return "\n".join(lines)
