"""The devices a worker reports, found through NVML without torch.

No GPU is here, so NVML's answers are those of ``FakeNVML``, an object shaped like ``pynvml``
passed in where the worker passes nothing: it answers as the real library does for three GPUs
(names as str, memory in bytes, NVMLError subclasses for what a device does not support). The
path without a driver runs against the real ``pynvml``.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from backend.placement import placement
from backend.worker import devices

MIB = 2**20
# As nvidia-smi lists them in MiB: 143771 and 40960.
GPUS = [("NVIDIA H200", 143771 * MIB), ("NVIDIA H200", 143771 * MIB), ("NVIDIA A100-SXM4-40GB", 40960 * MIB)]


class FakeNVML:
    """Three GPUs as NVML lists them: index order, name, total memory (None: not supported)."""

    class NVMLError(Exception):
        pass

    class NVMLError_NotSupported(NVMLError):
        pass

    def __init__(self, gpus: list[tuple[str, int | None]] | None = None, *, init_error: bool = False):
        self.gpus = gpus if gpus is not None else GPUS
        self.init_error = init_error
        self.open = False

    def nvmlInit(self) -> None:
        if self.init_error:
            raise self.NVMLError("Driver Not Loaded")
        self.open = True

    def nvmlShutdown(self) -> None:
        self.open = False

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        if not 0 <= index < len(self.gpus):
            raise self.NVMLError("Invalid Argument")
        return index

    def nvmlDeviceGetName(self, handle: int) -> str:
        return self.gpus[handle][0]

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> Any:
        memory = self.gpus[handle][1]
        if memory is None:
            raise self.NVMLError_NotSupported("Not Supported")
        return SimpleNamespace(total=memory, free=memory, used=0)


def test_gpus_follow_cuda_visible_devices():
    nvml = FakeNVML()
    listed = devices.visible_gpus({}, nvml)
    assert [gpu["name"] for gpu in listed] == ["NVIDIA H200", "NVIDIA H200", "NVIDIA A100-SXM4-40GB"]
    assert not nvml.open  # shut down after each listing
    visible = devices.visible_gpus({"CUDA_VISIBLE_DEVICES": "2,0"}, nvml)
    assert [(gpu["index"], gpu["physical"], gpu["name"], gpu["memory_gib"]) for gpu in visible] == [
        (0, "2", "NVIDIA A100-SXM4-40GB", 40.0),
        (1, "0", "NVIDIA H200", 140.4),
    ]
    assert devices.visible_gpus({"CUDA_VISIBLE_DEVICES": ""}, nvml) == []
    # As CUDA does, the list stops at the first entry that names no GPU.
    assert [gpu["physical"] for gpu in devices.visible_gpus({"CUDA_VISIBLE_DEVICES": "1,7,0"}, nvml)] == ["1"]


def test_memory_nvml_cannot_tell_is_left_unknown():
    (gpu,) = devices.visible_gpus({}, FakeNVML([("NVIDIA A100 MIG 1g.5gb", None)]))
    assert (gpu["name"], gpu["memory_gib"]) == ("NVIDIA A100 MIG 1g.5gb", None)


def test_without_a_driver_there_is_no_gpu():
    assert devices.visible_gpus({}, FakeNVML(init_error=True)) == []


def test_the_real_nvml_without_a_driver_finds_no_gpu_and_auto_is_the_cpu():
    pynvml = pytest.importorskip("pynvml")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        pass
    else:
        pynvml.nvmlShutdown()
        pytest.skip("this machine has an NVIDIA driver")
    assert devices.visible_gpus() == []
    (device,) = devices.detect_devices("auto")
    assert device["kind"] == "cpu" and device["name"].endswith(("CPU core", "CPU cores"))


def test_a_worker_trains_on_its_device_or_the_cpu():
    gpus = devices.visible_gpus({}, FakeNVML())
    assert devices.detect_devices("cuda:1", gpus)[0] == {
        "device": "cuda:1",
        "kind": "cuda",
        "name": "NVIDIA H200",
        "memory_gib": 140.4,
    }
    assert devices.detect_devices(None, gpus)[0]["device"] == "cuda:0"
    assert devices.detect_devices("cpu", gpus)[0]["kind"] == "cpu"
    assert devices.detect_devices("cuda:7", gpus) == [{"device": "cuda:7", "kind": "cuda", "name": None}]
    assert devices.detect_devices("auto", [])[0]["kind"] == "cpu"


def test_a_worker_reports_every_device_it_owns():
    environ = {"CUDA_VISIBLE_DEVICES": "2,0,1"}
    gpus = devices.visible_gpus(environ, FakeNVML())
    owned = devices.placement_devices(placement(gpus=[1, 2], environ=environ), gpus)
    assert [(device["device"], device["name"]) for device in owned] == [
        ("cuda:1", "NVIDIA H200"),
        ("cuda:2", "NVIDIA H200"),
    ]
    assert [device["kind"] for device in devices.placement_devices(placement(procs=2))] == ["cpu", "cpu"]
