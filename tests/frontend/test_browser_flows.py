"""Four flows in Chromium against `tricklab serve` (a bad value kept on the form, a launch from a
preset with its charts growing, two runs compared, a run cancelled then deleted), plus widths and escaping.

Each test saves screenshots of the pages it visits under its own temporary folder.
"""

from __future__ import annotations

import re
import time
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from testlib.models import TINY_ARCH

XSS_NAME = "<script>alert(1)</script>"
# Notes that would run script or load from elsewhere if any markup passed through.
XSS_NOTES = '<img src=x onerror="alert(2)"> [click](javascript:alert(3)) <script>alert(4)</script>\n\n**bold**'
POINTS = "document.getElementById('chart-{field}').data?.[{index}]?.x?.length ?? 0"


def shot(page, folder: Path, name: str) -> None:
    page.screenshot(path=folder / f"{name}.png", full_page=True)


def fill_tiny_run(page, data_root: Path, *, epochs: int) -> None:
    """The settings that make a run take seconds, typed as a user would (labels, not selectors)."""
    page.get_by_label("Architecture").fill("resnet18")  # a text box: any torchvision or timm name
    page.get_by_label("Pretrained").uncheck()
    page.get_by_label("Root").fill(str(data_root))
    page.get_by_label("Image size").fill("32")
    page.get_by_label("Num workers").fill("0")
    page.get_by_label("Epochs", exact=True).fill(str(epochs))
    page.get_by_label("Batch size").fill("16")


def test_bad_value_shows_beside_its_field_and_keeps_the_form(page, dashboard, tmp_path):
    page.goto(f"{dashboard.url}/runs/new")
    page.locator("#f-name").fill("keep me")
    page.get_by_label("Label smoothing").fill("0.1")
    epochs = page.get_by_label("Epochs", exact=True)
    epochs.fill("-3")
    epochs.press("Enter")  # the keyboard submits the form

    error = page.locator("#f-epochs-error")
    error.wait_for(state="visible")
    assert error.text_content() == "Input should be greater than or equal to 1"
    assert epochs.get_attribute("aria-invalid") == "true"
    assert page.evaluate("document.activeElement.id") == "f-epochs"
    assert page.url.endswith("/runs/new")
    assert (page.locator("#f-name").input_value(), epochs.input_value()) == ("keep me", "-3")
    assert page.get_by_label("Label smoothing").input_value() == "0.1"
    shot(page, tmp_path, "launch-422")
    assert httpx.get(f"{dashboard.url}/api/v1/runs", params={"name": "keep me"}).json()["count"] == 0
    assert not page.probe.errors


def test_launch_from_a_preset_and_watch_the_charts_grow(page, dashboard, tmp_path):
    epochs = 3
    page.goto(f"{dashboard.url}/runs/new")
    page.get_by_label("Preset", exact=True).select_option("b")
    assert page.get_by_label("Label smoothing").input_value() == "0.1"  # at once: no request in between
    fill_tiny_run(page, dashboard.data_root, epochs=epochs)
    page.locator("#f-name").fill("from the form")
    page.wait_for_function(
        "() => document.getElementById('preview-note').textContent.includes('from the configured dataset')"
    )
    shot(page, tmp_path, "launch")
    page.get_by_role("button", name="Launch run").click()
    page.wait_for_url(re.compile(r"/runs/\d+$"))
    run_id = int(page.url.rsplit("/", 1)[1])
    page.evaluate("window.notReloaded = true")

    seen: list[int] = []
    deadline = time.monotonic() + 240
    while "succeeded" not in (status := page.locator("#run-status").text_content()):
        assert "failed" not in status and time.monotonic() < deadline, dashboard.log_tail()
        points = page.evaluate(POINTS.format(field="valid_top1", index=0))
        if not seen or seen[-1] != points:
            seen.append(points)
            if points == 1:
                shot(page, tmp_path, "run-live")
        time.sleep(0.25)
    page.wait_for_function("() => " + POINTS.format(field="train_loss", index=0) + f" === {epochs}")
    assert page.evaluate("window.notReloaded === true")
    assert len(seen) >= 2 and seen == sorted(seen), f"point counts seen while running: {seen}"
    assert page.locator("#run-name").text_content() == "from the form"
    assert page.locator("#run-test").text_content() != "–"
    config = dashboard.run(run_id)["config"]
    assert (config["tricks"]["label_smoothing"], config["epochs"], config["model"]["arch"]) == (0.1, epochs, "resnet18")
    shot(page, tmp_path, "run-succeeded")

    # Clone opens the same form prefilled.
    page.get_by_role("link", name="Clone").click()
    page.wait_for_function("() => document.getElementById('f-name').value === 'from the form'")
    assert page.get_by_label("Epochs", exact=True).input_value() == str(epochs)
    assert not page.probe.errors


