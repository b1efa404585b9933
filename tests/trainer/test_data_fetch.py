from __future__ import annotations

import hashlib
import io
import shutil
import tarfile
from pathlib import Path

import pytest

from trainer.data.cub import DatasetError, read_cub
from trainer.data.fetch import fetch_cub


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory, demo_dataset: Path) -> Path:
    """A CUB_200_2011.tgz laid out like the real one: CUB_200_2011/ plus a loose top-level file."""
    path = tmp_path_factory.mktemp("archive") / "CUB_200_2011.tgz"
    with tarfile.open(path, "w:gz") as tar:
        tar.add(demo_dataset / "CUB_200_2011", arcname="CUB_200_2011")
        info = tarfile.TarInfo("attributes.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"1 x"))
    return path


def leftovers(dest: Path) -> list[str]:
    return sorted(p.name for p in dest.iterdir() if p.name not in ("CUB_200_2011", "CUB_200_2011.tgz"))


def test_fetch_through_a_file_url(tmp_path: Path, archive: Path):
    dest = tmp_path / "data"
    root = fetch_cub(dest, url=archive.as_uri(), md5=md5(archive), progress=False)
    assert root == dest / "CUB_200_2011"
    assert len(read_cub(root, verify_images=True).samples) == 48
    assert md5(dest / "CUB_200_2011.tgz") == md5(archive)
    assert leftovers(dest) == []


def test_md5_mismatch_is_reported_and_the_file_removed(tmp_path: Path, archive: Path):
    with pytest.raises(DatasetError) as caught:
        fetch_cub(tmp_path, url=archive.as_uri(), md5="0" * 32, progress=False)
    message = str(caught.value)
    assert f"has md5 {md5(archive)}, expected {'0' * 32}" in message
    assert "It was deleted" in message and "--url file:///path/to/CUB_200_2011.tgz" in message
    assert list(tmp_path.iterdir()) == []


def test_an_archive_already_present_is_not_downloaded_again(tmp_path: Path, archive: Path):
    shutil.copy(archive, tmp_path / "CUB_200_2011.tgz")
    unreachable = (tmp_path / "nowhere.tgz").as_uri()
    root = fetch_cub(tmp_path, url=unreachable, md5=md5(archive).upper(), progress=False)
    assert len(read_cub(root).samples) == 48


def test_a_corrupt_archive_present_is_downloaded_again(tmp_path: Path, archive: Path):
    (tmp_path / "CUB_200_2011.tgz").write_bytes(b"half a download")
    fetch_cub(tmp_path, url=archive.as_uri(), md5=md5(archive), progress=False)
    assert md5(tmp_path / "CUB_200_2011.tgz") == md5(archive)


def test_unreachable_url_says_how_to_download_by_hand(tmp_path: Path):
    url = (tmp_path / "missing.tgz").as_uri()
    with pytest.raises(DatasetError, match=rf"cannot download {url} .*by hand.*--url file:///path/to/CUB_200_2011.tgz"):
        fetch_cub(tmp_path / "data", url=url, progress=False)
    assert leftovers(tmp_path / "data") == []


def test_members_escaping_the_folder_are_refused(tmp_path: Path):
    evil = tmp_path / "evil.tgz"
    with tarfile.open(evil, "w:gz") as tar:
        info = tarfile.TarInfo("../escaped.txt")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"boom"))
    dest = tmp_path / "data"
    with pytest.raises(DatasetError, match="unsafe to extract"):
        fetch_cub(dest, url=evil.as_uri(), md5=md5(evil), progress=False)
    assert not (tmp_path / "escaped.txt").exists()
    assert leftovers(dest) == [] and not (dest / "CUB_200_2011").exists()


def test_an_archive_without_cub_is_refused(tmp_path: Path):
    other = tmp_path / "other.tgz"
    with tarfile.open(other, "w:gz") as tar:
        info = tarfile.TarInfo("readme.txt")
        tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(DatasetError, match="holds no CUB_200_2011/ folder"):
        fetch_cub(tmp_path / "data", url=other.as_uri(), md5=md5(other), progress=False)


def test_an_existing_dataset_is_left_alone(demo_dataset: Path, archive: Path):
    with pytest.raises(DatasetError, match="already exists; check it with `tricklab data check"):
        fetch_cub(demo_dataset, url=archive.as_uri(), md5=md5(archive), progress=False)


def test_fetch_command(tmp_path: Path, archive: Path, data_cli, capsys):
    assert data_cli("fetch-cub", str(tmp_path), "--url", archive.as_uri(), "--md5", md5(archive)) == 0
    assert f"ready at {tmp_path / 'CUB_200_2011'}" in capsys.readouterr().out
    assert data_cli("fetch-cub", str(tmp_path / "b"), "--url", archive.as_uri(), "--md5", "1" * 32) == 1
    err = capsys.readouterr().err
    assert "error: the file from" in err and "Traceback" not in err
