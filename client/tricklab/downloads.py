"""Files fetched from a run's folder: written as they arrive, resumed with Range, checked by size.

A file arrives in ``NAME.part`` beside its place and is renamed when whole, so a file in its place is
always complete. A ``.part`` left by a broken download is resumed from its end (``Range: bytes=N-``)
while the file's time on the server is the one it started from (``If-Range``); otherwise the server
sends it whole again. The paths a server lists are checked before anything is written: none may leave
the folder given, whatever the server says.
"""

from __future__ import annotations

import os
from datetime import datetime
from email.utils import format_datetime
from pathlib import Path
from urllib.parse import quote

import httpx

from tricklab._transport import _Transport
from tricklab.errors import Incomplete, TricklabError
from tricklab.models import RunFile

CHUNK_BYTES = 256 * 1024


def local_path(out: Path, relative: str) -> Path:
    """Where ``relative`` (a path from the server's list) goes under ``out``; TricklabError if it would leave it."""
    parts = relative.split("/")
    if "\\" in relative or any(part in ("", "..", ".") for part in parts):
        raise TricklabError(f"the server listed {relative!r}, which is not a path inside the run's folder")
    return out.joinpath(*parts)


def download(transport: _Transport, run_id: int, file: RunFile | str, dest: Path, *, resume: bool = True) -> Path:
    """Fetch one file of run ``run_id`` to ``dest``; skipped when ``dest`` already has the listed size."""
    relative = file if isinstance(file, str) else file.path
    expected = None if isinstance(file, str) else file.size
    if expected is not None and dest.is_file() and dest.stat().st_size == expected:
        return dest
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if resume and part.is_file() else 0
    headers = {}
    if have:
        headers["Range"] = f"bytes={have}-"
        if not isinstance(file, str):
            headers["If-Range"] = _http_date(file.modified_at)
    with transport.stream(f"/runs/{run_id}/files/{quote(relative)}", headers=headers) as response:
        if response.status_code == 416:  # the part is as long as the file, or longer: start again
            response.read()
            return download(transport, run_id, file, dest, resume=False)
        total = _announced_size(response.headers, fallback=expected)
        mode = "ab" if response.status_code == 206 else "wb"
        with part.open(mode) as out:
            for chunk in response.iter_bytes(CHUNK_BYTES):
                out.write(chunk)
    size = part.stat().st_size
    if total is not None and size != total:
        raise Incomplete(f"run {run_id}'s {relative}: {size} of {total} bytes arrived; try again to resume")
    if expected is not None and size != expected:
        raise Incomplete(f"run {run_id}'s {relative} is {size} bytes, the list said {expected}: it changed meanwhile")
    os.replace(part, dest)
    return dest


def _announced_size(headers: httpx.Headers, *, fallback: int | None) -> int | None:
    """The whole file's size: Content-Range's total on a 206, Content-Length on a 200."""
    content_range = headers.get("content-range")
    if content_range and "/" in content_range:
        total = content_range.rsplit("/", 1)[1]
        return int(total) if total.isdigit() else fallback
    length = headers.get("content-length")
    return int(length) if length and length.isdigit() else fallback


def _http_date(moment: datetime) -> str:
    """The server's Last-Modified for a file of this time: whole seconds, GMT."""
    return format_datetime(moment.replace(microsecond=0), usegmt=True)


def download_zip(transport: _Transport, run_id: int, dest: Path) -> Path:
    """The run's folder without checkpoints as one zip at ``dest`` (streamed: no resume, no size to check)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    with transport.stream(f"/runs/{run_id}/files.zip") as response, part.open("wb") as out:
        for chunk in response.iter_bytes(CHUNK_BYTES):
            out.write(chunk)
    os.replace(part, dest)
    return dest
