"""The study pages in Chromium, on the tiny study that the end-to-end test of studies runs."""

from __future__ import annotations

import re

import httpx
from testlib.models import TINY_ARCH
from testlib.studies import TINY, TINY_GRID, TINY_GROUPS, TINY_SEEDS, TINY_TEACHER_ARCH, tiny_study_overrides

from backend.reports.stats import NO_SPREAD

# The paper's recipe has a ResNet-D row, the -D variant of the study's model: a plain ResNet, not the test model;
# and a teacher that differs from the students.
PAPER_ARCHS = {"model.arch": "resnet18", "teacher.model.arch": "resnet34"}


def override_lines(overrides: dict[str, object]) -> list[str]:
    """``overrides`` as the launch form takes them: one key = value per line."""
    return [f"{key} = {str(value).lower() if isinstance(value, bool) else value}" for key, value in overrides.items()]


def test_the_study_page_shows_progress_the_table_and_bands(page, study_server, tiny_study, tmp_path):
    page.goto(f"{study_server.url}/studies/{tiny_study['id']}")
    rows = page.locator("#study-table tbody tr")
    rows.first.wait_for()
    assert rows.count() == len(TINY_GROUPS)
    assert page.locator("#study-name").text_content() == "tiny grid"
    assert page.locator("#study-progress-text").text_content() == "10 of 10 runs finished"
    assert page.locator('#study-counts [data-status="succeeded"] dd').text_content() == "10"
    # The estimate made when it was created, beside the time it took: how far to trust the next one.
    study = study_server.get(f"/studies/{tiny_study['id']}")
    assert study["estimated_seconds"] > 0 and study["took_seconds"] > 0
    time = page.locator("#study-time").text_content()
    assert re.fullmatch(r"Estimated [\d.]+ (s|min|h), took [\d.]+ (s|min|h) \((.+)\)\.", time), time
    assert time.endswith(f"({study['estimate_basis']}).")
    base = page.locator('#study-table tr[data-group="base"]')
    assert "baseline" in base.text_content() and "±" in base.locator("td").nth(2).text_content()
    kd = page.locator('#study-table tr[data-group="+KD"]')
    assert kd.locator("td").nth(0).text_content() == f"{TINY_ARCH} from scratch +KD from T"
    assert kd.locator("td").nth(3).get_attribute("data-verdict") in ("within noise", "helped", "hurt", NO_SPREAD)
    # The footnote says what it counts: the groups with an interval, compared on top-1 (and top-5).
    method = page.locator("#study-method").text_content()
    compared = sum(
        1
        for row in study_server.get(f"/studies/{tiny_study['id']}/table")["data"]
        if not row["is_baseline"] and row["top1"]["p_value"] is not None
    )
    if compared:
        assert (
            f'{compared} group{"s are" if compared > 1 else " is"} compared with the baseline "base" on top-1' in method
        )
        assert "would still be marked helped or hurt at 95 %, by chance alone" in method
    else:
        assert "No group has an interval yet" in method
    # One legend outside the charts, an entry per group.
    assert page.locator("#legend .legend-entry").all_text_contents() == TINY_GROUPS
    assert not page.locator("#study-cancel").is_visible()  # nothing left to cancel

    # Every chart: per group a filled band between two edges, and the mean line.
    page.wait_for_function("() => document.getElementById('chart-lr').data?.length > 0")
    for field in ("train_loss", "valid_top1", "valid_top5", "lr"):
        traces = page.evaluate(
            f"document.getElementById('chart-{field}').data.map(t => [t.name, t.fill ?? null, t.x.length])"
        )
        assert sum(fill == "tonexty" for _, fill, _ in traces) == len(TINY_GROUPS), (field, traces)
        assert [name for name, fill, _ in traces if fill is None and not name.endswith("std")] == TINY_GROUPS
        assert all(points == 1 for *_, points in traces)
    assert page.evaluate("() => document.getElementById('chart-lr').layout.showlegend") is False
    page.get_by_label("test, kept checkpoint (lowest valid loss)").check()
    page.wait_for_function("() => document.getElementById('csv-link').href.endsWith('metric=test')")
    page.screenshot(path=tmp_path / "study.png", full_page=True)
    # Every epoch of every run of the study, one line each (a tiny study's runs train one epoch).
    epochs = httpx.get(study_server.url + page.locator("#epochs-csv-link").get_attribute("href")).text.splitlines()
    study = study_server.get(f"/studies/{tiny_study['id']}")
    run_ids = {run["run_id"] for group in study["groups"] for run in group["runs"]}
    assert epochs[0].startswith("run_id,run_name,study_id,config_hash,epoch,")
    assert sorted(int(line.split(",")[0]) for line in epochs[1:]) == sorted(run_ids)
    assert page.locator("#report-column").text_content() == "Report (top-1)"
    assert not page.locator("#study-reference").is_visible()  # a grid quotes nothing
    assert not page.errors


