"""The warning signal (Slurm's SIGUSR2 before a time limit or a preemption) in the middle of an epoch: the
trainer checkpoints at the step it stops at, and the next start continues from that step exactly."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import socket

import pytest
import torch
import torch.multiprocessing as mp
from test_distributed import LOSS_RTOL
from test_run import Recorder, prepare, read_jsonl, tiny_config, without_timing

from trainer.loop import warning
from trainer.loop.checkpoint import load_checkpoint
from trainer.loop.engine import EpochSoFar, merge_figures
from trainer.loop.run import train_run
from trainer.loop.setup import RunError
from trainer.protocol import WARNING_SIGNAL, Warned

STEPS_PER_EPOCH = 4  # 32 training images of the demo dataset in batches of 8


class WarnAtStep(Recorder):
    """Sends this process the real warning signal while the loop is at global step ``step``."""

    def __init__(self, step: int):
        super().__init__()
        self.warn_step = step

    def batch(self, step: int) -> None:
        if step == self.warn_step:
            os.kill(os.getpid(), signal.Signals[WARNING_SIGNAL])


@pytest.fixture
def warning_handler():
    previous = signal.getsignal(signal.Signals[WARNING_SIGNAL])
    warning.listen()
    yield
    signal.signal(signal.Signals[WARNING_SIGNAL], previous)


# Stopped after the second batch of epoch 2, and after its last one (the next start only ends the epoch).
@pytest.mark.parametrize(("pipeline", "batch"), [("fast", 2), ("reference", STEPS_PER_EPOCH)])
def test_warned_mid_epoch_resumes_at_the_next_step_as_if_never_stopped(
    demo_dataset, tmp_path, warning_handler, pipeline, batch
):
    config = tiny_config(
        demo_dataset,
        epochs=3,
        batch_size=8,
        **{"tricks.mixup_alpha": 0.2, "schedule.name": "onecycle", "data.pipeline": pipeline},
    )
    straight = prepare(tmp_path / "straight", config)
    reference = Recorder()
    train_run(straight, reporter=reference)
    assert reference.of("start")[0]["steps_per_epoch"] == STEPS_PER_EPOCH

    resumed = prepare(tmp_path / "resumed", config)
    step = STEPS_PER_EPOCH + batch
    warned = WarnAtStep(step - 1)  # while the loop is at that batch of epoch 2 (steps count from 0)
    with pytest.raises(Warned, match=rf"after batch {batch} of epoch 2 \(step {step}\)"):
        train_run(resumed, reporter=warned)
    # Epoch 2's row waits for the epoch's end; the checkpoint says it was written mid-epoch.
    assert [row["epoch"] for row in read_jsonl(resumed / "metrics.jsonl")] == [1]
    state = load_checkpoint(resumed / "checkpoints" / "last.pt")
    assert (state["epoch"], state["step"], state["mid_epoch"]["epoch"], state["mid_epoch"]["batches"]) == (
        1,
        step,
        2,
        batch,
    )
    assert load_checkpoint(resumed / "checkpoints" / "best.pt")["epoch"] == 1
    seconds_before = state["mid_epoch"]["seconds"]

    # A changed config is refused from a mid-epoch checkpoint too.
    changed = tmp_path / "changed"
    shutil.copytree(resumed, changed)
    tiny_config(demo_dataset, epochs=3, batch_size=8, **{"optim.lr": 0.01}).save(changed / "config.json")
    with pytest.raises(RunError, match="different configuration"):
        train_run(changed, reporter=Recorder())

    warning.listen()  # the next job's trainer: no signal yet
    recorder = Recorder()
    train_run(resumed, reporter=recorder)

    assert recorder.of("start")[0]["start_epoch"] == 1
    assert recorder.of("start")[0]["start_step"] == step  # the run says where it resumed
    rows = read_jsonl(resumed / "metrics.jsonl")
    assert without_timing(rows) == without_timing(read_jsonl(straight / "metrics.jsonl"))
    assert rows[1]["seconds"] > seconds_before  # the epoch's time includes the part before the stop
    # Each logged step once over both starts, as the straight run logged them.
    assert warned.of("step") + recorder.of("step") == reference.of("step")
    last = load_checkpoint(resumed / "checkpoints" / "last.pt")
    assert "mid_epoch" not in last and last["epoch"] == 3
    weights = load_checkpoint(straight / "checkpoints" / "last.pt")["model"]
    for name, tensor in weights.items():
        assert torch.equal(tensor, last["model"][name]), name
    assert json.loads((resumed / "result.json").read_text()) == json.loads((straight / "result.json").read_text())


def test_an_epochs_telemetry_over_two_starts_weighs_shares_by_time_and_keeps_the_peaks():
    before = EpochSoFar(batches=2, sums=[0.0] * 6, seconds=3.0, figures={"data_wait_share": 0.2, "peak_rss_bytes": 5})
    now = {"data_wait_share": 0.6, "peak_rss_bytes": 4, "gpu_utilization": 90.0}
    assert merge_figures(before, now, 1.0) == pytest.approx(
        {"data_wait_share": 0.3, "peak_rss_bytes": 5, "gpu_utilization": 90.0}
    )
    assert merge_figures(None, now, 1.0) == now


# Agreements every 3 steps stand for the real 20 in an epoch of 4 steps: steps 3, 4 (an epoch's end), 6, 8.
AGREE_EVERY = 3


def _rank(rank: int, run_dir: str, port: int, warn_step: int | None, said: dict) -> None:
    """One of two gloo ranks, as torchrun starts them; rank 0 gets the warning signal at ``warn_step``."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1")
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    warning.AGREE_EVERY = AGREE_EVERY
    warning.listen()
    reporter = WarnAtStep(warn_step) if rank == 0 and warn_step is not None else Recorder()
    try:
        train_run(run_dir, reporter=reporter)
        said[rank] = "done"
    except Warned as exc:
        said[rank] = str(exc)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_ranks_stop_at_one_step_and_resume_as_one_process_trains(demo_dataset, tmp_path):
    """Under torchrun's layout the ranks agree on the step (the first agreement after rank 0's signal: no
    collective at the steps between), rank 0 writes the checkpoint before any rank exits, and the resumed
    pair ends as one process does, within the distributed tests' tolerance."""
    # No mixup: each rank mixes its own part of the batch, so a pair never mixes as one process does.
    config = tiny_config(demo_dataset, epochs=2, batch_size=8)
    alone = prepare(tmp_path / "alone", config)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # the pair's two threads: the thread count changes float32 reduction order
    try:
        train_run(alone, reporter=Recorder())
    finally:
        torch.set_num_threads(threads)

    pair = prepare(tmp_path / "pair", config)
    said = mp.Manager().dict()
    # Signalled during step 5 (batch 1 of epoch 2); the next agreement is after step 6.
    mp.spawn(_rank, args=(str(pair), _free_port(), STEPS_PER_EPOCH, said), nprocs=2)
    assert said[0] == said[1] and "after batch 2 of epoch 2 (step 6)" in said[0], dict(said)
    assert load_checkpoint(pair / "checkpoints" / "last.pt")["mid_epoch"]["batches"] == 2
    mp.spawn(_rank, args=(str(pair), _free_port(), None, said), nprocs=2)
    assert dict(said) == {0: "done", 1: "done"}

    rows_alone, rows_pair = read_jsonl(alone / "metrics.jsonl"), read_jsonl(pair / "metrics.jsonl")
    assert [row["epoch"] for row in rows_pair] == [1, 2]
    for row_alone, row_pair in zip(rows_alone, rows_pair, strict=True):
        assert row_alone["train_top1"] == row_pair["train_top1"]
        for key in ("train_loss", "valid_loss", "lr"):
            assert math.isclose(row_alone[key], row_pair[key], rel_tol=LOSS_RTOL), (key, row_alone, row_pair)
