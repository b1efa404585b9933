"""The worker registry: devices found without torch (through nvidia-smi), and a real worker process
that reports itself when it starts and keeps its row fresh while it waits."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from testlib.processes import wait_for

from backend.placement import placement
from backend.services import workers

LISTING = "0, NVIDIA H200, 143771\n1, NVIDIA H200, 143771\n2, NVIDIA A100-SXM4-40GB, 40960\n"


@pytest.fixture
def nvidia_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An ``nvidia-smi`` on the PATH that lists three GPUs, as the real one answers the query."""
    tool = tmp_path / "bin" / "nvidia-smi"
    tool.parent.mkdir()
    tool.write_text(f"#!/bin/sh\nprintf '{LISTING}'\n")
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tool.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return tool


def test_gpus_follow_cuda_visible_devices(nvidia_smi, monkeypatch):
    assert [gpu["name"] for gpu in workers.visible_gpus()] == ["NVIDIA H200", "NVIDIA H200", "NVIDIA A100-SXM4-40GB"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,0")
    visible = workers.visible_gpus()
    assert [(gpu["index"], gpu["name"], gpu["memory_gib"]) for gpu in visible] == [
        (0, "NVIDIA A100-SXM4-40GB", 40.0),
        (1, "NVIDIA H200", 140.4),
    ]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert workers.visible_gpus() == []


def test_a_worker_trains_on_its_device_or_the_cpu(nvidia_smi):
    assert workers.detect_devices("cuda:1")[0] == {
        "device": "cuda:1",
        "kind": "cuda",
        "name": "NVIDIA H200",
        "memory_gib": 140.4,
    }
    assert workers.detect_devices(None)[0]["device"] == "cuda:0"
    assert workers.detect_devices("cpu")[0]["kind"] == "cpu"
    assert workers.detect_devices("cuda:7") == [{"device": "cuda:7", "kind": "cuda", "name": None}]


def test_a_worker_reports_every_device_it_owns(nvidia_smi, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,0,1")
    owned = workers.placement_devices(placement(gpus=[1, 2], environ={"CUDA_VISIBLE_DEVICES": "2,0,1"}))
    assert [(device["device"], device["name"]) for device in owned] == [
        ("cuda:1", "NVIDIA H200"),
        ("cuda:2", "NVIDIA H200"),
    ]
    assert [device["kind"] for device in workers.placement_devices(placement(procs=2))] == ["cpu", "cpu"]


def test_without_a_driver_auto_is_the_cpu(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert workers.visible_gpus() == []
    (device,) = workers.detect_devices("auto")
    assert device["kind"] == "cpu" and device["name"].endswith(("CPU core", "CPU cores"))


def test_a_worker_process_reports_itself_and_stays_fresh(make_settings, make_database, sqlite_url, start_worker):
    settings = make_settings(sqlite_url)
    database = make_database(settings)
    start_worker(settings, "--device", "cpu")

    def listed():
        with database.session() as session:
            return workers.list_workers(session=session, stale_after_seconds=settings.stale_after_seconds)

    wait_for(lambda: listed().alive == 1, timeout=60, what="the worker to report itself")
    first = listed().data[0]
    assert first.name.endswith(":cpu") and first.devices[0].kind == "cpu"
    # Idle, it still refreshes its row (every heartbeat), so it stays alive past the stale timeout.
    wait_for(lambda: listed().data[0].last_seen_at > first.last_seen_at, timeout=30, what="a fresher report")
    assert listed().gpus == 0
