"""A real dashboard for the page tests: `tricklab serve` (uvicorn and one worker) on a free port, a
tiny generated dataset, and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from backend.app import create_app
from backend.settings import Settings

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
# A run that trains in seconds on a CPU: the shapes and code paths of a real one, nothing more.
TINY_RUN = {"model": {"arch": "resnet18", "pretrained": False}, "data": {"image_size": 32, "num_workers": 0},
            "epochs": 2, "batch_size": 16}
FINAL = ("succeeded", "failed", "cancelled")


def _settings(home: Path, data_root: Path) -> Settings:
    return Settings(database_url=f"sqlite:///{home / 'tricklab.db'}", runs_dir=home / "runs",
                    data_roots=[data_root], sse_poll_seconds=0.2, poll_seconds=0.5)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, demo_dataset: Path) -> Iterator[TestClient]:
    """The app in-process, for endpoint tests that need no worker."""
    home = tmp_path_factory.mktemp("api")
    with TestClient(create_app(_settings(home, demo_dataset))) as client:
        yield client


@dataclass
class Dashboard:
    url: str
    data_root: Path
    log: Path

    def submit(self, name: str, **changes: Any) -> dict[str, Any]:
        config = {**TINY_RUN, "name": name, "data": {**TINY_RUN["data"], "root": str(self.data_root)}, **changes}
        answer = httpx.post(f"{self.url}/api/v1/runs", json={"config": config}, timeout=30)
        assert answer.status_code == 201, answer.text
        return answer.json()

    def run(self, run_id: int) -> dict[str, Any]:
        return httpx.get(f"{self.url}/api/v1/runs/{run_id}", timeout=30).json()

    def wait(self, run_id: int, statuses: tuple[str, ...] = FINAL, timeout: float = 240) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while (run := self.run(run_id))["status"] not in statuses:
            if time.monotonic() > deadline:
                pytest.fail(f"run {run_id} is {run['status']} after {timeout} s, not {statuses}; server log:\n"
                            + self.log.read_text()[-3000:])
            time.sleep(0.5)
        return run


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def dashboard(tmp_path_factory: pytest.TempPathFactory, demo_dataset: Path) -> Iterator[Dashboard]:
    home = tmp_path_factory.mktemp("dashboard")
    port = _free_port()
    log = home / "server.log"
    env = {**os.environ, **_settings(home, demo_dataset).environ()}
    with log.open("w") as out:
        server = subprocess.Popen([sys.executable, "-m", "backend", "serve", "--port", str(port)], cwd=home, env=env,
                                  stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{url}/api/v1/runs", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"tricklab serve did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        yield Dashboard(url, demo_dataset, log)
    finally:
        server.send_signal(signal.SIGTERM)  # it stops its worker, which stops its trainer
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@dataclass
class PageProbe:
    """What a page did besides drawing: script errors and dialogs (an executed alert() shows here)."""

    errors: list[str]
    dialogs: list[str]


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    tab.probe = PageProbe(errors=[], dialogs=[])
    tab.on("pageerror", lambda error: tab.probe.errors.append(str(error)))
    # Chromium logs every 4xx as a console error; the 422s and 409s are expected answers here.
    tab.on("console", lambda message: message.type == "error" and not message.text.startswith("Failed to load resource")
           and tab.probe.errors.append(message.text))
    tab.on("dialog", lambda dialog: (tab.probe.dialogs.append(dialog.message), dialog.dismiss()))
    yield tab
    context.close()


@pytest.fixture(scope="session")
def finished_runs(dashboard: Dashboard) -> list[dict[str, Any]]:
    """Two finished runs to compare: a base and a label-smoothing one whose name is markup."""
    first = dashboard.submit("tiny base")
    second = dashboard.submit("<script>alert(1)</script>", tricks={"label_smoothing": 0.1})
    runs = [dashboard.wait(first["id"]), dashboard.wait(second["id"])]
    assert [run["status"] for run in runs] == ["succeeded", "succeeded"], dashboard.log.read_text()[-3000:]
    return runs
