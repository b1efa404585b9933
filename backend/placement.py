"""Where a worker's runs train: ``--device``, ``--gpus`` or ``--procs`` as the trainer child sees them.

A worker owns a set of devices for its whole life and trains every run it claims on all of them:
one GPU (``--gpus 0``, or ``--device cuda:0``) runs the trainer alone, several (``--gpus 0,1,2,3``)
run it under one torchrun with a process per GPU, and ``--procs N`` does the same with N CPU
processes over gloo. GPUs are named by their index among the ones this worker may see (an inherited
CUDA_VISIBLE_DEVICES such as "4,5" makes ``--gpus 1`` GPU 5), in nvidia-smi's order
(CUDA_DEVICE_ORDER=PCI_BUS_ID unless the environment already chooses one). Several workers on one
host own disjoint sets: each GPU's lock file says which worker holds it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO


class PlacementError(ValueError):
    """Devices a worker cannot own; the message says why."""


@dataclass(frozen=True)
class Placement:
    """The config's ``runtime.device`` (None: as each run says), the child's environment, the number
    of processes training each run, and a label for the worker's name."""

    runtime_device: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    processes: int = 1
    label: str = ""
    gpus: tuple[str, ...] = ()  # the GPUs owned, as CUDA_VISIBLE_DEVICES names them to the host

    @property
    def distributed(self) -> bool:
        return self.processes > 1


def placement(
    *,
    device: str | None = None,
    gpus: Sequence[int] | None = None,
    procs: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> Placement:
    """The placement of ``--device``, ``--gpus`` or ``--procs`` (at most one of them is given)."""
    environ = os.environ if environ is None else environ
    if gpus is None and device is not None and device.startswith("cuda:"):
        gpus = [int(device.partition(":")[2])]
    if gpus is not None:
        return _gpu_placement(gpus, environ)
    if procs is not None and procs > 1:
        return Placement("cpu", {"CUDA_VISIBLE_DEVICES": ""}, processes=procs, label=f"cpu×{procs}")
    if device == "cpu" or procs == 1:
        return Placement("cpu", {"CUDA_VISIBLE_DEVICES": ""}, label="cpu")
    if device == "cuda":
        return Placement("cuda", label="cuda")
    return Placement()


def _gpu_placement(indexes: Sequence[int], environ: Mapping[str, str]) -> Placement:
    if not indexes:
        raise PlacementError("--gpus: name at least one GPU, e.g. --gpus 0 or --gpus 0,1")
    if len(set(indexes)) != len(indexes):
        raise PlacementError(f"--gpus {','.join(map(str, indexes))}: a GPU appears twice")
    inherited = environ.get("CUDA_VISIBLE_DEVICES")
    if inherited is None:
        names = [str(index) for index in indexes]
    else:
        visible = [name.strip() for name in inherited.split(",") if name.strip()]
        missing = [index for index in indexes if index >= len(visible)]
        if missing:
            raise PlacementError(
                f"--gpus {','.join(map(str, indexes))}: this worker sees {len(visible)} GPU(s) "
                f"(CUDA_VISIBLE_DEVICES={inherited!r}), so there is no GPU {missing[0]}; "
                "--gpus counts among the visible ones, from 0"
            )
        names = [visible[index] for index in indexes]
    env = {
        "CUDA_VISIBLE_DEVICES": ",".join(names),
        "CUDA_DEVICE_ORDER": environ.get("CUDA_DEVICE_ORDER", "PCI_BUS_ID"),
    }
    return Placement(
        "cuda", env, processes=len(indexes), label="cuda:" + ",".join(map(str, indexes)), gpus=tuple(names)
    )


def hold_gpus(placement: Placement, *, owner: str, lock_dir: Path | None = None) -> list[IO[str]]:
    """Take the lock of every GPU ``placement`` owns, for as long as the returned files stay open
    (the process's life: the kernel drops the locks when it ends, however it ends)."""
    lock_dir = lock_dir or Path(tempfile.gettempdir())
    held: list[IO[str]] = []
    try:
        for name in placement.gpus:
            path = lock_dir / f"tricklab-gpu-{name}.lock"
            handle: IO[str] = path.open("a+")
            held.append(handle)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                raise PlacementError(
                    f"GPU {name} is owned by worker {holder} on this host; give each worker its own --gpus"
                ) from None
            handle.seek(0)
            handle.truncate()
            handle.write(owner)
            handle.flush()
    except BaseException:
        for handle in held:
            with contextlib.suppress(OSError):
                handle.close()
        raise
    return held
