"""A sweep end to end on the browser tests' dashboard (`tricklab serve`: its sweep controller, a real
worker and trainer): started with the CLI, watched with the client, read on its page in Chromium; the
form's 422s beside their fields."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import httpx
from sqlalchemy import update
from testlib.browser import cloud_offers, open_offline
from testlib.models import TINY_ARCH
from testlib.processes import tricklab

from backend.db import Database
from backend.models import Run


def test_a_sweep_from_the_cli_runs_on_the_queue_and_its_page_shows_it(page, dashboard, tmp_path: Path):
    body = {
        "name": "mixup tryout",
        "base": {
            "data.root": str(dashboard.data_root),
            "model.arch": TINY_ARCH,
            "model.pretrained": False,
            "data.image_size": 32,
            "data.num_workers": 0,
            "batch_size": 16,
            "epochs": 1,
        },
        "space": {"tricks.mixup_alpha": {"type": "choice", "values": [0.0, 0.4]}},
        "sampler": {"name": "grid", "seed": 0},
        "budget": {"trials": 2, "parallel": 2},
        "confirm": {"top": 2, "seeds": 1},
    }
    (tmp_path / "sweep.json").write_text(json.dumps(body))
    env = {"TRICKLAB_SERVER": dashboard.url, "TRICKLAB_TOKEN": ""}
    created = tricklab("sweeps", "create", str(tmp_path / "sweep.json"), env=env, cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    sweep_id = int(created.stdout.split()[1])
    sweep = dashboard.client.wait_for_sweep(sweep_id, timeout=600, interval=0.5)
    assert sweep.status == "finished", dashboard.log_tail()
    assert sorted(t.params["tricks.mixup_alpha"] for t in sweep.trials) == [0.0, 0.4]
    assert all(
        t.state == "complete" and len(t.runs) == 2 for t in sweep.trials
    )  # a search seed and a confirmation seed
    assert sweep.conclusion is not None and len(sweep.conclusion["rows"]) == 2
    # Each run is an ordinary run, its parameters applied.
    run = dashboard.client.get_run(sweep.trials[1].runs[0].run_id)
    assert run.config["tricks"]["mixup_alpha"] == sweep.trials[1].params["tricks.mixup_alpha"]
    shown = tricklab("sweeps", "show", str(sweep_id), env=env, cwd=tmp_path)
    assert shown.returncode == 0 and sweep.conclusion["text"] in shown.stdout

    page.goto(f"{dashboard.url}/sweeps/{sweep_id}")
    page.wait_for_selector('#sweep[data-loaded="finished"]')
    assert page.locator("#trial-table tbody tr").count() == 2
    assert page.locator("#sweep-verdict").text_content() == sweep.conclusion["text"]
    assert page.locator("#confirm-table tbody tr").count() == 2
    # Each trial's runs: its search seed's, then its confirmation seed's, said so in words.
    runs = page.locator("#trial-table tbody tr td:nth-child(5)").all_text_contents()
    assert all(re.fullmatch(r"#\d+ #\d+ \(confirm\) ?", text) for text in runs), runs
    # The verdict's runs as the comparison's report: the same document a study or a comparison downloads.
    report = page.locator("#confirm-report-html").get_attribute("href")
    answer = httpx.get(f"{dashboard.url}{report}", timeout=120)
    assert answer.status_code == 200 and answer.text.startswith("<!doctype html>")
    assert all(f"#{run.run_id}" in answer.text for trial in sweep.trials for run in trial.runs)
    page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length >= 3")
    best = page.evaluate("document.getElementById('figure-history').data.find(t => t.name === 'best so far').y")
    assert len(best) == 2
    # Trial numbers are whole: the axis ticks them so, not at 0.2, 0.4, ...
    ticks = page.evaluate("[...document.querySelectorAll('#figure-history .xtick text')].map(t => t.textContent)")
    assert ticks == ["0", "1"], ticks
    assert cloud_offers(page) == []
    assert page.errors == []
    page.screenshot(path=os.environ.get("SWEEP_SCREENSHOT", str(tmp_path / "sweep.png")), full_page=True)

    # The sweep's own report: linked from its page, saved by the CLI, drawn from disk with the network off.
    assert page.locator("#sweep-report-html").get_attribute("href") == f"/api/v1/sweeps/{sweep_id}/report.html"
    saved = tricklab("sweeps", "report", str(sweep_id), env=env, cwd=tmp_path)
    assert saved.returncode == 0 and f"sweep-{sweep_id}.html" in saved.stdout, saved.stderr
    tried = open_offline(page, tmp_path / f"sweep-{sweep_id}.html")
    figures = json.loads(page.locator("#report-figures").text_content() or "{}")["figures"]
    assert {"history", "parallel", "slice"} <= set(figures)
    page.wait_for_function(f"() => document.querySelectorAll('.js-plotly-plot').length === {len(figures)}")
    assert page.locator("#report-verdict").text_content() == sweep.conclusion["text"]
    assert page.locator("#report-table tbody tr").count() == 2 and page.locator("#report-table-2 tbody tr").count() == 2
    assert tried == [] and page.errors == []


def test_the_sweeps_form_shows_422s_beside_their_fields(page, dashboard):
    page.goto(f"{dashboard.url}/sweeps")
    page.locator("#sweep-space").fill('{"optim.lrr": {"type": "choice", "values": [1]}}')
    page.locator("#sweep-trials").fill("0")
    page.locator("#sweep-submit").click()
    page.wait_for_selector("#sweep-trials-error:not([hidden])")
    assert "greater than or equal to 1" in page.locator("#sweep-trials-error").text_content()
    # The schema's 422s first; once they are fixed, the checks against RunConfig.
    page.locator("#sweep-trials").fill("2")
    page.locator("#sweep-submit").click()
    page.wait_for_selector("#sweep-space-error:not([hidden])")
    assert "optim.lrr: unknown key" in page.locator("#sweep-space-error").text_content()
    assert page.locator("#sweep-trials-error").is_hidden()
    # A preset fills the form; its grid is queued as a sweep.
    page.get_by_role("button", name="mixup alpha, the report's way").click()
    assert json.loads(page.locator("#sweep-space").input_value()) == {
        "tricks.mixup_alpha": {"type": "choice", "values": [1.0, 0.2, 0.1, 0.01]}
    }
    assert page.locator("#sweep-sampler").input_value() == "grid"
    page.locator("#sweep-submit").click()
    page.wait_for_url("**/sweeps/*")
    sweep_id = int(page.url.rsplit("/", 1)[1])
    page.wait_for_selector("#sweep[data-loaded]")
    page.locator("#sweep-cancel").click()
    page.wait_for_selector('#sweep[data-loaded="cancelled"]')
    assert dashboard.client.get_sweep(sweep_id).status == "cancelled"
    assert [e for e in page.errors if not e.startswith("Failed to load resource")] == []


def test_a_pruned_run_says_so_on_its_page(page, dashboard):
    """A run its sweep pruned ends cancelled, with the reason on its row: its page names the rung and figures."""
    run = dashboard.submit("pruned tryout")
    dashboard.client.cancel_run(run["id"])
    dashboard.wait(run["id"])  # cancelled while queued, or stopped by its worker
    why = "pruned at epoch 1, rung 0: peak valid top-1 (%) 12.50, against the median 40.00 of 3 trials (50.00, 40.00)"
    database = Database(dashboard.database_url)
    with database.session(write=True) as session:
        session.execute(update(Run).where(Run.id == run["id"]).values(pruned=why))
        session.commit()
    database.dispose()
    assert dashboard.client.get_run(run["id"]).pruned == why
    page.goto(f"{dashboard.url}/runs/{run['id']}")
    page.wait_for_selector("#run-outcome:not([hidden])")
    outcome = page.locator("#run-outcome").text_content() or ""
    assert outcome.startswith("Pruned by its sweep ") and outcome.endswith(f": {why}.")
    assert page.locator("#run-status").text_content() == "pruned"