def test_compare_two_finished_runs(page, dashboard, finished_runs, tmp_path):
    ids = [run["id"] for run in finished_runs]
    page.goto(f"{dashboard.url}/compare?runs={ids[0]},{ids[1]}")
    rows = page.locator("#compare-table tbody tr")
    rows.nth(1).wait_for()
    for field in ("train_loss", "valid_top1", "valid_top5", "lr"):
        page.wait_for_function(f"() => document.getElementById('chart-{field}').data?.length === 2")
        for index in (0, 1):
            assert page.evaluate(POINTS.format(field=field, index=index)) == 2, field
    colours = page.evaluate(
        "['train_loss', 'lr'].map(f => document.getElementById('chart-' + f).data.map(t => t.line.color))"
    )
    assert colours[0] == colours[1] and colours[0][0] != colours[0][1]

    base, other = rows.nth(0), rows.nth(1)
    assert "baseline" in base.text_content()
    # What both runs share is said once; the row says what this one adds.
    assert page.locator("#shared-tricks").text_content().startswith(f"Every run: {TINY_ARCH} from scratch;")
    assert other.locator("td").nth(0).text_content() == "+LS"
    top1 = other.locator("td").nth(3).text_content()
    assert top1.endswith("p)") and ("(+" in top1 or "(−" in top1), top1
    # The name is markup: it shows as text and runs nothing.
    assert other.get_by_role("link").text_content() == XSS_NAME
    assert not page.probe.dialogs
    # The config diff: the one key that sets them apart, side by side (the names are left out).
    diff = page.locator("#config-diff tbody tr")
    diff.first.wait_for()
    assert [row.get_attribute("data-key") for row in diff.all()] == ["tricks.label_smoothing"]
    assert diff.first.locator("td").all_text_contents() == ["0", "0.1"]
    assert XSS_NAME in page.locator("#config-diff thead").text_content()
    shot(page, tmp_path, "compare")

    page.get_by_label("final epoch").check()
    page.wait_for_function("() => location.search.includes('mode=final')")
    csv = httpx.get(dashboard.url + page.locator("#csv-link").get_attribute("href")).text
    assert csv.splitlines()[0].startswith("run_id,name,tricks") and len(csv.splitlines()) == 3
    epochs = httpx.get(dashboard.url + page.locator("#epochs-csv-link").get_attribute("href")).text.splitlines()
    assert [line.split(",")[0] for line in epochs[1:]] == [str(ids[0])] * 2 + [str(ids[1])] * 2
    page.get_by_label("Baseline").select_option(str(ids[1]))
    page.wait_for_function(f"() => location.search.includes('baseline={ids[1]}')")
    page.locator("#compare-table tbody tr.baseline").get_by_role("link").filter(has_text=XSS_NAME).wait_for()
    assert not page.probe.errors


