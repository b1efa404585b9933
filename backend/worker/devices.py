"""What a worker trains on, found without torch (the worker process never loads it): the GPUs NVML
lists, as CUDA_VISIBLE_DEVICES lets this process see them, or the CPU; and the probe that asks the
trainer whether it can use the GPUs it was given."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from typing import Any

from backend.placement import Placement, PlacementError
from trainer.protocol import cuda_check_command

CUDA_CHECK_SECONDS = 120  # importing torch and initialising CUDA on a cold machine


def visible_gpus(environ: Mapping[str, str] = os.environ, nvml: Any = None) -> list[dict[str, Any]]:
    """The GPUs this process may use, as (index among the visible ones, name, memory), from NVML and
    CUDA_VISIBLE_DEVICES; none when there is no NVIDIA driver. ``nvml``: pynvml, or an object shaped
    like it."""
    gpus = _physical_gpus(nvml)
    chosen = environ.get("CUDA_VISIBLE_DEVICES")
    order = list(gpus) if chosen is None else [part.strip() for part in chosen.split(",") if part.strip()]
    # CUDA stops at the first entry it cannot use; so does this list.
    visible = []
    for physical in order:
        if physical not in gpus:
            break
        visible.append({"physical": physical, **gpus[physical]})
    return [{"index": index, **gpu} for index, gpu in enumerate(visible)]


def _physical_gpus(nvml: Any) -> dict[str, dict[str, Any]]:
    """Every GPU on the host by NVML index (nvidia-smi's, the PCI bus order), as its name and memory."""
    if nvml is None:
        import pynvml  # nvidia-ml-py

        nvml = pynvml
    try:
        nvml.nvmlInit()
    except nvml.NVMLError:  # no driver, or no libnvidia-ml: no GPU
        return {}
    gpus: dict[str, dict[str, Any]] = {}
    try:
        for index in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            gpus[str(index)] = {"name": nvml.nvmlDeviceGetName(handle), "memory_gib": _memory_gib(nvml, handle)}
    except nvml.NVMLError:  # a GPU it cannot describe (lost, or needing a reset) ends the list
        pass
    finally:
        nvml.nvmlShutdown()
    return gpus


def _memory_gib(nvml: Any, handle: Any) -> float | None:
    try:
        return round(nvml.nvmlDeviceGetMemoryInfo(handle).total / 2**30, 1)
    except nvml.NVMLError:  # not supported (nvidia-smi says [N/A])
        return None


def _cpu() -> dict[str, Any]:
    cores = os.cpu_count() or 1
    return {"device": "cpu", "kind": "cpu", "name": f"{cores} CPU core{'s' if cores > 1 else ''}", "memory_gib": None}


def _gpu(found: dict[str, Any]) -> dict[str, Any]:
    return {
        "device": f"cuda:{found['index']}",
        "kind": "cuda",
        "name": found["name"],
        "memory_gib": found["memory_gib"],
    }


def detect_devices(device: str | None, gpus: Sequence[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """What a worker started with ``--device`` (None: auto) trains on, as DevicePublic dicts.

    ``auto`` and ``cuda`` train on the first visible GPU, or the CPU without one; ``cuda:N`` on GPU N.
    """
    if device == "cpu":
        return [_cpu()]
    gpus = visible_gpus() if gpus is None else gpus
    wanted = int(device.partition(":")[2]) if device and ":" in device else 0
    found = next((gpu for gpu in gpus if gpu["index"] == wanted), None)
    if found is None:
        return [_cpu()] if device in (None, "auto") else [{"device": device, "kind": "cuda", "name": None}]
    return [_gpu(found)]


def placement_devices(placement: Placement, gpus: Sequence[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """What a worker trains each run on: the GPUs it owns (``--gpus``), its CPU processes (``--procs``),
    or, for ``--device`` or none, as ``detect_devices`` finds it."""
    if placement.runtime_device == "cpu":
        return [_cpu() for _ in range(placement.processes)]
    if not placement.gpus:
        return detect_devices(placement.runtime_device, gpus)
    gpus = visible_gpus() if gpus is None else gpus
    owned = [gpu for gpu in gpus if gpu.get("physical") in placement.gpus]
    return [_gpu(gpu) for gpu in owned] or [
        {"device": f"cuda:{index}", "kind": "cuda", "name": None} for index in range(len(placement.gpus))
    ]


def check_cuda(trainer_command: Sequence[str], placement: Placement) -> str:
    """The GPUs the trainer sees with ``placement``'s environment, as it names them; PlacementError,
    with the trainer's reason, when it cannot use them: a GPU worker that trained on the CPU, or failed
    every run it claimed, would hide that."""
    command = cuda_check_command(trainer_command, placement.processes)
    where = f"this worker trains on {placement.label}"
    try:
        done = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            env={**os.environ, **placement.env},
            text=True,
            timeout=CUDA_CHECK_SECONDS,
            check=False,  # the exit code is the answer
        )
    except OSError as exc:
        raise PlacementError(f"{where}, but the trainer {command[0]!r} could not be started: {exc}") from None
    except subprocess.TimeoutExpired:
        raise PlacementError(f"{where}, but `{' '.join(command)}` did not answer in {CUDA_CHECK_SECONDS} s") from None
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        reason = lines[-1].removeprefix("error: ") if lines else f"`{' '.join(command)}` exited {done.returncode}"
        raise PlacementError(f"{where}, but the trainer cannot use it: {reason}")
    return done.stdout.strip()
