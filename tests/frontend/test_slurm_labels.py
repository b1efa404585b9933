"""A run in Slurm's hands on the runs list and the run page: "queued in Slurm" with Slurm's reason while
its job waits, then "Slurm 4121 on node[1-2]". The job's state is written as the dispatcher writes it
(backend.services.slurm_runs), on a server with no worker of its own."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect
from testlib.dashboard import serve

from backend.db import Database
from backend.services import queue as jobs
from backend.services.slurm_runs import record_job


def test_a_run_in_slurm_shows_its_job_its_wait_and_its_nodes(page, tmp_path, demo_dataset):
    with serve(tmp_path, demo_dataset, workers=0) as dashboard:
        run = dashboard.submit("in slurm")
        database = Database(dashboard.database_url)
        try:
            with database.session(write=True) as session:
                claim = jobs.claim_run(
                    session=session, worker=f"{jobs.SLURM_WORKER_PREFIX}login1:7", stale_after_seconds=60
                )
            assert claim is not None and claim.run_id == run["id"]

            def job(**state: Any) -> None:
                with database.session(write=True) as session:
                    record_job(session=session, run_id=run["id"], attempt=claim.attempt, job_id=4121, **state)

            job(state="PENDING", reason="Priority")
            page.goto(dashboard.url)
            row = page.locator(f'#runs-table tr[data-run-id="{run["id"]}"]')
            expect(row).to_contain_text("queued in Slurm")
            expect(row).to_contain_text("Priority, job 4121")

            job(state="RUNNING", nodes="node[1-2]")
            page.goto(f"{dashboard.url}/runs/{run['id']}")
            expect(page.locator("#run-status")).to_contain_text("running")
            expect(page.locator("#run-status")).to_contain_text("Slurm 4121 on node[1-2]")
            assert dashboard.run(run["id"])["slurm"] == "Slurm 4121 on node[1-2]"

            # Requeued after the warning signal, the job's trainer resumes from its mid-epoch checkpoint.
            job(state="RUNNING", nodes="node[1-2]", restarts=1)
            with database.session(write=True) as session:
                jobs.record_start(session=session, run_id=run["id"], attempt=claim.attempt, start_epoch=1, start_step=6)
            page.goto(f"{dashboard.url}/runs/{run['id']}")
            expect(page.locator("#run-attempt")).to_contain_text(
                "resumed in epoch 2 at step 6, after the warning signal"
            )
            assert dashboard.run(run["id"])["start_step"] == 6
        finally:
            database.dispose()
    assert not page.probe.errors
