"""What a run trains on, as the trainer's start event says it, on the runs list and the run page."""

from __future__ import annotations

import re

from playwright.sync_api import expect


def test_the_runs_list_and_the_run_page_show_what_the_run_trained_on(page, dashboard, finished_runs):
    run = finished_runs[0]
    assert (run["world_size"], run["devices"]) == (1, "1 × CPU")

    page.goto(dashboard.url)
    row = page.locator(f'#runs-table tr[data-run-id="{run["id"]}"]')
    expect(row).to_contain_text("1 × CPU")

    page.goto(f"{dashboard.url}/runs/{run['id']}")
    expect(page.locator("#run-speed")).to_have_text(re.compile(r"^\d+(\.\d)? (s|min) on 1 × CPU$"))
    # The runs leave runtime.device at auto: where CUDA cannot be used, the page says why they train on the CPU.
    fallback = page.locator("#run-fallback")
    if run["device_fallback"]:
        assert run["device_fallback"].startswith("runtime.device is auto and CUDA cannot be used: ")
        expect(fallback).to_be_visible()
        expect(fallback).to_have_text(f"Training on the CPU: {run['device_fallback']}")
    else:
        expect(fallback).to_be_hidden()
    assert not page.probe.errors
