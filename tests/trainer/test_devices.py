"""runtime.device against what the machine has: loud errors, the CPU fallback said, the GPU check."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from testlib.models import TINY_ARCH
from testlib.processes import REPO

from trainer.config import RunConfig
from trainer.loop.reporters import BaseReporter
from trainer.loop.run import train_run
from trainer.parallel.devices import CudaState, DeviceError, check_cuda, choose_device, cuda_state
from trainer.parallel.distributed import World

NO_DRIVER = CudaState("Found no NVIDIA driver on your system (CUDA_VISIBLE_DEVICES=unset)", 0)
TWO_GPUS = CudaState(None, 2)
needs_no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="shows what a machine without CUDA does")


def test_auto_falls_back_to_the_cpu_and_says_why():
    choice = choose_device("auto", World(), NO_DRIVER)
    assert choice.device == torch.device("cpu")
    assert choice.fallback == f"runtime.device is auto and CUDA cannot be used: {NO_DRIVER.problem}"
    assert choose_device("auto", World(), TWO_GPUS).device == torch.device("cuda")
    assert choose_device("auto", World(), TWO_GPUS).fallback is None
    assert choose_device("cpu", World(), NO_DRIVER).fallback is None


@pytest.mark.parametrize(
    ("name", "world", "cuda", "message"),
    [
        ("cuda", World(), NO_DRIVER, "runtime.device is 'cuda' but CUDA cannot be used: Found no NVIDIA driver"),
        ("cuda:0", World(), NO_DRIVER, "CUDA cannot be used: Found no NVIDIA driver"),
        ("cuda:2", World(), TWO_GPUS, r"sees 2 GPU\(s\) .*so use cuda:0 to cuda:1"),
        ("cuda:1", World(rank=1, size=2, local_rank=1), TWO_GPUS, "one GPU, but 2 processes train"),
        ("cuda", World(rank=2, size=3, local_rank=2), TWO_GPUS, "local rank 2 has no GPU of its own: 2 are visible"),
    ],
)
def test_a_device_the_process_cannot_use_fails_at_once_saying_why(name, world, cuda, message):
    with pytest.raises(DeviceError, match=message):
        choose_device(name, world, cuda)


def test_a_visible_gpu_and_a_ranks_own_gpu_are_chosen():
    assert choose_device("cuda:1", World(), TWO_GPUS).device == torch.device("cuda", 1)
    assert choose_device("cuda", World(rank=1, size=2, local_rank=1), TWO_GPUS).device == torch.device("cuda", 1)


@needs_no_cuda
def test_this_machine_says_why_cuda_cannot_be_used():
    state = cuda_state()
    assert state.count == 0 and state.problem
    assert f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}" in state.problem
    with pytest.raises(DeviceError, match="CUDA cannot be used"):
        check_cuda(1)


@needs_no_cuda
def test_the_trainers_cuda_check_fails_with_pytorchs_reason():
    done = subprocess.run(
        [sys.executable, "-m", "trainer", "run", "--check-cuda", "1"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,  # the exit code is the answer
    )
    assert done.returncode == 1
    assert done.stderr.startswith("error: CUDA cannot be used: ")
    problem = cuda_state().problem
    assert problem and problem in done.stderr
    assert "Traceback" not in done.stderr


@needs_no_cuda
def test_a_run_that_falls_back_to_the_cpu_says_so_in_its_start_event(demo_dataset, tmp_path):
    class Starts(BaseReporter):
        def __init__(self):
            self.starts = []

        def start(self, info):
            self.starts.append(info)

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    RunConfig.from_dict(
        {
            "epochs": 1,
            "batch_size": 16,
            "data": {"root": str(demo_dataset), "image_size": 32, "num_workers": 0},
            "model": {"arch": TINY_ARCH, "pretrained": False},
        }
    ).save(run_dir / "config.json")
    reporter = Starts()
    train_run(run_dir, reporter=reporter)
    (start,) = reporter.starts
    assert (start["device"], start["devices"]) == ("cpu", "1 × CPU")
    assert start["fallback"] == f"runtime.device is auto and CUDA cannot be used: {cuda_state().problem}"
