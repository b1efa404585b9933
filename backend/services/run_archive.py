"""A run's folder as one zip, without its checkpoints, produced as it is sent.

zipfile writes into a sink that hands each piece on as soon as it is written: the archive is never
whole in memory or on disk, and a file is read in chunks. The sink cannot seek, so zipfile writes
each entry's sizes after its data (data descriptors), which every unzip reads.
"""

from __future__ import annotations

import os
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy.orm import Session

from backend.services.run_files import RunFile, list_files, open_in
from backend.settings import Settings

CHUNK_BYTES = 256 * 1024
LEFT_OUT_KINDS = frozenset({"checkpoint"})  # the weights are the large part; `tricklab pull` fetches them


class _Sink:
    """A write-only file for zipfile whose writes are taken away by ``take``."""

    def __init__(self) -> None:
        self._pieces: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._pieces.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def take(self) -> bytes:
        data = b"".join(self._pieces)
        self._pieces.clear()
        return data


def archive_name(run_id: int) -> str:
    return f"run-{run_id}.zip"


def run_archive(*, session: Session, settings: Settings, run_id: int) -> Iterator[bytes]:
    """The zip's bytes, piece by piece, entries under ``run-ID/``; NotFound for an unknown run
    (raised here, before the first piece, so that the answer can still be a 404)."""
    files = list_files(session=session, settings=settings, run_id=run_id)
    kept = [file for file in files if file.kind not in LEFT_OUT_KINDS]
    return _pieces(settings.run_dir(run_id), kept, run_id)


def _pieces(folder: Path, files: list[RunFile], run_id: int) -> Iterator[bytes]:
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for file in files:
            opened = open_in(folder, file.path)
            if opened is None:  # gone (or replaced by a symlink) since the listing
                continue
            with os.fdopen(opened.fd, "rb") as source:
                stamp = time.gmtime(max(opened.modified, 315532800))[:6]  # zip dates start in 1980
                entry = zipfile.ZipInfo(f"run-{run_id}/{file.path}", date_time=stamp)
                entry.compress_type = zipfile.ZIP_DEFLATED
                entry.external_attr = 0o644 << 16
                entry.file_size = opened.size  # zipfile picks ZIP64 from it for a file past 2 GiB
                with archive.open(entry, "w") as target:
                    while chunk := source.read(CHUNK_BYTES):
                        target.write(chunk)
                        if piece := sink.take():
                            yield piece
            if piece := sink.take():
                yield piece
    yield sink.take()