def test_the_paper_study_page_labels_the_papers_numbers_as_imagenet(page, study_server, tiny_study):
    overrides = {**TINY, **PAPER_ARCHS, "data.root": str(study_server.data_root), "schedule.warmup_epochs": 0.5}
    study = study_server.post_study({"name": "paper", "preset": "paper", "overrides": overrides})
    # Only its page is looked at: nothing of it needs to train.
    assert httpx.post(f"{study_server.url}/api/v1/studies/{study['id']}/cancel", timeout=30).status_code == 200
    page.goto(f"{study_server.url}/studies/{study['id']}")
    page.locator('#study-table tr[data-group="kd"]').wait_for()
    assert page.locator("#report-column").text_content() == "Paper, ImageNet (top-1)"
    cells = [page.locator(f'#study-table tr[data-group="{key}"] td').nth(6).text_content() for key in ("base", "mixup")]
    kd = page.locator('#study-table tr[data-group="kd"] td').nth(6).text_content()
    assert (cells, kd) == (["75.30", "–"], "79.29 (+3.99p)")
    reference = page.locator("#study-reference").text_content()
    assert "ImageNet with ResNet-50, a different dataset" in reference and "the other rows are left empty" in reference
    assert "trains every row from scratch" in page.locator("#study-notes").text_content()
    assert effects_text(page).count("the paper preset is not a factorial grid") == 1
    assert not page.errors


def test_a_study_is_renamed_then_deleted_with_its_runs_from_its_page(page, study_server):
    # A label smoothing no other study trains: its runs are its own, not reused from the tiny study.
    overrides = {**TINY, "data.root": str(study_server.data_root), "tricks.label_smoothing": 0.05}
    study = study_server.post_study(
        {"name": "to delete", "grid": {"switches": {"cosine": True}}, "overrides": overrides}
    )
    assert httpx.post(f"{study_server.url}/api/v1/studies/{study['id']}/cancel", timeout=30).status_code == 200
    study_server.wait_finished(study["id"], timeout=60)  # a running run would make the delete a 409
    runs = sorted({run["run_id"] for group in study["groups"] for run in group["runs"] if not run["reused"]})
    assert len(runs) == 2
    page.goto(f"{study_server.url}/studies/{study['id']}")
    page.get_by_role("button", name="Rename").click()
    page.get_by_label("New name").fill("<b>renamed</b>")
    page.get_by_role("button", name="Save name").click()
    page.get_by_text("Renamed.").wait_for()
    assert page.locator("#study-name").text_content() == "<b>renamed</b>"
    assert study_server.get(f"/studies/{study['id']}")["name"] == "<b>renamed</b>"
    page.probe.accept_dialogs = True
    page.get_by_role("button", name="Delete").click()
    page.wait_for_url(f"{study_server.url}/studies")
    assert page.probe.dialogs == [
        f'Delete study #{study["id"]} "<b>renamed</b>" with the runs it created, their metrics and files?'
    ]
    for path in (f"/studies/{study['id']}", *(f"/runs/{run_id}" for run_id in runs)):
        assert httpx.get(f"{study_server.url}/api/v1{path}").status_code == 404
    assert not page.errors


def effects_text(page) -> str:
    page.wait_for_function("() => document.getElementById('effects-sentence').textContent !== ''")
    return page.locator('section[aria-labelledby="effects-title"]').inner_text()


