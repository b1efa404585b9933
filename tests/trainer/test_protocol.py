"""The trainer-worker protocol: torch-free, and its event check fits what the trainer really prints."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from testlib.models import TINY_ARCH

from trainer.config import RunConfig
from trainer.loop.reporters import JsonLinesReporter
from trainer.loop.run import train_run
from trainer.protocol import (
    EPOCH_FIELDS,
    RESULT_FIELDS,
    START_FIELDS,
    AttemptFence,
    EventType,
    MalformedEvent,
    RunFolder,
    Superseded,
    parse_event,
    write_attempt,
)

DISTILLATION_FIELDS = {"train_task_loss", "train_kd_loss"}
CUDA_FIELDS = {"peak_memory_bytes", "gpu_utilization"}  # measured on a GPU only


def test_protocol_imports_no_torch():
    # The worker and the web process import it; they must start without loading torch.
    code = "import sys, trainer.protocol; assert 'torch' not in sys.modules, sorted(sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_the_trainers_own_events_pass_the_check_with_the_protocols_fields(demo_dataset, tmp_path):
    folder = RunFolder(tmp_path / "run")
    folder.path.mkdir()
    RunConfig.from_dict(
        {
            "epochs": 2,
            "batch_size": 16,
            "data": {"root": str(demo_dataset), "image_size": 32, "num_workers": 0},
            "model": {"arch": TINY_ARCH, "pretrained": False},
            "runtime": {"device": "cpu", "step_log_every": 1},
        }
    ).save(folder.config)
    stream = io.StringIO()
    train_run(folder.path, reporter=JsonLinesReporter(stream))

    parsed = [parse_event(line) for line in stream.getvalue().splitlines()]
    assert None not in parsed
    events = [event for event in parsed if event is not None]
    fields = {kind: [set(event) - {"type"} for event in events if event["type"] == kind] for kind in EventType}
    assert fields[EventType.start] == [set(START_FIELDS)]
    assert fields[EventType.epoch] == [{"epoch", *EPOCH_FIELDS} - DISTILLATION_FIELDS - CUDA_FIELDS] * 2
    assert fields[EventType.step] and all(step == {"epoch", "step", "loss", "lr"} for step in fields[EventType.step])
    assert fields[EventType.result] == [set(RESULT_FIELDS)]


@pytest.mark.parametrize(
    "line",
    [
        '{"type": "epoch", "epoch": 0}',
        '{"type": "epoch", "epoch": "one"}',
        '{"type": "epoch"}',
        '{"type": "step", "epoch": 1, "step": -1}',
        '{"type": "step", "epoch": 1, "step": true}',
        '{"type": "step", "step": 3}',
        '{"type": "start", "start_epoch": 1.5}',
        '{"type": "progress"}',
        '{"type": null}',
    ],
)
def test_events_without_the_fields_the_worker_needs_are_refused(line):
    with pytest.raises(MalformedEvent):
        parse_event(line)


@pytest.mark.parametrize("line", ["epoch 1/3", "", "[1, 2]", "3", '{"epoch": 1}', '"start"'])
def test_lines_that_are_not_events_are_no_event(line):
    assert parse_event(line) is None


def test_non_finite_numbers_arrive_as_none():
    event = parse_event('{"type": "epoch", "epoch": 2, "train_loss": NaN, "lr": Infinity, "valid_loss": 0.5}\n')
    assert event == {"type": "epoch", "epoch": 2, "train_loss": None, "lr": None, "valid_loss": 0.5}
    assert parse_event('{"type": "start"}') == {"type": "start"}  # an older trainer's start: epoch 0


def test_the_fence_lets_only_the_attempt_in_the_folder_write(tmp_path):
    folder = RunFolder(tmp_path)
    write_attempt(folder, 2)
    AttemptFence(folder, 2).check()
    AttemptFence(folder, None).check()  # by hand: never fenced
    with pytest.raises(Superseded, match="attempt 1 superseded by attempt 2"):
        AttemptFence(folder, 1).check()
    assert [path.name for path in Path(tmp_path).iterdir()] == ["ATTEMPT"]
    with pytest.raises(Superseded, match=r"by attempt \?"):
        AttemptFence(RunFolder(tmp_path / "elsewhere"), 1).check()
