from __future__ import annotations

import re
from pathlib import Path

import pytest
from PIL import Image

from trainer.data.cub import DatasetError, read_cub
from trainer.data.demo import MAX_CLASSES, class_specs, write_demo_dataset

CUB_FILES = ("images.txt", "image_class_labels.txt", "train_test_split.txt", "classes.txt", "bounding_boxes.txt")


def rows(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines()]


def test_layout_is_cubs(demo_dataset: Path):
    root = demo_dataset / "CUB_200_2011"
    assert sorted(p.name for p in root.iterdir()) == sorted([*CUB_FILES, "images"])
    classes = rows(root / "classes.txt")
    assert [int(i) for i, _ in classes] == [1, 2, 3, 4]
    assert all(re.fullmatch(r"\d{3}\.[A-Z][a-z]+_[A-Z][a-z]+", name) for _, name in classes)
    assert sorted(p.name for p in (root / "images").iterdir()) == [name for _, name in classes]

    images = rows(root / "images.txt")
    assert [int(i) for i, _ in images] == list(range(1, 49))
    for (image_id, relative), (label_id, label) in zip(images, rows(root / "image_class_labels.txt"), strict=True):
        folder, filename = relative.split("/")
        assert image_id == label_id and folder == classes[int(label) - 1][1]
        assert re.fullmatch(re.escape(folder[4:]) + r"_\d{4}_\d{6}\.jpg", filename)
        assert (root / "images" / relative).is_file()
    assert {flag for _, flag in rows(root / "train_test_split.txt")} == {"0", "1"}


def test_images_are_non_square_jpegs_with_the_short_side_asked_for(demo_dataset: Path):
    index = read_cub(demo_dataset, verify_images=True)
    boxes = {int(row[0]): [float(v) for v in row[1:]] for row in rows(index.root / "bounding_boxes.txt")}
    shapes = set()
    for sample in index.samples:
        with Image.open(sample.path) as image:
            assert image.format == "JPEG" and image.mode == "RGB"
            assert min(image.size) == 40 and max(image.size) == 53
            shapes.add(image.size)
            x, y, w, h = boxes[sample.image_id]
            assert x >= 0 and y >= 0 and w > 0 and h > 0 and x + w <= image.width and y + h <= image.height
    assert shapes == {(53, 40), (40, 53)}


def test_every_class_is_in_both_halves_of_the_archive_split(demo_dataset: Path):
    index = read_cub(demo_dataset)
    for label in range(4):
        flags = [t for s, t in zip(index.samples, index.official_train, strict=True) if s.label == label]
        assert flags.count(True) == 6 and flags.count(False) == 6


def test_same_seed_same_bytes_other_seed_other_images(tmp_path: Path):
    def files(seed: int, folder: str) -> dict[str, bytes]:
        root = write_demo_dataset(tmp_path / folder, classes=3, per_class=4, size=24, seed=seed)
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    first = files(0, "a")
    assert files(0, "b") == first
    other = files(1, "c")
    assert other["classes.txt"] == first["classes.txt"]
    assert other["images.txt"] != first["images.txt"]  # the file names carry random numbers, as CUB's do
    first_images = [v for k, v in first.items() if k.endswith(".jpg")]
    other_images = [v for k, v in other.items() if k.endswith(".jpg")]
    assert not set(first_images) & set(other_images)


def test_classes_share_colours_and_shapes():
    specs = class_specs(4)
    assert specs == [
        ("Solid", "Red", "Circle"),
        ("Solid", "Blue", "Cross"),
        ("Solid", "Yellow", "Triangle"),
        ("Solid", "Green", "Star"),
    ]
    assert len(set(class_specs(MAX_CLASSES))) == MAX_CLASSES
    assert len({colour for _, colour, _ in class_specs(10)}) == 10
    assert len({colour for _, colour, _ in class_specs(30)}) == 10
    assert {fill for fill, _, _ in class_specs(200)} == {"Solid", "Striped", "Outlined"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"classes": 0}, "classes must be 1..240"),
        ({"classes": MAX_CLASSES + 1}, "classes must be 1..240"),
        ({"per_class": 1}, "per_class must be at least 2"),
        ({"size": 8}, "size must be at least 16"),
    ],
)
def test_bad_arguments_are_refused(tmp_path: Path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        write_demo_dataset(tmp_path, **kwargs)
    assert not any(tmp_path.iterdir())


def test_an_existing_dataset_is_not_overwritten(demo_dataset: Path):
    with pytest.raises(DatasetError, match="already exists; remove it or choose another folder"):
        write_demo_dataset(demo_dataset)


def test_demo_command_writes_a_readable_dataset(tmp_path: Path, data_cli, capsys):
    code = data_cli("demo", str(tmp_path), "--classes", "2", "--per-class", "3", "--size", "20", "--seed", "5")
    assert code == 0
    assert f"data.root={tmp_path}" in capsys.readouterr().out
    index = read_cub(tmp_path, verify_images=True)
    assert len(index.classes) == 2 and len(index.samples) == 6
    assert not [p for p in tmp_path.iterdir() if p.name != "CUB_200_2011"]  # no scratch folder left


def test_demo_command_reports_an_existing_dataset(demo_dataset: Path, data_cli, capsys):
    assert data_cli("demo", str(demo_dataset)) == 1
    assert capsys.readouterr().err.startswith("error: ")


def test_demo_command_checks_its_numbers(tmp_path: Path, data_cli, capsys):
    with pytest.raises(SystemExit):
        data_cli("demo", str(tmp_path), "--classes", "500")
    assert "--classes: must be at most 240, got 500" in capsys.readouterr().err
