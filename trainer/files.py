"""Files written whole or not at all, for readers in other processes and for a crash mid-write.

The bytes go to a temporary file beside the target, which then replaces it in one rename: a reader
sees the old file or the new one, never a part. Torch-free, so the worker writes through it too.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def write_atomic_with(path: Path, write: Callable[[BinaryIO], object], *, fsync: bool = False) -> None:
    """Replace ``path`` by what ``write`` writes to the binary handle it is given.

    ``fsync``: the bytes reach the disk before the rename, so a power loss cannot leave an empty file
    under the name (worth it for a checkpoint, the one copy of hours of training).
    """
    # The process id keeps two writers (a superseded trainer and its successor) off each other's file.
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as handle:
            write(handle)
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomic(path: Path, data: str | bytes, *, fsync: bool = False) -> None:
    """Replace ``path`` by ``data`` (text is written as UTF-8)."""
    payload = data.encode() if isinstance(data, str) else data
    write_atomic_with(path, lambda handle: handle.write(payload), fsync=fsync)