def test_a_one_seed_study_says_once_that_its_deltas_have_no_interval(page, study_server, tiny_study):
    # The tiny study on its first seed alone: every run is reused, nothing trains.
    overrides = tiny_study_overrides(study_server.data_root)
    study = study_server.post_study(
        {"name": "one seed", "grid": {"switches": TINY_GRID}, "seeds": 1, "overrides": overrides}
    )
    study_server.wait_finished(study["id"], timeout=60)
    table = study_server.get(f"/studies/{study['id']}/table")
    assert table["note"] and "No delta has an interval" in table["note"]
    page.goto(f"{study_server.url}/studies/{study['id']}")
    page.locator('#study-table tr[data-group="+KD"]').wait_for()
    assert page.locator("#study-table-note").text_content() == table["note"]
    rows = page.locator("#study-table tbody").inner_text()
    assert "interval" not in rows and "seed" not in rows
    assert re.search(r"\d\.\d\dp", rows)  # the deltas themselves stay
    assert "No group has an interval yet" not in page.locator("#study-method").text_content()
    # The effects say once why a grid on one seed has none: the sentence, not a list repeating it.
    [reason] = [item["reason"] for item in study_server.get(f"/studies/{study['id']}/effects")["not_estimable"]]
    assert effects_text(page).count(reason) == 1
    assert not page.locator("#effects-method").is_visible()  # no fit, no method
    assert not page.errors


def test_the_launch_form_names_a_bad_override_then_launches(page, study_server, tiny_study):
    page.goto(f"{study_server.url}/studies")
    page.locator(f'#studies-table tr[data-study-id="{tiny_study["id"]}"]').wait_for()
    overrides = page.get_by_label("One key = value per line")
    lines = [*override_lines(TINY), f"data.root = {study_server.data_root}", "teacher.model.arch = resnet9"]
    teacher = f"teacher.model.arch = {TINY_TEACHER_ARCH}"
    paper = [*override_lines({**TINY, **PAPER_ARCHS}), f"data.root = {study_server.data_root}"]
    page.get_by_label("Seeds per run").fill(str(TINY_SEEDS))
    # The paper's recipe is offered beside the seed study; its preview names what its warmup needs.
    preview = "document.getElementById('study-preview').textContent"
    page.get_by_label("The paper's recipe: baseline, then one refinement per row", exact=False).check()
    assert page.get_by_label("Name", exact=True).input_value() == "paper study"
    page.get_by_label("Name", exact=True).fill("from the form")
    overrides.fill("\n".join(paper))
    page.wait_for_function(f"() => {preview}.includes('warms up for 5 epochs from its second row')")
    overrides.fill("\n".join([*paper, "schedule.warmup_epochs = 0.5"]))
    page.wait_for_function(f"() => {preview}.startsWith('10 groups × {TINY_SEEDS} seeds: {10 * TINY_SEEDS} runs')")
    page.get_by_label("A grid: every combination of the switches below").check()
    page.get_by_label("Cosine decay (instead of OneCycle): off and on").check()
    page.get_by_label("Knowledge distillation: off and on").check()
    overrides.fill("\n".join(lines))
    page.get_by_role("button", name="Launch study").click()
    error = page.locator("#study-overrides-error")
    error.wait_for(state="visible")
    assert error.text_content().startswith(
        "teacher.model.arch: unknown architecture 'resnet9'; torchvision's are resnet18"
    )
    assert overrides.get_attribute("aria-invalid") == "true"

    # Fixed, it is the tiny study again: every run is reused, and the page says so at once.
    overrides.fill("\n".join([*lines[:-1], teacher]))
    page.get_by_role("button", name="Launch study").click()
    page.wait_for_url(f"{study_server.url}/studies/*")
    page.locator("#study-table tbody tr").first.wait_for()
    assert page.locator("#study-name").text_content() == "from the form"
    assert page.locator("#study-progress-text").text_content() == "10 of 10 runs finished (10 reused from earlier runs)"
    # The browser logs the refused first launch (and the previews of the bad override); nothing else went wrong.
    assert page.errors and set(page.errors) == {
        "Failed to load resource: the server responded with a status of 422 (Unprocessable Entity)"
    }
