"""The forms and the runs list in Chromium at 800 and 1280 px: the LR preview's curves, the teacher a
preset names and how LS meets KD, messages a person can act on, the Studies form's safe defaults and
its estimate, and the runs list's study links."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlencode

import pytest
from sqlalchemy import delete
from testlib.dashboard import settings_for
from testlib.finished import Finished, add_finished_runs
from testlib.studies import TINY

from backend.db import Database
from backend.models import Worker, utcnow
from backend.services import workers
from tricklab.local import serving

WIDTHS = [800, 1280]


def open_page(browser, width: int):
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    return page


@pytest.fixture(scope="module")
def teachers(dashboard) -> dict[str, int]:
    """Two finished teacher runs: one trained without label smoothing (T), one with it (T-LS)."""
    ids = add_finished_runs(
        dashboard.database_url,
        [
            Finished("teacher T", {"model.arch": "resnet34"}, [(70.0, 90.0)]),
            Finished("teacher T-LS", {"model.arch": "resnet34", "tricks.label_smoothing": 0.1}, [(72.0, 91.0)]),
        ],
    )
    return dict(zip(("T", "T-LS"), ids, strict=True))


@pytest.fixture(scope="module")
def tiny_study_on_dashboard(dashboard) -> dict:
    """A two-run grid on the dashboard, queued (its runs list their study at once). Its weight decay is its
    own: a run of the same config and seed that another test finished would be reused, and a reused run
    lists the study that made it (or none)."""
    overrides = {**TINY, "data.root": str(dashboard.data_root), "optim.weight_decay": 0.000123}
    return dashboard.post_study(
        {"name": "grid on the dashboard", "grid": {"switches": {"cosine": True}}, "overrides": overrides}
    )


def preview_names(page) -> list[str]:
    return page.evaluate("(document.getElementById('lr-preview').data ?? []).map(t => t.name)")


@pytest.mark.parametrize("width", WIDTHS)
def test_the_launch_form_previews_every_group_and_names_the_combination(browser, dashboard, teachers, tmp_path, width):
    page = open_page(browser, width)
    page.goto(f"{dashboard.url}/runs/new")
    page.get_by_label("Root").fill(str(dashboard.data_root))
    page.wait_for_function("() => (document.getElementById('lr-preview').data ?? []).length > 0")
    # layer4 and fc share a divisor: one line named for both, not one hidden under the other.
    assert preview_names(page) == ["stem", "layer1", "layer2", "layer3", "layer4 = fc"]

    # The report's g: an unsmoothed student, and the teacher it names, T-LS, suggested.
    page.get_by_label("Preset", exact=True).select_option("g")
    page.wait_for_function(f"() => document.getElementById('f-tricks-kd-teacher').value === '{teachers['T-LS']}'")
    assert float(page.get_by_label("Label smoothing").input_value()) == 0
    combination = page.locator("#kd-combination")
    combination.wait_for()
    assert combination.text_content().startswith("The report's combination (g, h, i1, i2)")
    page.get_by_label("Label smoothing").fill("0.1")
    page.get_by_label("Label smoothing").blur()
    page.wait_for_function("() => document.getElementById('kd-combination').textContent.includes('paper')")
    page.screenshot(path=tmp_path / f"launch-g-{width}.png", full_page=True)

    # Settings that cannot run: the old curves go, and the note says why.
    page.get_by_label("Epochs", exact=True).fill("-1")
    page.wait_for_function("() => document.getElementById('preview-note').textContent.startsWith('No preview')")
    assert preview_names(page) == []
    # A device the config refuses: the message says what it takes, not a pattern.
    page.get_by_label("Epochs", exact=True).fill("2")
    device = page.get_by_label("Device")
    device.fill("gpu")
    page.get_by_role("button", name="Launch run").click()
    error = page.locator("#f-runtime-device-error")
    error.wait_for(state="visible")
    assert error.text_content() == "must be auto, cpu, cuda or cuda:N (N the GPU's index, e.g. cuda:1)"
    page.screenshot(path=tmp_path / f"launch-invalid-{width}.png", full_page=True)
    assert not page.errors
    page.context.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_the_studies_form_starts_small_without_a_gpu_and_says_what_it_would_queue(browser, dashboard, tmp_path, width):
    page = open_page(browser, width)
    page.goto(f"{dashboard.url}/studies")
    assert page.locator("#study-machine").text_content().startswith("No worker with a GPU")
    assert page.get_by_label("Seeds per run").input_value() == "1"
    overrides = page.get_by_label("One key = value per line")
    lines = overrides.input_value().splitlines()
    assert "model.arch = resnet18" in lines and "model.pretrained = false" in lines
    assert f"data.root = {dashboard.data_root}" in lines
    preview = page.locator("#study-preview")
    page.wait_for_function("() => document.getElementById('study-preview').textContent.startsWith('16 groups')")
    # Runs of this shape that other tests finished are reused, and their times feed the estimate.
    assert re.match(
        r"16 groups × 1 seed: 16 runs(, \d+ of them reused from earlier runs)?; about \d", preview.text_content()
    )
    page.get_by_label("Seeds per run").fill("3")
    page.wait_for_function(
        "() => document.getElementById('study-preview').textContent.startsWith('16 groups × 3 seeds: 48 runs')"
    )
    page.screenshot(path=tmp_path / f"studies-{width}.png", full_page=True)

    # Pretrained weights that are not there: said before anything is queued.
    overrides.fill("\n".join([*lines, "model.pretrained = true", "model.weights_path = /nowhere/resnet.pth"]))
    page.wait_for_function("() => document.getElementById('study-preview').textContent.startsWith('Not launchable')")
    assert "no such file /nowhere/resnet.pth" in preview.text_content()
    page.get_by_role("button", name="Launch study").click()
    error = page.locator("#study-overrides-error")
    error.wait_for(state="visible")
    assert "no such file /nowhere/resnet.pth" in error.text_content()
    assert not page.errors
    page.context.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_the_runs_list_links_each_run_to_its_study_and_aligns_rows(browser, dashboard, tiny_study_on_dashboard, width):
    page = open_page(browser, width)
    member = tiny_study_on_dashboard["groups"][0]["runs"][0]
    assert not member["reused"], tiny_study_on_dashboard
    run_id = member["run_id"]
    # By its name: the list shows the newest runs first, and the suite's other tests add hundreds.
    page.goto(f"{dashboard.url}/?{urlencode({'name': dashboard.run(run_id)['name']})}")
    link = page.locator(f"tr[data-run-id='{run_id}'] a.study-link")
    link.wait_for()
    study_id = tiny_study_on_dashboard["id"]
    page.wait_for_function(
        f"() => document.querySelector(\"tr[data-run-id='{run_id}'] a.study-link\").textContent"
        f" === 'study #{study_id} “grid on the dashboard”'"
    )
    assert link.get_attribute("href") == f"/studies/{tiny_study_on_dashboard['id']}"
    # The first line of a row's text sits level with its buttons' text.
    gap = page.evaluate(
        f"""(() => {{
            const row = document.querySelector("tr[data-run-id='{run_id}']");
            const bottom = (node) => {{
                const range = document.createRange();
                range.selectNodeContents(node);
                return range.getClientRects()[0].bottom;
            }};
            const name = row.querySelector('td:nth-child(2) a');
            return Math.abs(bottom(name) - bottom(row.querySelector('.actions .button')));
        }})()"""
    )
    assert gap <= 2, f"row text and button text {gap} px apart"
    link.click()
    page.wait_for_url(f"{dashboard.url}/studies/{tiny_study_on_dashboard['id']}")
    assert not page.errors
    page.context.close()


@pytest.fixture(scope="module")
def offline_server(tmp_path_factory, demo_dataset):
    """A server (no worker) that can neither find ImageNet weights in its cache nor download them: its
    TORCH_HOME is empty and its HTTPS goes through a proxy that refuses every connection."""
    home = tmp_path_factory.mktemp("offline")
    env = {
        **os.environ,
        **settings_for(home, demo_dataset).environ(),
        "TORCH_HOME": str(home / "torch"),
        "https_proxy": "http://127.0.0.1:9",
        "HTTPS_PROXY": "http://127.0.0.1:9",
    }
    with serving(cwd=home, env=env, log=home / "server.log") as server:
        yield server


def test_the_forms_refuse_missing_weights_and_warn_of_a_batch_larger_than_the_split(
    browser, offline_server, demo_dataset
):
    page = open_page(browser, 1280)
    page.goto(f"{offline_server.url}/runs/new")
    page.get_by_label("Root").fill(str(demo_dataset))
    # The demo's 32 training images and the default batch of 64: said before launching.
    warning = page.locator("#preview-warning")
    warning.wait_for(state="visible")
    assert warning.text_content() == (
        "Warning: batch_size 64 is larger than the training split (32 images): each epoch is one step of 32 images."
    )
    assert page.locator("#preview-note").text_content().startswith("1 step per epoch (32 training images")
    page.locator('[name="batch_size"]').fill("8")
    warning.wait_for(state="hidden")
    # The default: ResNet50 from ImageNet weights this machine cannot have. Refused, not queued to fail.
    page.get_by_role("button", name="Launch run").click()
    error = page.locator("#f-model-pretrained-error")
    error.wait_for(state="visible")
    assert error.text_content().startswith("ImageNet weights for resnet50 (resnet50-0676ba61.pth) are not cached")
    assert error.text_content().endswith("Or train from scratch: model.pretrained = false.")
    assert page.url.endswith("/runs/new")

    # The Studies form's preview says it too.
    page.goto(f"{offline_server.url}/studies")
    overrides = page.get_by_label("One key = value per line")
    overrides.fill(overrides.input_value() + "\nbatch_size = 64")
    preview = page.locator("#study-preview")
    page.wait_for_function("() => document.getElementById('study-preview').textContent.includes('Warning')")
    assert preview.get_attribute("data-kind") == "warning"
    assert preview.text_content().endswith(
        "Warning: batch_size 64 is larger than the training split (32 images): each epoch is one step of 32 images."
    )
    assert not page.errors
    page.context.close()


@contextmanager
def gpu_worker(database_url: str, memory_gib: float) -> Iterator[None]:
    """A worker row with one GPU, as a worker on a GPU host writes it; removed afterwards."""
    database = Database(database_url)
    name = "gpu-host:forms"
    gpu = [{"device": "cuda:0", "kind": "cuda", "name": "NVIDIA A10", "memory_gib": memory_gib}]
    try:
        with database.session(write=True) as session:
            workers.report_worker(session=session, name=name, devices=gpu, started_at=utcnow())
        yield
    finally:
        with database.session(write=True) as session:
            session.execute(delete(Worker).where(Worker.name == name))
            session.commit()
        database.dispose()


def test_the_forms_warn_before_launch_of_a_step_no_living_workers_gpu_holds(browser, dashboard):
    warned = (
        "Warning: resnet50 at batch_size 256, 224 px, fp32 is estimated to need about 25.6 GiB of GPU memory for a "
        "training step; the largest GPU of the live workers has 22.0 GiB: lower batch_size to 217 or less, or turn "
        "runtime.amp on (about 13.8 GiB)."
    )
    with gpu_worker(dashboard.database_url, 22.0):
        page = open_page(browser, 1280)
        page.goto(f"{dashboard.url}/runs/new")
        page.get_by_label("Root").fill(str(dashboard.data_root))
        page.locator('[name="runtime.amp"]').uncheck()
        page.locator('[name="batch_size"]').fill("256")
        warning = page.locator("#preview-warning")
        page.wait_for_function("() => document.getElementById('preview-warning').textContent.includes('GPU memory')")
        assert warned in warning.text_content()
        note = page.locator("#preview-note")
        assert note.text_content().endswith(
            "A training step needs about 25.6 GiB of GPU memory (approximate); the largest GPU of the live workers "
            "has 22.0 GiB."
        )
        assert note.get_attribute("title").startswith("GPU memory: approximate: ")
        # bf16 autocast halves the activations: the step fits, and the warning goes.
        page.locator('[name="runtime.amp"]').check()
        page.wait_for_function("() => !document.getElementById('preview-warning').textContent.includes('GPU memory')")

        page.goto(f"{dashboard.url}/studies")
        overrides = page.get_by_label("One key = value per line")
        overrides.fill(
            f"data.root = {dashboard.data_root}\nmodel.pretrained = false\nteacher.model.arch = resnet34\n"
            "batch_size = 256\nruntime.amp = false"
        )
        preview = page.locator("#study-preview")
        page.wait_for_function("() => document.getElementById('study-preview').textContent.includes('GPU memory')")
        assert preview.get_attribute("data-kind") == "warning"
        assert f" {warned}" in preview.text_content()
        assert not page.errors
        page.context.close()
