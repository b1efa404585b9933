"""Where a training pass's time goes: the data-wait share, the NVML sampler, what a CPU leaves out."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from trainer.loop.telemetry import DataWait, PassTelemetry, UtilizationSampler, nvml_reader

CPU = torch.device("cpu")


class FakeClock:
    """A clock that moves only when told: the shares come out exact, whatever the machine's load."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def slow_batches(count: int, *, clock: FakeClock, load_s: float):
    for index in range(count):
        clock.advance(load_s)
        yield index


def test_data_wait_is_the_share_of_the_pass_spent_waiting_for_batches():
    clock = FakeClock()
    telemetry = PassTelemetry(CPU, clock=clock)
    for _ in telemetry.timed(slow_batches(6, clock=clock, load_s=0.03)):
        clock.advance(0.01)  # the step
    assert telemetry.figures()["data_wait_share"] == pytest.approx(0.75)  # 30 ms of every 40 ms


def test_a_loader_that_keeps_up_costs_no_share():
    clock = FakeClock()
    telemetry = PassTelemetry(CPU, clock=clock)
    for _ in telemetry.timed(range(5)):
        clock.advance(0.02)
    assert telemetry.figures()["data_wait_share"] == 0


def test_the_first_batch_counts_from_the_start_of_the_pass():
    clock = FakeClock()
    wait = DataWait(CPU, clock=clock)
    wait.start()
    clock.advance(0.05)  # a loader's workers starting
    wait.batch_ready()
    clock.advance(0.05)
    wait.step_done()
    assert wait.share() == pytest.approx(0.5)


def test_the_real_clock_is_the_default():
    telemetry = PassTelemetry(CPU)
    for _ in telemetry.timed(range(3)):
        pass
    assert 0 <= telemetry.figures()["data_wait_share"] <= 1


def test_a_pass_without_a_step_has_no_timing_and_a_cpu_no_device_figures():
    telemetry = PassTelemetry(CPU)
    assert list(telemetry.timed([])) == []
    assert telemetry.figures().keys() == {"peak_rss_bytes"}
    for _ in telemetry.timed(range(2)):
        pass
    assert telemetry.figures().keys() == {"data_wait_share", "peak_rss_bytes"}


def test_the_peak_resident_memory_counts_what_the_process_holds():
    before = int(PassTelemetry(CPU).figures()["peak_rss_bytes"])
    held = b"\x01" * (before + 64 * 2**20)  # past the peak so far, written: resident
    after = PassTelemetry(CPU).figures()["peak_rss_bytes"]
    assert after >= len(held) > before


def test_the_sampler_reads_off_the_calling_thread_and_averages():
    caller = threading.get_ident()
    readers: set[int] = set()
    values = iter([10.0, None, 30.0, 50.0])
    read_all = threading.Event()

    def read() -> float | None:
        readers.add(threading.get_ident())
        value = next(values, 50.0)
        if value == 50.0:
            read_all.set()
        return value

    with UtilizationSampler(read, interval=0.01) as sampler:
        assert read_all.wait(timeout=30)
    assert readers and caller not in readers
    mean = sampler.mean()
    assert mean is not None and 10 < mean <= 50  # the unreadable sample is left out, not counted as 0


def test_a_pass_shorter_than_the_interval_still_gets_one_reading():
    with UtilizationSampler(lambda: 42.0, interval=60) as sampler:
        pass
    assert sampler.mean() == 42.0


def test_no_nvml_gives_no_reader():
    # Bus 00:00.0 is the host bridge, never a GPU; on a machine without a driver NVML does not start.
    assert nvml_reader("00000000:00:00.0") is None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_cuda_events_time_the_stream_and_the_monitor_reads_the_peak():
    device = torch.device("cuda")
    weights = torch.randn(2048, 2048, device=device)

    def host_loader(count: int):
        for _ in range(count):
            time.sleep(0.02)  # a slow CPU pipeline: the GPU idles while it runs
            yield torch.randn(2048, 2048).to(device, non_blocking=True)

    def run(batches) -> dict[str, float]:
        telemetry = PassTelemetry(device)
        for batch in telemetry.timed(batches):
            product = batch
            for _ in range(4):
                product = product @ weights
        return telemetry.figures()

    resident = [torch.randn(2048, 2048, device=device) for _ in range(8)]
    assert run(host_loader(8))["data_wait_share"] > 0.5
    fast = run(resident)
    assert fast["data_wait_share"] < 0.1
    assert fast["peak_memory_bytes"] >= 9 * 2048 * 2048 * 4
