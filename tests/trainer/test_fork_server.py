"""The trainer fork server: a forked trainer child is the exec'd one bit for bit, in a session of its
own, and ends with the worker that asked for it and with the server."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import torch
from testlib.models import TINY_ARCH

from backend.worker.child import TrainerChild
from trainer.config import RunConfig
from trainer.forked import ForkedTrainer, ForkServerProcess, launch_forked

TIMING_KEYS = {"seconds", "images_per_s", "data_wait_share", "peak_rss_bytes"}


def prepared_run(folder: Path, data_root: Path, *, epochs: int = 2) -> Path:
    folder.mkdir(parents=True)
    RunConfig.from_dict(
        {
            "name": "forked",
            "epochs": epochs,
            "batch_size": 16,
            "data": {"root": str(data_root), "image_size": 32, "num_workers": 0},
            "model": {"arch": TINY_ARCH, "pretrained": False},
            "tricks": {"mixup_alpha": 0.2, "label_smoothing": 0.1},
            "runtime": {"device": "cpu", "step_log_every": 1},
        }
    ).save(folder / "config.json")
    return folder


def trainer_command(folder: Path) -> list[str]:
    return [sys.executable, "-m", "trainer", "run", str(folder)]


def events_to_the_end(child: TrainerChild) -> list[dict]:
    events = []
    while not child.stdout_closed:
        event = child.next_event(timeout=60)
        if event is not None:
            events.append(event)
    return events


def without_timing(rows: list[dict]) -> list[dict]:
    return [{key: value for key, value in row.items() if key not in TIMING_KEYS} for row in rows]


def wait_gone(pid: int, timeout: float) -> bool:
    """Whether process ``pid`` (not a child of this one) ended within ``timeout``."""
    try:
        handle = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        readable, _, _ = select.select([handle], [], [], timeout)
        return bool(readable)
    finally:
        os.close(handle)


def test_a_forked_trainer_trains_as_the_exec_d_one_bit_for_bit(trainer_fork_server, demo_dataset, tmp_path):
    execd_dir = prepared_run(tmp_path / "exec", demo_dataset)
    forked_dir = prepared_run(tmp_path / "forked", demo_dataset)
    env = dict(os.environ)

    forked = TrainerChild(trainer_command(forked_dir), env, fork_server=trainer_fork_server)
    assert isinstance(forked.process, ForkedTrainer)
    assert os.getsid(forked.process.pid) == forked.process.pid  # a session of its own, as start_new_session gives
    execd = TrainerChild(trainer_command(execd_dir), env)
    assert isinstance(execd.process, subprocess.Popen)

    forked_events, execd_events = events_to_the_end(forked), events_to_the_end(execd)
    assert (forked.reap(), execd.reap()) == (0, 0)
    assert [event["type"] for event in forked_events] == [event["type"] for event in execd_events]
    assert forked_events[-1]["type"] == "result"
    steps = [without_timing([event]) for event in forked_events if event["type"] == "step"]
    assert steps == [without_timing([event]) for event in execd_events if event["type"] == "step"]
    read_rows = lambda folder: [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]  # noqa: E731
    assert without_timing(read_rows(forked_dir)) == without_timing(read_rows(execd_dir))
    assert json.loads((forked_dir / "result.json").read_text()) == json.loads((execd_dir / "result.json").read_text())
    forked_weights = torch.load(forked_dir / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)["model"]
    execd_weights = torch.load(execd_dir / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)["model"]
    assert forked_weights.keys() == execd_weights.keys()
    assert all(torch.equal(forked_weights[name], execd_weights[name]) for name in forked_weights)


def test_a_user_error_ends_a_forked_trainer_as_it_ends_an_exec_d_one(trainer_fork_server, tmp_path):
    missing = tmp_path / "no-such-run"
    forked = TrainerChild(trainer_command(missing), dict(os.environ), fork_server=trainer_fork_server)
    execd = TrainerChild(trainer_command(missing), dict(os.environ))
    assert isinstance(forked.process, ForkedTrainer)
    forked_events, execd_events = events_to_the_end(forked), events_to_the_end(execd)
    assert forked.reap() == execd.reap() != 0
    assert forked_events == execd_events
    assert list(forked.stderr_tail) == list(execd.stderr_tail)


def test_a_forked_trainer_killed_by_a_signal_ends_as_popen_says(trainer_fork_server, demo_dataset, tmp_path):
    folder = prepared_run(tmp_path / "run", demo_dataset, epochs=200)
    child = TrainerChild(trainer_command(folder), dict(os.environ), fork_server=trainer_fork_server)
    assert isinstance(child.process, ForkedTrainer)
    assert child.next_event(timeout=60) is not None
    assert child.process.poll() is None
    os.kill(child.process.pid, signal.SIGKILL)  # as the kernel's out-of-memory killer does
    assert child.reap() == -signal.SIGKILL
    assert child.process.poll() == -signal.SIGKILL


def test_a_launch_the_server_cannot_start_as_its_exec_would_is_left_to_exec(trainer_fork_server, tmp_path):
    command = trainer_command(tmp_path / "run")
    other_threads = {**os.environ, "OMP_NUM_THREADS": str(int(os.environ.get("OMP_NUM_THREADS", "1")) + 1)}
    assert launch_forked(command, other_threads, socket_path=trainer_fork_server) is None
    assert launch_forked(["/bin/true", *command[1:]], dict(os.environ), socket_path=trainer_fork_server) is None
    assert launch_forked(command, dict(os.environ), socket_path=tmp_path / "no-server.sock") is None
    child = TrainerChild(command, other_threads, fork_server=trainer_fork_server)
    assert isinstance(child.process, subprocess.Popen)
    events_to_the_end(child)
    assert child.reap() != 0


def test_a_worker_gone_takes_its_forked_trainer_with_it(trainer_fork_server, demo_dataset, tmp_path):
    folder = prepared_run(tmp_path / "run", demo_dataset, epochs=200)
    asker = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import os, sys, time
                from pathlib import Path
                from trainer.forked import launch_forked
                server = Path({str(trainer_fork_server)!r})
                child = launch_forked({trainer_command(folder)!r}, dict(os.environ), socket_path=server)
                print(child.pid, flush=True)
                child.stdout.readline()  # the trainer has started
                print("training", flush=True)
                time.sleep(600)
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    said = asker.stdout
    assert said is not None
    try:
        pid = int(said.readline())
        assert said.readline().strip() == "training"
        assert not wait_gone(pid, 0)
        asker.kill()
        assert wait_gone(pid, timeout=30)
    finally:
        asker.kill()
        asker.wait()


def test_the_server_gone_takes_its_children_and_their_end_is_a_kill(demo_dataset, tmp_path):
    server = ForkServerProcess(tmp_path)
    assert server.ready()
    folder = prepared_run(tmp_path / "run", demo_dataset, epochs=200)
    child = TrainerChild(trainer_command(folder), dict(os.environ), fork_server=server.socket_path)
    assert isinstance(child.process, ForkedTrainer)
    assert child.next_event(timeout=60) is not None
    server.process.kill()
    server.process.wait()
    assert child.process.wait(timeout=30) == -signal.SIGKILL
    assert wait_gone(child.process.pid, timeout=30)
