from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import cast

import pytest
import torch
from PIL import Image

from trainer.data.cub import CubIndex, CubSample, DatasetError, dataset_report, find_cub_root, read_cub
from trainer.data.dataset import CubDataset, make_splits
from trainer.data.transforms import eval_transform

# The session demo: 4 classes x 12 images; train_test_split.txt marks 6 of each class as train.
CLASSES, PER_CLASS = 4, 12


@pytest.fixture
def cub(tmp_path: Path, demo_dataset: Path) -> Path:
    """A private copy of the demo's CUB_200_2011 folder, free to break."""
    return Path(shutil.copytree(demo_dataset / "CUB_200_2011", tmp_path / "CUB_200_2011"))


def relative(index: CubIndex, positions: list[int]) -> list[str]:
    return [index.samples[p].path.relative_to(index.root / "images").as_posix() for p in positions]


# --- finding and reading -----------------------------------------------------------------


def test_find_cub_root_accepts_the_parent_or_the_folder_itself(demo_dataset: Path):
    root = demo_dataset / "CUB_200_2011"
    assert find_cub_root(demo_dataset) == root
    assert find_cub_root(root) == root
    assert find_cub_root(str(demo_dataset)) == root


def test_find_cub_root_explains_a_missing_or_empty_folder(tmp_path: Path):
    with pytest.raises(DatasetError, match=r"does not exist.*tricklab data fetch-cub DIR.*tricklab data demo DIR"):
        find_cub_root(tmp_path / "nowhere")
    with pytest.raises(
        DatasetError, match=r"no CUB-200-2011 dataset in .*expected .*CUB_200_2011/.*tricklab data demo"
    ):
        find_cub_root(tmp_path)


def test_read_cub_indexes_the_demo(demo_dataset: Path):
    index = read_cub(demo_dataset, verify_images=True)
    assert index.root == demo_dataset / "CUB_200_2011"
    assert len(index.classes) == CLASSES and index.classes[0].startswith("001.")
    assert len(index.samples) == CLASSES * PER_CLASS == len(index.official_train)
    assert [s.image_id for s in index.samples] == list(range(1, CLASSES * PER_CLASS + 1))
    first = index.samples[0]
    assert first.label == 0 and first.path.parent.name == index.classes[0] and first.path.is_file()
    assert {s.label for s in index.samples} == set(range(CLASSES))
    assert sum(index.official_train) == CLASSES * PER_CLASS // 2


@pytest.mark.parametrize(
    "name", ["images.txt", "image_class_labels.txt", "train_test_split.txt", "classes.txt", "images"]
)
def test_a_missing_file_is_named(cub: Path, name: str):
    target = cub / name
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    with pytest.raises(DatasetError, match=rf"incomplete: missing {name}.*tricklab data fetch-cub"):
        read_cub(cub)


def test_a_count_mismatch_names_the_missing_ids(cub: Path):
    labels = cub / "image_class_labels.txt"
    labels.write_text("".join(labels.read_text().splitlines(keepends=True)[:-1]))
    with pytest.raises(DatasetError) as caught:
        read_cub(cub)
    message = str(caught.value)
    assert "images.txt lists 48 images but image_class_labels.txt lists 47" in message
    assert "ids missing from image_class_labels.txt: 48" in message
    assert "tricklab data" in message


def test_an_unknown_id_is_named(cub: Path):
    with (cub / "train_test_split.txt").open("a") as file:
        file.write("999 1\n")
    with pytest.raises(
        DatasetError, match=re.escape("train_test_split.txt names ids that images.txt does not list: 999")
    ):
        read_cub(cub)


@pytest.mark.parametrize(
    ("filename", "line", "message"),
    [
        ("image_class_labels.txt", "5 9", r"labels must be 1\.\.4; ids with other values: 5"),
        ("image_class_labels.txt", "5 0", r"labels must be 1\.\.4; ids with other values: 5"),
        ("train_test_split.txt", "5 2", r"values must be 0\.\.1; ids with other values: 5"),
        ("images.txt", "5", r"images.txt line 5: expected 'id relative/path.jpg', got '5'"),
        ("images.txt", "4 001.x/dup.jpg", r"images.txt line 5: image id 4 appears twice"),
    ],
)
def test_a_bad_line_is_named(cub: Path, filename: str, line: str, message: str):
    path = cub / filename
    lines = path.read_text().splitlines()
    lines[4] = line
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match=message):
        read_cub(cub)


