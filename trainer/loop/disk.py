"""A write that failed for want of space (a checkpoint, the metrics file), and a data root gone mid-run,
named as such: faults of the machine, not of the run, which the worker hands back to the queue instead
of failing it.

torch's zip writer does not say so itself: a full disk reads ``[enforce fail at inline_container.cc:...]
unexpected pos`` (or ``... failed writing file``). What was half written is already gone:
``trainer.files`` removes its temporary file when a write fails.
"""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

from trainer.loop.setup import RunError
from trainer.protocol import FAULT_DATA_ROOT, FAULT_NO_SPACE


class NoSpaceLeft(RunError):
    fault = FAULT_NO_SPACE  # the worker requeues the run and pauses


class DataRootUnavailable(RunError):
    fault = FAULT_DATA_ROOT  # the worker requeues the run and pauses until the root is back


def data_root_gone(root: str | Path, error: BaseException) -> DataRootUnavailable:
    return DataRootUnavailable(
        f"the data root {root} cannot be read any more (unmounted or removed?): "
        f"{str(error).strip().splitlines()[0][:200]}; the run goes back to the queue until it is back"
    )


def is_no_space(error: BaseException) -> bool:
    if isinstance(error, OSError):
        return error.errno in (errno.ENOSPC, errno.EDQUOT)
    text = str(error)
    return (
        isinstance(error, RuntimeError)
        and "inline_container.cc" in text
        and ("unexpected pos" in text or "failed writing" in text)
    )


def no_space_left(run_dir: Path, error: BaseException) -> NoSpaceLeft:
    folder = run_dir.parent
    try:
        free = f"{shutil.disk_usage(folder).free / 2**20:.1f} MB free"
    except OSError:
        free = "its free space unknown"
    return NoSpaceLeft(
        f"no space left on the device of the runs folder {folder} ({free}) while writing {run_dir.name}/: "
        f"{str(error).strip().splitlines()[0][:200]}; free space there (`tricklab gc` removes the checkpoints "
        "of old finished runs) and the run trains on from its last checkpoint"
    )