def test_the_run_page_links_each_file_and_the_zip(page, dashboard, finished_runs, tmp_path):
    run = finished_runs[0]
    folder = Path(run["run_dir"])
    listed = dashboard.get(f"/runs/{run['id']}/files")
    page.goto(f"{dashboard.url}/runs/{run['id']}")
    page.locator("#files-table tr[data-path='checkpoints/best.pt']").wait_for()
    links = page.locator("#files-table tbody a")
    assert links.all_text_contents() == [file["path"] for file in listed["data"]]
    assert {"config.json", "metrics.jsonl", "result.json", "checkpoints/best.pt"} <= set(links.all_text_contents())
    assert page.locator("#run-disk").text_content().endswith(("KiB", "MiB"))
    shot(page, tmp_path, "run-files")

    # A click downloads the file itself, through the same page session a token log-in would use.
    with page.expect_download() as download:
        links.filter(has_text="result.json").click()
    assert Path(download.value.path()).read_bytes() == (folder / "result.json").read_bytes()
    assert download.value.suggested_filename == "result.json"
    with page.expect_download() as download:
        page.locator("#files-zip").click()
    archive = zipfile.ZipFile(download.value.path())
    names = archive.namelist()
    assert f"run-{run['id']}/config.json" in names and not [name for name in names if "/checkpoints/" in name]

    # The runs list shows the size the worker measured when the run ended.
    page.goto(dashboard.url + "/")
    disk = page.locator(f"tr[data-run-id='{run['id']}'] td.disk")
    disk.wait_for()
    assert disk.text_content().endswith(("KiB", "MiB"))
    epochs_csv = page.locator("#runs-epochs-csv").get_attribute("href")
    lines = httpx.get(dashboard.url + epochs_csv).text.splitlines()
    assert lines[0].startswith("run_id,run_name") and str(run["id"]) in {line.split(",")[0] for line in lines[1:]}
    assert not page.probe.errors


