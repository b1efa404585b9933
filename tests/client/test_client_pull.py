"""A run's files through the Python client and `tricklab pull`, against a real `tricklab serve` whose
finished runs were written straight into its database and runs folder (no training needed)."""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from testlib.dashboard import Dashboard, serve
from testlib.finished import Finished, add_finished_runs, write_run_folder
from testlib.processes import tricklab

from tricklab import Client, Incomplete, NotFound, TricklabError
from tricklab.downloads import local_path

CHECKPOINT_BYTES = 300_000  # more than one chunk


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, demo_dataset: Path) -> Iterator[dict[str, Any]]:
    home = tmp_path_factory.mktemp("pull-server")
    with serve(home, demo_dataset, workers=0) as server:
        [run_id] = add_finished_runs(server.database_url, [Finished("pulled", {}, [(50, 80), (60, 85)])])
        folder = write_run_folder(home / "runs", run_id, checkpoint_bytes=CHECKPOINT_BYTES)
        yield {"server": server, "run_id": run_id, "folder": folder}


@pytest.fixture
def client(served: dict[str, Any]) -> Iterator[Client]:
    server: Dashboard = served["server"]
    with Client(server.url, token="") as client:
        yield client


def same_tree(pulled: Path, folder: Path) -> None:
    names = sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file())
    assert sorted(path.relative_to(pulled).as_posix() for path in pulled.rglob("*") if path.is_file()) == names
    for name in names:
        assert (pulled / name).read_bytes() == (folder / name).read_bytes(), name


def test_pull_fetches_every_file_with_its_layout(client, served, tmp_path):
    files = client.run_files(served["run_id"])
    assert {file.path: file.kind for file in files.data}["checkpoints/best.pt"] == "checkpoint"
    assert files.total_bytes == sum(file.size for file in files.data)
    written = client.pull(served["run_id"], tmp_path / "out")
    assert len(written) == files.count == 8
    same_tree(tmp_path / "out", served["folder"])
    # A second pull finds every file in place at its size and writes nothing.
    stamps = {path: path.stat().st_mtime_ns for path in written}
    client.pull(served["run_id"], tmp_path / "out")
    assert {path: path.stat().st_mtime_ns for path in written} == stamps


def test_a_partial_file_is_resumed_with_range(client, served, tmp_path):
    out = tmp_path / "out" / "checkpoints"
    out.mkdir(parents=True)
    # Zeros where the real bytes are not: only a resumed download leaves them in place.
    (out / "best.pt.part").write_bytes(bytes(1000))
    client.pull(served["run_id"], tmp_path / "out")
    pulled = (out / "best.pt").read_bytes()
    real = (served["folder"] / "checkpoints" / "best.pt").read_bytes()
    assert len(pulled) == CHECKPOINT_BYTES and pulled[:1000] == bytes(1000) and pulled[1000:] == real[1000:]
    assert not (out / "best.pt.part").exists()


def test_a_part_of_a_file_that_changed_since_is_fetched_again_whole(client, served, tmp_path):
    checkpoint = served["folder"] / "checkpoints" / "last.pt"
    out = tmp_path / "out" / "checkpoints"
    out.mkdir(parents=True)
    (out / "last.pt.part").write_bytes(bytes(1000))
    listed = {file.path: file for file in client.run_files(served["run_id"]).data}["checkpoints/last.pt"]
    os.utime(checkpoint, (listed.modified_at.timestamp() + 5,) * 2)  # the file changed after the part began
    try:
        client.download_file(served["run_id"], listed, out / "last.pt")
    finally:
        os.utime(checkpoint, (listed.modified_at.timestamp(),) * 2)
    assert (out / "last.pt").read_bytes() == checkpoint.read_bytes()


def test_a_size_other_than_the_listed_one_is_incomplete(client, served, tmp_path):
    listed = {file.path: file for file in client.run_files(served["run_id"]).data}["result.json"]
    wrong = listed.model_copy(update={"size": listed.size + 1})
    with pytest.raises(Incomplete, match="the list said"):
        client.download_file(served["run_id"], wrong, tmp_path / "result.json")
    assert not (tmp_path / "result.json").exists()  # the part stays aside, never in the file's place


@pytest.mark.parametrize("path", ["../escape", "/etc/passwd", "a/../../b", "..\\b", "", "a/./b"])
def test_a_server_cannot_make_the_client_write_outside_the_folder(tmp_path, path):
    with pytest.raises(TricklabError, match="not a path inside"):
        local_path(tmp_path, path)


def test_pull_of_an_unknown_run_is_not_found(client, tmp_path):
    with pytest.raises(NotFound):
        client.pull(9999, tmp_path)


def test_tricklab_pull_writes_the_files_or_the_zip(served, tmp_path):
    url = served["server"].url
    done = tricklab("pull", str(served["run_id"]), "--out", str(tmp_path / "all"), "--server", url)
    assert done.returncode == 0, done.stderr
    same_tree(tmp_path / "all", served["folder"])
    assert f"run {served['run_id']}: 8 files" in done.stderr

    zipped = tricklab("pull", str(served["run_id"]), "--out", str(tmp_path / "zip"), "--zip", "--server", url)
    assert zipped.returncode == 0, zipped.stderr
    archive = zipfile.ZipFile(io.BytesIO((tmp_path / "zip" / f"run-{served['run_id']}.zip").read_bytes()))
    assert archive.namelist() and not [name for name in archive.namelist() if "/checkpoints/" in name]

    missing = tricklab("pull", "9999", "--out", str(tmp_path / "none"), "--server", url)
    assert missing.returncode == 1 and "run 9999 not found" in missing.stderr
