"""A run's files over the API: the list, streamed downloads with Range, the zip without checkpoints,
and every path that tries to leave the run's folder (MLflow's CVE-2023-1177, -2780, -6831 and
2024-1560 tried these), sent raw to a real uvicorn, since HTTP clients normalise ``..`` away."""

from __future__ import annotations

import io
import os
import socket
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from testlib.finished import Finished, add_finished_runs, write_run_folder

from backend.services import tokens
from backend.settings import Settings

SECRET = b"the server's own file, never to be served"
CHECKPOINT_BYTES = 4096


def serve_two_runs(database_url: str, make_settings, make_database, live_server) -> dict[str, Any]:
    """A live server with runs 1 and 2 finished and on disk, a secret file beside the runs folder, and
    symlinks in run 1's folder: one out to the secret, one to a file inside, one to a folder inside."""
    settings: Settings = make_settings(database_url)
    database = make_database(settings)
    ids = add_finished_runs(settings.database_url, [Finished("a", {}, [(50, 80), (60, 85)])] * 2)
    folders = [write_run_folder(settings.runs_dir, run_id, checkpoint_bytes=CHECKPOINT_BYTES) for run_id in ids]
    secret = settings.runs_dir.parent / "secret.txt"
    secret.write_bytes(SECRET)
    (folders[0] / "link-out").symlink_to(secret)
    (folders[0] / "link-in").symlink_to(folders[0] / "config.json")
    (folders[0] / "tb-link").symlink_to(folders[0] / "tb", target_is_directory=True)
    (folders[0] / "logs" / "outside").symlink_to(settings.runs_dir.parent, target_is_directory=True)
    return {"url": live_server(settings), "ids": ids, "folders": folders, "settings": settings, "database": database}


@pytest.fixture
def served(sqlite_url: str, make_settings, make_database, live_server) -> dict[str, Any]:
    """On SQLite: paths, ranges and the zip are the folder's, the same whichever database lists the runs."""
    return serve_two_runs(sqlite_url, make_settings, make_database, live_server)


@pytest.fixture
def served_on_each_database(database_url: str, make_settings, make_database, live_server) -> dict[str, Any]:
    return serve_two_runs(database_url, make_settings, make_database, live_server)