@pytest.mark.parametrize("width", [800, 1280])
def test_pages_fit_the_width_and_escape_names(browser, dashboard, finished_runs, tmp_path, width):
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    dialogs: list[str] = []

    def dismiss(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", dismiss)
    xss = next(run for run in finished_runs if run["name"] == XSS_NAME)
    noted = httpx.patch(f"{dashboard.url}/api/v1/runs/{xss['id']}", json={"notes": XSS_NOTES, "add_tags": ["x.y_z-1"]})
    assert noted.status_code == 200, noted.text
    ids = ",".join(str(run["id"]) for run in finished_runs)
    pages = {
        "runs": "/",
        "launch": "/runs/new?preset=h",
        "run": f"/runs/{xss['id']}",
        "compare": f"/compare?runs={ids}",
    }
    for name, path in pages.items():
        page.goto(dashboard.url + path)
        page.wait_for_load_state("networkidle")
        shot(page, tmp_path, f"{name}-{width}")
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{name} is {overflow} px wider than {width} px"
        # The tables could scroll sideways, but they fit, actions included.
        hidden = page.evaluate(
            "Math.max(0, ...[...document.querySelectorAll('.table-wrap')].map(w => w.scrollWidth - w.clientWidth))"
        )
        assert hidden == 0, f"{name}: {hidden} px of a table are scrolled out of view at {width} px"
    page.goto(dashboard.url + "/")
    page.locator(f"tr[data-run-id='{xss['id']}'] a").first.wait_for()
    assert page.locator(f"tr[data-run-id='{xss['id']}'] td").nth(1).get_by_role("link").text_content() == XSS_NAME
    page.goto(dashboard.url + f"/runs/{xss['id']}")
    page.wait_for_function(f"() => document.getElementById('run-name').textContent === {XSS_NAME!r}")
    # The notes: Markdown drawn (bold), every tag the user wrote shown as its text, no javascript: link.
    notes = page.locator("#run-notes")
    assert notes.locator("strong").text_content() == "bold"
    assert notes.locator("img, script, a").count() == 0
    assert '<img src=x onerror="alert(2)">' in notes.text_content()
    assert page.locator("#run-tags .tag").first.text_content().startswith("x.y_z-1")
    page.goto(dashboard.url + "/")
    row = page.locator(f"tr[data-run-id='{xss['id']}']")
    row.locator(".notes-line").wait_for()
    # The first line, cut to 80 characters: as text.
    assert row.locator(".notes-line").text_content() == XSS_NOTES.split("\n")[0][:79] + "…"
    assert row.locator(".notes-line img, .notes-line script").count() == 0
    assert row.locator(".tag").all_text_contents() == ["x.y_z-1"]
    assert not dialogs
    context.close()


def test_a_run_is_renamed_tagged_noted_and_archived_from_its_page(page, dashboard, finished_runs, tmp_path):
    run = next(run for run in finished_runs if run["name"] == "tiny base")
    page.goto(f"{dashboard.url}/runs/{run['id']}")
    page.get_by_role("button", name="Rename").click()
    page.get_by_label("New name").fill("tiny base, renamed")
    page.get_by_role("button", name="Save name").click()
    page.wait_for_function("() => document.getElementById('run-name').textContent === 'tiny base, renamed'")
    assert dashboard.run(run["id"])["name"] == "tiny base, renamed"
    assert page.locator("#run-changed").text_content() != "–"

    page.get_by_label("Tag", exact=True).fill("keep")
    page.get_by_role("button", name="Add tag").click()
    page.get_by_label("Tag", exact=True).fill("Not OK")
    page.get_by_role("button", name="Add tag").click()
    page.locator("#run-message[data-kind='error']").wait_for()
    assert "a tag is 1 to 32 of a-z" in page.locator("#run-message").text_content()
    assert page.locator("#run-tags .tag").all_text_contents() == ["keep×"]

    page.get_by_role("button", name="Edit notes").click()
    page.get_by_role("textbox", name="Notes").fill(
        "Baseline for the *cosine* rows; see [the paper](https://arxiv.org/abs/1812.01187)."
    )
    page.get_by_role("button", name="Save notes").click()
    page.locator("#run-notes em").wait_for()
    assert page.locator("#run-notes a").get_attribute("href") == "https://arxiv.org/abs/1812.01187"
    shot(page, tmp_path, "run-organised")

    page.get_by_role("button", name="Archive").click()
    page.locator("#run-archived").wait_for()
    assert dashboard.run(run["id"])["archived_at"] is not None
    page.get_by_role("button", name="Restore").click()
    page.locator("#run-archived").wait_for(state="hidden")
    page.get_by_role("button", name="Remove the tag keep").click()
    page.wait_for_function("() => document.querySelectorAll('#run-tags .tag').length === 0")
    page.get_by_role("button", name="Rename").click()
    page.get_by_label("New name").fill("tiny base")
    page.get_by_role("button", name="Save name").click()
    page.wait_for_function("() => document.getElementById('run-name').textContent === 'tiny base'")
    assert dashboard.run(run["id"])["tags"] == []
    assert not page.probe.errors and not page.probe.dialogs


def test_runs_are_tagged_renamed_archived_and_restored_together_from_the_list(page, dashboard, finished_runs, tmp_path):
    ids = [run["id"] for run in finished_runs]
    names = {run["id"]: run["name"] for run in finished_runs}
    page.goto(f"{dashboard.url}/")
    assert page.locator("#bulk").is_hidden()
    for run_id in ids:
        page.locator(f"tr[data-run-id='{run_id}'] input[type=checkbox]").check()
    assert page.locator("#bulk-count").text_content() == "2 selected:"
    page.locator("#bulk-tag").fill("pair")
    page.get_by_role("button", name="Add tag").click()
    for run_id in ids:
        page.locator(f"tr[data-run-id='{run_id}'] .tag").filter(has_text="pair").wait_for()
    page.locator("#bulk-name").fill("")
    page.get_by_role("button", name="Rename").click()
    page.locator("#runs-message[data-kind='error']").wait_for()
    assert "name: String should have at least 1 character" in page.locator("#runs-message").text_content()
    try:
        page.locator("#bulk-name").fill("pair of runs")
        page.get_by_role("button", name="Rename").click()
        page.get_by_text("Renamed 2 runs “pair of runs”.").wait_for()
        assert {dashboard.run(run_id)["name"] for run_id in ids} == {"pair of runs"}
        page.get_by_role("button", name="Archive", exact=True).click()
        page.get_by_text("Archived 2 runs.").wait_for()
        for run_id in ids:
            page.locator(f"tr[data-run-id='{run_id}']").wait_for(state="detached")
        page.get_by_label("Shown").select_option("true")
        for run_id in ids:
            page.locator(f"tr[data-run-id='{run_id}'] .archived-line").wait_for()
        shot(page, tmp_path, "runs-archived")
        page.get_by_role("button", name="Restore").click()
        page.get_by_text("Restored 2 runs.").wait_for()
        for run_id in ids:
            page.locator(f"tr[data-run-id='{run_id}']").wait_for(state="detached")
        page.get_by_role("button", name="Remove tag").click()
        page.get_by_text("Removed the tag pair from 2 runs.").wait_for()
    finally:
        for run_id in ids:
            httpx.patch(f"{dashboard.url}/api/v1/runs/{run_id}", json={"name": names[run_id], "archived": False})
    assert not any("pair" in dashboard.run(run_id)["tags"] for run_id in ids)
    assert not page.probe.errors and not page.probe.dialogs


def test_reorder_the_queue_cancel_a_running_run_from_the_list_then_delete_it(page, dashboard, tmp_path):
    run = dashboard.submit("long run", epochs=200)
    dashboard.wait(run["id"], statuses=("running",))
    waiting = dashboard.submit("waiting run")  # queued behind the long run: the dashboard has one worker
    page.goto(f"{dashboard.url}/")
    row = page.locator(f"tr[data-run-id='{run['id']}']")
    row.locator("progress").wait_for()
    assert row.locator(".priority-line").count() == 0  # only a queued run moves in the queue

    queued = page.locator(f"tr[data-run-id='{waiting['id']}']")
    assert queued.locator(".priority-value").text_content() == "priority 0"
    queued.get_by_role("button", name=f"Raise the priority of run #{waiting['id']}").click()
    queued.get_by_text("priority 1", exact=True).wait_for()
    assert dashboard.run(waiting["id"])["priority"] == 1
    for shown in ("priority 0", "priority -1"):
        queued.get_by_role("button", name=f"Lower the priority of run #{waiting['id']}").click()
        queued.get_by_text(shown, exact=True).wait_for()
    assert queued.locator(".priority-value").text_content() == "priority -1"
    assert dashboard.run(waiting["id"])["priority"] == -1
    assert page.locator("#runs-message").text_content() == f"Run #{waiting['id']} now has priority -1."
    shot(page, tmp_path, "runs-queued")
    queued.get_by_role("button", name="Cancel").click()  # before the worker is free to train it
    page.locator(f"tr[data-run-id='{waiting['id']}'][data-status='cancelled']").wait_for()
    shot(page, tmp_path, "runs-running")
    row.get_by_role("button", name="Cancel").click()
    page.locator(f"tr[data-run-id='{run['id']}'][data-status='cancelled']").wait_for(timeout=60_000)
    assert dashboard.run(run["id"])["status"] == "cancelled"
    shot(page, tmp_path, "runs-cancelled")

    # Delete asks first: declined, the run stays; accepted, it goes.
    with page.expect_event("dialog"):
        row.get_by_role("button", name="Delete").click()
    assert page.probe.dialogs == [f'Delete run #{run["id"]} "long run" with its metrics and files?']
    assert httpx.get(f"{dashboard.url}/api/v1/runs/{run['id']}").status_code == 200
    page.probe.accept_dialogs = True
    with page.expect_event("dialog"):
        row.get_by_role("button", name="Delete").click()
    row.wait_for(state="detached")
    assert httpx.get(f"{dashboard.url}/api/v1/runs/{run['id']}").status_code == 404
    assert not page.probe.errors
