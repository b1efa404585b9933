"""A sweep's runs trained as workers train them, through the queue's own calls, with valid top-1 values a
test chooses from each run's config: the controller's decisions on exact numbers, without training."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backend.db import Database
from backend.models import FailureKind, Run, RunStatus
from backend.services import queue as jobs
from backend.services.sweep_controller import advance
from backend.settings import Settings

# Valid top-1 (%) at an epoch, from the run's config and the epoch.
Curve = Callable[[dict[str, Any], int], float]


def sweep_settings(database_url: str, home: Path, data_root: Path) -> Settings:
    return Settings(database_url=database_url, runs_dir=home / "runs", data_roots=[data_root], sweep_controller=False)


@dataclass
class Workers:
    """Claims every queued run, trains them epoch by epoch side by side, and ends each as told."""

    database: Database
    settings: Settings
    curve: Curve
    fail: Callable[[dict[str, Any]], bool] = lambda _config: False
    epochs_stored: int = 0
    claims: dict[int, jobs.Claim] = field(default_factory=dict)

    def claim_all(self) -> None:
        while True:
            with self.database.session(write=True) as session:
                claim = jobs.claim_run(session=session, worker="sim", stale_after_seconds=60)
            if claim is None:
                return
            self.claims[claim.run_id] = claim
            with self.database.session(write=True) as session:
                jobs.record_start(session=session, run_id=claim.run_id, attempt=claim.attempt, start_epoch=0)

    def epoch(self, epoch: int) -> None:
        """Store ``epoch`` of every claimed run still ours; the last epoch ends the run."""
        for run_id, claim in list(self.claims.items()):
            with self.database.session(write=True) as session:
                if jobs.heartbeat(session=session, run_id=run_id, attempt=claim.attempt):
                    jobs.mark_cancelled(session=session, run_id=run_id, attempt=claim.attempt)
                    del self.claims[run_id]
                    continue
            config = claim.config
            if epoch > config["epochs"]:
                continue
            if self.fail(config) and epoch == config["epochs"]:
                with self.database.session(write=True) as session:
                    kind = FailureKind.training
                    jobs.fail(session=session, run_id=run_id, attempt=claim.attempt, error="boom", kind=kind)
                del self.claims[run_id]
                continue
            top1 = self.curve(config, epoch)
            row = {"epoch": epoch, "valid_top1": top1, "valid_top5": top1, "valid_loss": 1 / (1 + top1)}
            with self.database.session(write=True) as session:
                jobs.store_epoch(session=session, run_id=run_id, attempt=claim.attempt, row=row)
            self.epochs_stored += 1
            if epoch == config["epochs"]:
                peak = max(self.curve(config, e) for e in range(1, epoch + 1))
                result = {
                    "peak_valid_top1": peak,
                    "peak_valid_top5": peak,
                    "test_top1": top1,
                    "checkpoint_valid_loss": 1 / (1 + top1),
                }
                with self.database.session(write=True) as session:
                    jobs.succeed(session=session, run_id=run_id, attempt=claim.attempt, result=result)
                del self.claims[run_id]

    def drive(self, sweep_id: int, *, rounds: int = 200) -> None:
        """Advance the controller and train, epoch by epoch, until the sweep has ended."""
        for _ in range(rounds):
            advance(database=self.database, settings=self.settings, sweep_id=sweep_id)
            if self.finished(sweep_id):
                return
            self.drive_once(sweep_id)
        raise AssertionError(f"sweep {sweep_id} did not end in {rounds} rounds")

    def drive_once(self, sweep_id: int) -> None:
        """Claim what is queued and train it to its end, advancing the controller after each epoch."""
        self.claim_all()
        for epoch in range(1, 1 + max((c.config["epochs"] for c in self.claims.values()), default=0)):
            self.epoch(epoch)
            advance(database=self.database, settings=self.settings, sweep_id=sweep_id)

    def finished(self, sweep_id: int) -> bool:
        from backend.models import Sweep, SweepStatus

        with self.database.session() as session:
            sweep = session.get(Sweep, sweep_id)
            assert sweep is not None
            return sweep.status in (SweepStatus.finished, SweepStatus.cancelled)

    def statuses(self) -> dict[int, RunStatus]:
        from sqlalchemy import select

        with self.database.session() as session:
            return {row.id: row.status for row in session.execute(select(Run.id, Run.status))}
