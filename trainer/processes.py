"""Processes that end with the one that started them (Linux PR_SET_PDEATHSIG). Torch-free: the
worker uses it for its trainer child, and each rank under torchrun for itself."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1


def _set_parent_death_signal(sig: signal.Signals) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)


def die_with_parent(parent_pid: int, sig: signal.Signals = signal.SIGKILL) -> Callable[[], None]:
    """preexec_fn: the child gets ``sig`` when the thread that started it dies, so start children
    from the main thread."""

    def setup() -> None:
        _set_parent_death_signal(sig)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)

    return setup


# Set by ``python -m trainer launch`` for its ranks: the pid their parent must have.
LAUNCHER_PID_ENV = "TRICKLAB_LAUNCHER_PID"


def die_with_launcher() -> None:
    """For a running torchrun rank: SIGKILL when torchrun, its parent, dies.

    torchrun starts each rank in a session of its own, so a SIGKILL of torchrun (or of the worker
    above it) would otherwise leave the ranks training on, unreported. Under a plain torchrun the
    launcher's pid is not known, and the parent of the moment stands in for it.
    """
    if not sys.platform.startswith("linux"):
        return
    launcher = int(os.environ.get(LAUNCHER_PID_ENV) or os.getppid())
    _set_parent_death_signal(signal.SIGKILL)
    if os.getppid() != launcher:  # torchrun died before prctl took effect
        os._exit(1)