def test_class_ids_must_run_without_gaps(cub: Path):
    (cub / "classes.txt").write_text("1 001.A\n2 002.B\n4 004.D\n")
    with pytest.raises(DatasetError, match=r"class ids must run 1\.\.3 without gaps"):
        read_cub(cub)


def test_an_empty_listing_is_refused(cub: Path):
    for name in ("images.txt", "image_class_labels.txt", "train_test_split.txt"):
        (cub / name).write_text("")
    with pytest.raises(DatasetError, match="lists no images"):
        read_cub(cub)


def test_a_missing_image_is_named(cub: Path):
    index = read_cub(cub)
    gone = index.samples[7].path
    gone.unlink()
    with pytest.raises(DatasetError) as caught:
        read_cub(cub)
    assert f"1 of 48 images listed in images.txt are missing under {cub}" in str(caught.value)
    assert gone.relative_to(cub).as_posix() in str(caught.value)


def test_unreadable_images_are_named_only_when_verified(cub: Path):
    index = read_cub(cub)
    truncated, garbage = index.samples[3].path, index.samples[20].path
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    garbage.write_bytes(b"not a jpeg at all")
    assert len(read_cub(cub).samples) == 48  # without verification only existence is checked
    with pytest.raises(DatasetError) as caught:
        read_cub(cub, verify_images=True)
    message = str(caught.value)
    assert "2 images under" in message and "cannot be read" in message
    assert truncated.relative_to(cub).as_posix() in message
    assert garbage.relative_to(cub).as_posix() in message


# --- splits ------------------------------------------------------------------------------


def check_partition(index: CubIndex, splits) -> None:
    everything = splits.train + splits.valid + splits.test
    assert len(everything) == len(set(everything)) == len(index.samples)


def test_seed_split_takes_the_first_80_percent_of_each_class_in_sorted_order(demo_dataset: Path):
    index = read_cub(demo_dataset)
    splits = make_splits(index, split="seed")
    check_partition(index, splits)
    # int(12 * 0.8) = 9 train per class -> 36, of which int(36 * 0.9) = 32 train and 4 valid.
    assert (len(splits.train), len(splits.valid), len(splits.test)) == (32, 4, 12)
    for folder in index.classes:
        files = sorted(p.name for p in (index.root / "images" / folder).iterdir())
        test = [name for name in relative(index, splits.test) if name.startswith(folder + "/")]
        assert test == [f"{folder}/{name}" for name in files[9:]]


def test_validation_hold_out_is_the_random_split_of_the_report(demo_dataset: Path):
    index = read_cub(demo_dataset)
    splits = make_splits(index, split="seed", split_seed=1234)
    train_all = sorted(splits.train + splits.valid, key=lambda p: index.samples[p].path)
    # random_split takes any sequence (the report passes a list); torch annotates it for a Dataset only.
    dataset = cast("torch.utils.data.Dataset[int]", train_all)
    train, valid = torch.utils.data.random_split(dataset, [32, 4], generator=torch.Generator().manual_seed(1234))
    assert splits.train == [train_all[i] for i in train.indices]
    assert splits.valid == [train_all[i] for i in valid.indices]


def test_splits_are_deterministic_and_the_seed_moves_only_validation(demo_dataset: Path):
    index = read_cub(demo_dataset)
    first, again = make_splits(index, split="seed"), make_splits(index, split="seed")
    assert first == again
    other = make_splits(index, split="seed", split_seed=7)
    assert sorted(other.train + other.valid) == sorted(first.train + first.valid)
    assert other.test == first.test and set(other.valid) != set(first.valid)


def test_official_split_follows_train_test_split_txt(demo_dataset: Path):
    index = read_cub(demo_dataset)
    splits = make_splits(index, split="official", valid_fraction=0.25)
    check_partition(index, splits)
    # 24 marked train -> int(24 * 0.75) = 18 train, 6 valid; 24 test.
    assert (len(splits.train), len(splits.valid), len(splits.test)) == (18, 6, 24)
    assert all(index.official_train[p] for p in splits.train + splits.valid)
    assert not any(index.official_train[p] for p in splits.test)
    assert make_splits(index, split="official", valid_fraction=0.25) == splits


def test_split_arguments_are_checked(demo_dataset: Path):
    index = read_cub(demo_dataset)
    with pytest.raises(ValueError, match="split must be one of seed, official, got 'random'"):
        make_splits(index, split="random")
    with pytest.raises(ValueError, match="valid_fraction must be between 0 and 1"):
        make_splits(index, split="seed", valid_fraction=1.0)