def raw_get(url: str, target: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """GET ``target`` exactly as written (no normalising of ``..``, no encoding): status and body."""
    address = urlsplit(url)
    lines = [f"GET {target} HTTP/1.1", f"Host: {address.netloc}", "Connection: close"]
    lines += [f"{key}: {value}" for key, value in (headers or {}).items()]
    with socket.create_connection((address.hostname, address.port), timeout=10) as connection:
        connection.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def test_the_list_names_each_file_with_its_size_and_kind(served_on_each_database):
    served = served_on_each_database
    run_id = served["ids"][0]
    answer = httpx.get(f"{served['url']}/api/v1/runs/{run_id}/files").json()
    kinds = {file["path"]: (file["kind"], file["size"]) for file in answer["data"]}
    folder: Path = served["folders"][0]
    assert kinds == {
        "ATTEMPT": ("config", 2),
        "checkpoints/best.pt": ("checkpoint", CHECKPOINT_BYTES),
        "checkpoints/last.pt": ("checkpoint", CHECKPOINT_BYTES),
        "config.json": ("config", (folder / "config.json").stat().st_size),
        "logs/attempt-1/rank0.log": ("log", 15),
        "metrics.jsonl": ("metrics", (folder / "metrics.jsonl").stat().st_size),
        "result.json": ("result", (folder / "result.json").stat().st_size),
        "tb/events.out.tfevents.1.host": ("tensorboard", 300),
    }  # the symlinks are not listed
    assert answer["count"] == 8
    assert answer["total_bytes"] == sum(size for _, size in kinds.values())


def test_a_queued_run_has_no_files_and_an_unknown_run_is_a_404(served_on_each_database):
    served = served_on_each_database
    run = httpx.get(f"{served['url']}/api/v1/runs/999/files")
    assert run.status_code == 404 and run.json() == {"detail": "run 999 not found"}
    for target in ("/api/v1/runs/999/files/config.json", "/api/v1/runs/999/files.zip"):
        assert httpx.get(served["url"] + target).status_code == 404
    os.rename(served["folders"][1], served["folders"][1].with_name("moved"))
    empty = httpx.get(f"{served['url']}/api/v1/runs/{served['ids'][1]}/files").json()
    assert empty == {"data": [], "count": 0, "total_bytes": 0}


def test_a_missing_file_is_a_404_that_names_it(served):
    answer = httpx.get(f"{served['url']}/api/v1/runs/1/files/checkpoints/epoch-7.pt")
    assert answer.status_code == 404
    assert answer.json() == {"detail": "run 1 has no file 'checkpoints/epoch-7.pt'"}


TRAVERSALS = [
    "../secret.txt",
    "../../secret.txt",
    "..%2Fsecret.txt",
    "..%2f..%2fsecret.txt",
    "%2e%2e/secret.txt",
    "%2E%2E%2Fsecret.txt",
    "%252e%252e%252fsecret.txt",  # double-encoded: the server decodes once, as it must
    "..%252fsecret.txt",
    "..\\secret.txt",
    "..%5Csecret.txt",
    "..%5c..%5csecret.txt",
    "%5C..%5Csecret.txt",
    "checkpoints/../../secret.txt",
    "checkpoints/%2e%2e/%2e%2e/secret.txt",
    "../2/config.json",  # another run's folder
    "./config.json",
    "/etc/passwd",
    "%2Fetc%2Fpasswd",
    "//etc/passwd",
    "{secret}",  # the secret's absolute path
    "{secret_encoded}",
    "config.json%00",
    "config.json%00.png",
    "%00../secret.txt",
    "link-out",  # a symlink out of the folder
    "link-in",  # a symlink to a file inside: refused all the same
    "tb-link/events.out.tfevents.1.host",  # through a symlinked folder
    "logs/outside/secret.txt",
    "%c0%ae%c0%ae/secret.txt",  # overlong UTF-8 dots
    "..;/secret.txt",
    "",
    "checkpoints",  # a folder is not a file
    "checkpoints/",
    "config.json/",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_no_path_leaves_the_run_folder(served, path: str):
    secret = str(served["settings"].runs_dir.parent / "secret.txt")
    target = path.format(secret=secret, secret_encoded=secret.replace("/", "%2F"))
    status, body = raw_get(served["url"], f"/api/v1/runs/{served['ids'][0]}/files/{target}")
    assert status == 404, (status, body[:300])
    assert SECRET not in body and b'"name": "run 2"' not in body and b"root:" not in body


def test_a_file_downloads_whole_with_its_validators(served):
    answer = httpx.get(f"{served['url']}/api/v1/runs/1/files/checkpoints/best.pt")
    assert answer.status_code == 200
    assert answer.content == (served["folders"][0] / "checkpoints" / "best.pt").read_bytes()
    assert answer.headers["accept-ranges"] == "bytes"
    assert answer.headers["content-length"] == str(CHECKPOINT_BYTES)
    assert answer.headers["content-type"] == "application/octet-stream"
    assert answer.headers["etag"].startswith('"') and answer.headers["last-modified"].endswith("GMT")
    assert answer.headers["content-disposition"] == "attachment; filename*=UTF-8''best.pt"


@pytest.mark.parametrize(
    ("asked", "first", "last"),
    [
        ("bytes=0-99", 0, 99),
        ("bytes=4000-", 4000, 4095),
        ("bytes=-10", 4086, 4095),
        ("bytes=100-999999", 100, 4095),
        ("bytes=4095-4095", 4095, 4095),
        ("bytes=-99999", 0, 4095),
    ],
)
def test_a_single_range_is_a_206(served, asked: str, first: int, last: int):
    whole = (served["folders"][0] / "checkpoints" / "best.pt").read_bytes()
    answer = httpx.get(f"{served['url']}/api/v1/runs/1/files/checkpoints/best.pt", headers={"Range": asked})
    assert answer.status_code == 206
    assert answer.headers["content-range"] == f"bytes {first}-{last}/{CHECKPOINT_BYTES}"
    assert answer.headers["content-length"] == str(last - first + 1)
    assert answer.content == whole[first : last + 1]


@pytest.mark.parametrize("asked", ["bytes=4096-", "bytes=99999-100000", "bytes=-0"])
def test_a_range_past_the_end_is_a_416_with_the_size(served, asked: str):
    answer = httpx.get(f"{served['url']}/api/v1/runs/1/files/checkpoints/best.pt", headers={"Range": asked})
    assert answer.status_code == 416
    assert answer.headers["content-range"] == f"bytes */{CHECKPOINT_BYTES}"
    assert "4096 bytes" in answer.json()["detail"]


@pytest.mark.parametrize("asked", ["bytes=0-1,5-6", "bytes=abc", "items=0-5", "bytes=9-3", "bytes=-", "bytes=0-1-2"])
def test_other_ranges_are_ignored_and_the_whole_file_sent(served, asked: str):
    answer = httpx.get(f"{served['url']}/api/v1/runs/1/files/checkpoints/best.pt", headers={"Range": asked})
    assert answer.status_code == 200 and len(answer.content) == CHECKPOINT_BYTES


def test_if_range_keeps_the_range_only_while_the_file_is_unchanged(served):
    url = f"{served['url']}/api/v1/runs/1/files/checkpoints/best.pt"
    validators = httpx.get(url).headers
    for validator in (validators["etag"], validators["last-modified"]):
        kept = httpx.get(url, headers={"Range": "bytes=10-19", "If-Range": validator})
        assert kept.status_code == 206 and len(kept.content) == 10
    changed = httpx.get(url, headers={"Range": "bytes=10-19", "If-Range": '"0-0"'})
    assert changed.status_code == 200 and len(changed.content) == CHECKPOINT_BYTES


def test_the_zip_holds_the_run_without_its_checkpoints(served):
    folder: Path = served["folders"][0]
    (folder / "tb" / "events.out.tfevents.2.host").write_bytes(os.urandom(3 * 1024 * 1024))
    with httpx.stream("GET", f"{served['url']}/api/v1/runs/1/files.zip") as answer:
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "application/zip"
        assert answer.headers["content-disposition"] == 'attachment; filename="run-1.zip"'
        assert "content-length" not in answer.headers  # streamed as it is made
        pieces = list(answer.iter_raw())
    assert len(pieces) > 1
    archive = zipfile.ZipFile(io.BytesIO(b"".join(pieces)))
    assert archive.testzip() is None
    expected = ["ATTEMPT", "config.json", "logs/attempt-1/rank0.log", "metrics.jsonl", "result.json"]
    expected += ["tb/events.out.tfevents.1.host", "tb/events.out.tfevents.2.host"]
    assert sorted(archive.namelist()) == sorted(f"run-1/{name}" for name in expected)
    for name in expected:
        assert archive.read(f"run-1/{name}") == (folder / name).read_bytes()


def test_files_need_the_token_as_everything_else(served):
    with served["database"].session(write=True) as session:
        secret = tokens.create_token(session=session, name="alice")
    for target in ("/files", "/files/config.json", "/files.zip"):
        url = f"{served['url']}/api/v1/runs/1{target}"
        assert httpx.get(url).status_code == 401
        assert httpx.get(url, headers={"Authorization": f"Bearer {secret}"}).status_code == 200
