"""A run's folder as files to take away: the list with sizes, one file opened safely, their total size.

Only regular files under the run's folder are served. A path from a URL is checked part by part
before anything is opened: no empty, ``.`` or ``..`` part, no backslash (a Windows separator to
some tools), no control character (a NUL ends the path in C); then each part is looked at with
``lstat`` from the folder down, and a symlink anywhere, even one that points inside, is refused, as
MLflow's path traversals (CVE-2023-1177, -2780, -6831, 2024-1560) teach. The file is opened with
O_NOFOLLOW and checked again after opening, so a symlink swapped in between is refused too. Every
refusal is the same 404 as a missing file, so that a probe learns nothing of the server's disk.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from backend.services.errors import NotFound
from backend.services.runs import get_run
from backend.settings import Settings

# What each file of a run folder holds, by its first part or its name (trainer.protocol.RunFolder).
_KINDS_BY_FOLDER = {"checkpoints": "checkpoint", "tb": "tensorboard", "logs": "log"}
_KINDS_BY_NAME = {
    "config.json": "config",
    "sweep.json": "config",
    "ATTEMPT": "config",
    "metrics.jsonl": "metrics",
    "result.json": "result",
}
MAX_PATH_CHARACTERS = 1024


@dataclass(frozen=True)
class RunFile:
    path: str  # relative to the run folder, "/"-separated
    size: int
    modified: float  # seconds since the epoch
    kind: str  # config, metrics, result, checkpoint, tensorboard, log or other


@dataclass(frozen=True)
class OpenedFile:
    """A file opened for reading: the caller owns ``fd`` and closes it."""

    fd: int
    path: str
    size: int
    modified: float
    modified_ns: int


def kind_of(path: str) -> str:
    first, _, rest = path.partition("/")
    if rest and first in _KINDS_BY_FOLDER:
        return _KINDS_BY_FOLDER[first]
    if not rest and first in _KINDS_BY_NAME:
        return _KINDS_BY_NAME[first]
    return "log" if path.endswith((".log", ".txt", ".err", ".out")) else "other"


def walk(folder: Path) -> Iterator[RunFile]:
    """The regular files under ``folder``, sorted by path; symlinks (to files or folders) are left out."""
    if not _is_real_folder(folder):
        return
    for root, folders, names in os.walk(folder, followlinks=False):
        folders.sort()
        base = Path(root)
        for name in sorted(names):
            try:
                info = (base / name).lstat()
            except OSError:  # removed while we looked (a checkpoint being replaced)
                continue
            if stat.S_ISREG(info.st_mode):
                relative = (base / name).relative_to(folder).as_posix()
                yield RunFile(path=relative, size=info.st_size, modified=info.st_mtime, kind=kind_of(relative))


def folder_size(folder: Path) -> int:
    """Bytes of the regular files under ``folder`` (their lengths, as the file list shows them)."""
    return sum(file.size for file in walk(folder))


def list_files(*, session: Session, settings: Settings, run_id: int) -> list[RunFile]:
    """Every regular file in the run's folder; NotFound for an unknown run (none yet for a queued one)."""
    get_run(session=session, run_id=run_id)
    return list(walk(settings.run_dir(run_id)))


def open_file(*, session: Session, settings: Settings, run_id: int, path: str) -> OpenedFile:
    """The run's file at ``path`` (relative, "/"-separated, as decoded from the URL), opened; NotFound
    naming the path for a missing file and for any path that is not a plain file inside the folder."""
    get_run(session=session, run_id=run_id)
    opened = open_in(settings.run_dir(run_id), path)
    if opened is None:
        raise NotFound(f"run {run_id} has no file {_shown(path)}")
    return opened


def open_in(folder: Path, path: str) -> OpenedFile | None:
    """The regular file at ``path`` under ``folder``, opened; None for anything else (see the module's note)."""
    parts = _safe_parts(path)
    if parts is None or not _is_real_folder(folder):
        return None
    current = folder
    for index, part in enumerate(parts):
        current = current / part
        try:
            info = current.lstat()
        except OSError:
            return None
        last = index == len(parts) - 1
        if not (stat.S_ISREG(info.st_mode) if last else stat.S_ISDIR(info.st_mode)):
            return None  # a symlink is neither, so it ends here too
    # The parts were checked; resolving again guards against a folder swapped for a symlink since.
    if not current.resolve().is_relative_to(folder.resolve()):
        return None
    try:
        fd = os.open(current, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        return None
    return OpenedFile(
        fd=fd, path="/".join(parts), size=info.st_size, modified=info.st_mtime, modified_ns=info.st_mtime_ns
    )


def _safe_parts(path: str) -> list[str] | None:
    """``path``'s parts, or None for any path that could leave the folder or name something odd."""
    if not path or len(path) > MAX_PATH_CHARACTERS or "\\" in path or path.startswith("/"):
        return None
    if any(ord(character) < 32 or ord(character) == 127 for character in path):
        return None
    parts = path.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return None
    return parts


def _is_real_folder(folder: Path) -> bool:
    try:
        return stat.S_ISDIR(folder.lstat().st_mode)
    except OSError:
        return False


def _shown(path: str) -> str:
    """The path as a message may quote it: control characters escaped, cut short."""
    text = path.encode("unicode_escape").decode("ascii") if not path.isprintable() else path
    return repr(text if len(text) <= 200 else text[:200] + "...")
