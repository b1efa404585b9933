"""The GPU memory a training step takes, estimated before launch from the measured footprint table, set
against the GPUs the living workers report: a warning that says what to change when none holds it."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from backend.models import utcnow
from backend.schemas.workers import DevicePublic, WorkerPublic
from backend.services.gpu_memory import GIB, check_memory, largest_batch, step_peak
from trainer.config import RunConfig


def config(arch: str = "resnet50", *, batch: int = 256, size: int = 224, amp: bool = False, **more) -> RunConfig:
    values = {"model": {"arch": arch, "pretrained": False}, "batch_size": batch, "data": {"image_size": size}}
    return RunConfig.from_dict({**values, "runtime": {"amp": amp}, **more})


def peak(run: RunConfig, **given) -> int:
    found = step_peak(run, **given)
    assert found is not None
    return found


def worker(*memory_gib: float | None, alive: bool = True, kind: str = "cuda") -> WorkerPublic:
    seen = utcnow() if alive else utcnow() - timedelta(hours=1)
    devices = [
        DevicePublic(device=f"{kind}:{index}", kind=kind, name="NVIDIA A10", memory_gib=memory)
        for index, memory in enumerate(memory_gib)
    ]
    return WorkerPublic(name="host:1", devices=devices, started_at=datetime(2026, 1, 1), last_seen_at=seen, alive=alive)


def test_a_step_no_gpu_holds_is_warned_of_with_the_batch_that_fits_and_amp():
    run = config()
    check = check_memory(run, workers=[worker(15.8), worker(23.6)])
    assert check is not None and (check.gib, check.gpus, check.largest_gpu_gib) == (25.6, 1, 23.6)
    assert check.warning == (
        "resnet50 at batch_size 256, 224 px, fp32 is estimated to need about 25.6 GiB of GPU memory for a training "
        "step; the largest GPU of the live workers has 23.6 GiB: lower batch_size to 234 or less, or turn "
        "runtime.amp on (about 13.8 GiB)"
    )
    assert (
        check.basis.startswith("approximate: ") and "measured for resnet50 on the CPU, scaled to 224 px" in check.basis
    )
    # What it suggests fits, and one image more does not.
    fits = largest_batch(run, gpus=1, memory=23.6 * GIB)
    assert fits == 234
    assert peak(config(batch=fits)) <= 23.6 * GIB < peak(config(batch=fits + 1))
    fitting = check_memory(config(amp=True), workers=[worker(23.6)])
    assert fitting is not None and fitting.warning is None


def test_a_worker_with_several_gpus_splits_the_batch_over_them():
    check = check_memory(config(), workers=[worker(23.6, 23.6, 23.6, 23.6)])
    assert check is not None and (check.gpus, check.warning) == (4, None) and check.gib < 10
    large = check_memory(config("resnet152", batch=128, size=448), workers=[worker(23.6, 23.6, 23.6, 23.6)])
    assert large is not None and large.warning is not None
    assert large.warning.startswith(
        "resnet152 at batch_size 128 (32 per GPU over 4 GPUs), 448 px, fp32 is estimated to need about 26.3 GiB of "
        "GPU memory per GPU for a training step; the live workers' GPUs have 23.6 GiB: lower batch_size to 112"
    )


def test_the_step_grows_with_the_batch_the_pixels_and_a_teacher_and_amp_halves_the_activations():
    base = peak(config(batch=64))
    per_image = (peak(config(batch=128)) - base) / 64
    # Twice the side, four times the pixels: three more images' worth of activations each.
    assert peak(config(batch=64, size=448)) - base == pytest.approx(64 * 3 * per_image, abs=2)
    amp_per_image = (peak(config(batch=128, amp=True)) - peak(config(batch=64, amp=True))) / 64
    assert 0.45 < amp_per_image / per_image < 0.55
    assert peak(config(batch=64), teacher_arch="resnet152") > base + 4 * 60e6


def test_no_warning_without_a_living_gpu_worker_of_known_memory_and_no_figure_for_an_unmeasured_arch():
    run = config("resnet152", batch=512)
    for fleet in ([], [worker(23.6, alive=False)], [worker(None)], [worker(None, kind="cpu")]):
        check = check_memory(run, workers=fleet)
        assert check is not None and check.warning is None and check.largest_gpu_gib is None, fleet
    assert check_memory(config("vit_small_patch16_224"), workers=[worker(23.6)]) is None
    assert check_memory(config(), workers=[worker(23.6)], teacher_arch="vit_small_patch16_224") is None
