"""`tricklab serve` (uvicorn and its workers) on a free port, for the end-to-end and browser tests and
the README's screenshot script: the real server, workers and trainer, on a folder of its own, driven
through the Python client."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backend.settings import Settings
from testlib.models import TINY_ARCH
from tricklab import Client
from tricklab.local import serving, tricklab_serve
from tricklab.models import FINAL_STATUSES

# A run that trains in seconds on a CPU: the shapes and code paths of a real one, nothing more.
TINY_RUN: dict[str, Any] = {
    "model": {"arch": TINY_ARCH, "pretrained": False},
    "data": {"image_size": 32, "num_workers": 0},
    "epochs": 2,
    "batch_size": 16,
}


def settings_for(home: Path, data_root: Path, *, poll_seconds: float = 0.5) -> Settings:
    return Settings(
        database_url=f"sqlite:///{home / 'tricklab.db'}",
        runs_dir=home / "runs",
        data_roots=[data_root],
        sse_poll_seconds=0.2,
        poll_seconds=poll_seconds,
    )


class ServerError(RuntimeError):
    """A run or study did not end as expected; the message ends with the server's log."""


@dataclass
class Dashboard:
    """The running server; its answers as the JSON the pages read (dicts), for the tests' asserts."""

    url: str
    data_root: Path
    log: Path
    client: Client

    @property
    def database_url(self) -> str:
        """The SQLite file the server and its workers share (``serve`` puts it beside the log)."""
        return f"sqlite:///{self.log.parent / 'tricklab.db'}"

    def log_tail(self) -> str:
        return self.log.read_text()[-3000:]

    def submit(self, name: str, **changes: Any) -> dict[str, Any]:
        """Queue TINY_RUN with top-level ``changes``; a changed section replaces TINY_RUN's, except data."""
        data = {**TINY_RUN["data"], "root": str(self.data_root), **changes.pop("data", {})}
        config = {**TINY_RUN, "name": name, **changes, "data": data}
        return self.client.create_run(config).model_dump(mode="json")

    def run(self, run_id: int) -> dict[str, Any]:
        return self.client.get_run(run_id).model_dump(mode="json")

    def wait(
        self, run_id: int, statuses: tuple[str, ...] = tuple(FINAL_STATUSES), timeout: float = 240
    ) -> dict[str, Any]:
        try:
            run = self.client.wait_for_run(run_id, until=statuses, timeout=timeout)
        except TimeoutError as exc:
            raise ServerError(f"{exc}:\n{self.log_tail()}") from exc
        return run.model_dump(mode="json")

    def get(self, path: str, **params: Any) -> Any:
        """The JSON of GET /api/v1``path``."""
        return self.client.call("GET", path, params=params)

    def post_study(self, body: dict[str, Any]) -> dict[str, Any]:
        grid = body.get("grid")
        study = self.client.create_study(
            body["name"],
            preset=body.get("preset"),
            grid=grid["switches"] if grid else None,
            overrides=body.get("overrides"),
            seeds=body.get("seeds", 1),
        )
        return study.model_dump(mode="json")

    def wait_finished(self, study_id: int, timeout: float) -> dict[str, Any]:
        try:
            study = self.client.wait_for_study(study_id, timeout=timeout)
        except TimeoutError as exc:
            raise ServerError(f"{exc}:\n{self.log_tail()}") from exc
        return study.model_dump(mode="json")


@contextmanager
def serve(
    home: Path, data_root: Path, *, workers: int = 1, poll_seconds: float = 0.5, start_timeout: float = 90
) -> Iterator[Dashboard]:
    """Run `tricklab serve` with its database and runs in ``home``; stop it (and its workers) on exit."""
    env = {**os.environ, **settings_for(home, data_root, poll_seconds=poll_seconds).environ()}
    log = home / "server.log"
    command = tricklab_serve("--workers", str(workers))
    with (
        serving(cwd=home, env=env, log=log, command=command, timeout=start_timeout) as server,
        Client(server.url) as client,
    ):
        yield Dashboard(server.url, data_root, log, client)
