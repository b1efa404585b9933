"""Where a training pass's time goes, measured without slowing it down.

``PassTelemetry.timed(loader)`` hands the loop its batches and measures around them:

- ``DataWait``: the share of the pass spent waiting for the next batch, from the end of one step (or
  the pass's start) to the batch being ready. On CUDA the marks are events recorded on the current
  stream, read once when the pass ends: no sync per step, and what they time is the stream's own
  timeline, so a loader that keeps ahead of the GPU costs only the batch's own kernels and copies.
  On a CPU everything is synchronous and the marks are ``perf_counter`` readings.
- ``DeviceMonitor``: around the pass, the peak device memory (``torch.cuda.max_memory_allocated``,
  reset when the pass starts) and the GPU's mean utilization, which a daemon thread reads from NVML
  (``nvidia-ml-py``, imported on first use) ten times a second, off the training thread. Both are
  None on a CPU; the utilization is None too where NVML cannot start (no package, no driver).
- ``peak_rss_bytes``: the trainer process's peak resident memory so far (``getrusage``'s ``ru_maxrss``),
  on any device: what the worker quotes when the system kills the trainer, most likely for memory.
"""

from __future__ import annotations

import functools
import itertools
import resource
import sys
import threading
import time
from collections.abc import Callable, Generator, Iterable
from types import TracebackType
from typing import TypeVar

import torch

Batch = TypeVar("Batch")

NVML_INTERVAL_S = 0.1  # NVML itself averages utilization over 1/6 s to 1 s, depending on the GPU


class DataWait:
    """Marks of one pass: ``start()``, then per step ``batch_ready()`` and ``step_done()``; ``share()``
    reads them once, at the end."""

    def __init__(self, device: torch.device, *, clock: Callable[[], float] = time.perf_counter):
        self.cuda = device.type == "cuda"
        self.clock = clock  # the CPU marks' clock; tests pass a fake one
        self._events: list[torch.cuda.Event] = []
        self._times: list[float] = []

    def _mark(self) -> None:
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self._events.append(event)
        else:
            self._times.append(self.clock())

    def start(self) -> None:
        self._events.clear()
        self._times.clear()
        self._mark()

    def batch_ready(self) -> None:
        self._mark()

    def step_done(self) -> None:
        self._mark()

    def share(self) -> float | None:
        """Time waiting for batches over the pass's time, in [0, 1]; None for a pass without a step."""
        if self.cuda:
            if self._events:
                self._events[-1].synchronize()  # every earlier event on the stream is done then too
            spans = [first.elapsed_time(then) for first, then in itertools.pairwise(self._events)]
        else:
            spans = [then - first for first, then in itertools.pairwise(self._times)]
        # Waiting and stepping take turns: wait for batch 1, step 1, wait for batch 2, ...
        total = sum(spans)
        if len(spans) < 2 or total <= 0:
            return None
        return min(max(sum(spans[0::2]) / total, 0.0), 1.0)


class UtilizationSampler:
    """The mean of ``read()`` (a percentage, or None when unreadable) sampled every ``interval`` seconds
    on a daemon thread between ``__enter__`` and ``__exit__``; one reading at the end when the pass was
    shorter than the interval."""

    def __init__(self, read: Callable[[], float | None], *, interval: float = NVML_INTERVAL_S):
        self.read = read
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._readings: list[float] = []

    def _take(self) -> None:
        value = self.read()
        if value is not None:
            self._readings.append(value)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._take()

    def __enter__(self) -> UtilizationSampler:
        self._stop.clear()
        self._readings = []
        self._thread = threading.Thread(target=self._loop, name="tricklab-nvml", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if not self._readings:
            self._take()

    def mean(self) -> float | None:
        return sum(self._readings) / len(self._readings) if self._readings else None


@functools.cache
def nvml_reader(pci_bus_id: str) -> Callable[[], float | None] | None:
    """A reading of the utilization (%) of the GPU at ``pci_bus_id`` ("00000000:3B:00.0", nvidia-smi's
    form), or None when NVML cannot be used here. The bus id, not an index, names the GPU: NVML numbers
    GPUs by bus, CUDA by speed, and CUDA_VISIBLE_DEVICES renumbers them again."""
    try:
        import pynvml  # nvidia-ml-py
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByPciBusId(pci_bus_id)
        pynvml.nvmlDeviceGetUtilizationRates(handle)
    except pynvml.NVMLError:  # no driver, no such GPU, not supported (a MIG slice): no figure
        return None

    def read() -> float | None:
        try:
            return float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)
        except pynvml.NVMLError:  # a GPU that fell off the bus mid-run: that reading is left out
            return None

    return read


def pci_bus_id(device: torch.device) -> str:
    props = torch.cuda.get_device_properties(device)
    # Read by name: torch has these fields, its type stubs do not.
    domain, bus, slot = (getattr(props, name) for name in ("pci_domain_id", "pci_bus_id", "pci_device_id"))
    return f"{domain:08x}:{bus:02x}:{slot:02x}.0"


class DeviceMonitor:
    """Peak memory and mean GPU utilization over one pass on ``device``; on a CPU it measures nothing."""

    def __init__(self, device: torch.device):
        self.device = device
        self.cuda = device.type == "cuda"
        read = nvml_reader(pci_bus_id(device)) if self.cuda else None
        self._sampler = UtilizationSampler(read) if read is not None else None
        self.peak_memory_bytes: int | None = None
        self.gpu_utilization: float | None = None

    def __enter__(self) -> DeviceMonitor:
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(self.device)
        if self._sampler is not None:
            self._sampler.__enter__()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self._sampler is not None:
            self._sampler.__exit__(exc_type, exc, traceback)
            self.gpu_utilization = self._sampler.mean()
        if self.cuda:
            self.peak_memory_bytes = torch.cuda.max_memory_allocated(self.device)


def peak_rss_bytes() -> int:
    """This process's peak resident memory since it started (Linux counts ``ru_maxrss`` in KiB, macOS in bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


class PassTelemetry:
    """The figures of one training pass on ``device``, taken around the batches ``timed`` hands out."""

    def __init__(self, device: torch.device, *, clock: Callable[[], float] = time.perf_counter):
        self.data_wait = DataWait(device, clock=clock)
        self.monitor = DeviceMonitor(device)

    def timed(self, batches: Iterable[Batch]) -> Generator[Batch]:
        """``batches``, one at a time: the loop asks for the next one when its step is done."""
        with self.monitor:
            self.data_wait.start()
            for batch in batches:
                self.data_wait.batch_ready()
                try:
                    yield batch
                finally:  # also when the loop stops the pass after this step (``close()``)
                    self.data_wait.step_done()

    def figures(self) -> dict[str, float]:
        """The epoch row's timing fields that were measured: ``data_wait_share`` once a step ran,
        ``peak_memory_bytes`` on CUDA, ``gpu_utilization`` on CUDA where NVML answers, ``peak_rss_bytes``."""
        figures = {
            "data_wait_share": self.data_wait.share(),
            "peak_memory_bytes": self.monitor.peak_memory_bytes,
            "gpu_utilization": self.monitor.gpu_utilization,
            "peak_rss_bytes": peak_rss_bytes(),
        }
        return {name: value for name, value in figures.items() if value is not None}