def test_seed_split_sizes_on_a_cub_sized_index():
    # CUB's 11,788 images as 147 classes of 60 and 53 of 56 (the real counts vary from 41 to 60).
    root = Path("/cub/CUB_200_2011")
    counts = [56] * 53 + [60] * 147
    samples: list[CubSample] = []
    for label, count in enumerate(counts):
        folder = f"{label + 1:03d}.Bird_{label}"
        samples += [
            CubSample(len(samples) + 1, root / "images" / folder / f"Bird_{n:04d}.jpg", label) for n in range(count)
        ]
    index = CubIndex(root, [f"{i + 1:03d}.Bird_{i}" for i in range(200)], samples, [True] * len(samples))
    assert len(samples) == 11_788
    splits = make_splits(index, split="seed")
    # train+valid = 53 * int(44.8) + 147 * 48 = 9,388; train = int(9,388 * 0.9) = 8,449.
    assert (len(splits.train), len(splits.valid), len(splits.test)) == (8_449, 939, 2_400)
    check_partition(index, splits)


# --- the Dataset -------------------------------------------------------------------------


def test_dataset_returns_transformed_rgb_images_and_labels(demo_dataset: Path):
    index = read_cub(demo_dataset)
    indices = make_splits(index, split="seed").test
    dataset = CubDataset(index, indices, eval_transform(32))
    assert len(dataset) == 12
    image, label = dataset[5]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32
    assert label == index.samples[indices[5]].label and isinstance(label, int)
    raw, _ = CubDataset(index, indices, None)[5]
    assert isinstance(raw, Image.Image) and raw.mode == "RGB"


def test_dataset_converts_grayscale_to_rgb(cub: Path):
    index = read_cub(cub)
    Image.new("L", (50, 40), 128).save(index.samples[0].path, format="JPEG")
    image, _ = CubDataset(index, [0], None)[0]
    assert image.mode == "RGB" and image.size == (50, 40)


def test_dataset_names_an_unreadable_image(cub: Path):
    index = read_cub(cub)
    index.samples[2].path.write_bytes(b"broken")
    with pytest.raises(DatasetError, match=rf"cannot read image .*{index.samples[2].path.name}.*tricklab data check"):
        CubDataset(index, [2], None)[0]


# --- the report and `tricklab data check` ----------------------------------------------------


def test_report_gives_counts_for_both_splits(demo_dataset: Path):
    report = dataset_report(demo_dataset)
    assert f"at {demo_dataset / 'CUB_200_2011'}" in report
    assert "classes: 4" in report
    assert "images:  48 (all readable; 48 RGB)" in report
    assert [line.split() for line in report.splitlines() if line.startswith(("seed", "official"))] == [
        ["seed", "32", "4", "12"],
        ["official", "21", "3", "24"],
    ]
    assert report.rstrip().endswith("problems: none")


def test_report_lists_problems_that_do_not_stop_training(cub: Path):
    index = read_cub(cub)
    Image.new("L", (50, 40), 128).save(index.samples[0].path, format="JPEG")
    (cub / "bounding_boxes.txt").unlink()
    split = cub / "train_test_split.txt"
    moved = "".join(
        f"{s.image_id} {int(t and s.label != 1)}\n" for s, t in zip(index.samples, index.official_train, strict=True)
    )
    split.write_text(moved)
    report = dataset_report(cub.parent)
    assert "47 RGB, 1 L converted to RGB when loaded" in report
    assert "problems: 2" in report
    assert f"class {index.classes[1]}: train_test_split.txt gives it no train images" in report
    assert "bounding_boxes.txt is missing" in report


def test_report_raises_on_fatal_problems(cub: Path):
    read_cub(cub).samples[0].path.write_bytes(b"")
    with pytest.raises(DatasetError, match="cannot be read"):
        dataset_report(cub)


def test_check_command_prints_the_report(demo_dataset: Path, data_cli, capsys):
    assert data_cli("check", str(demo_dataset)) == 0
    assert "classes: 4" in capsys.readouterr().out


def test_check_command_fails_with_a_message_not_a_traceback(tmp_path: Path, data_cli, capsys):
    assert data_cli("check", str(tmp_path)) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("error: no CUB-200-2011 dataset in")
    assert "tricklab data demo DIR" in captured.err and "Traceback" not in captured.err
