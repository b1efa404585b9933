"""/api/v1/sweeps: every bad input a 422 naming its field before anything is queued; pause, resume and
cancel in the wrong state a 409. The controller is off here: each test sees only what the request did."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from testlib.processes import LOOPBACK
from testlib.sweeps import Workers, sweep_settings

from backend.app import create_app
from backend.services import sweep_optuna
from backend.services.sweep_controller import advance


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, demo_dataset: Path) -> Iterator[TestClient]:
    home = tmp_path_factory.mktemp("sweeps-api")
    settings = sweep_settings(f"sqlite:///{home / 'tricklab.db'}", home, demo_dataset)
    with TestClient(create_app(settings), base_url=LOOPBACK) as client:
        yield client
    sweep_optuna.forget(settings.database_url)


def app_state(api: TestClient) -> Any:
    return cast(FastAPI, api.app).state


def body(api: TestClient, **changes: Any) -> dict[str, Any]:
    data_root = app_state(api).settings.data_roots[0]
    return {
        "name": "lr",
        "base": {
            "data.root": str(data_root),
            "model.arch": "resnet18",
            "model.pretrained": False,
            "epochs": 2,
            "batch_size": 16,
        },
        "space": {"optim.lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True}},
        **changes,
    }


BAD: dict[str, tuple[dict[str, Any], list[str], str]] = {
    "unknown key": (
        {"space": {"optim.lrr": {"type": "choice", "values": [1]}}},
        ["body", "space", "optim.lrr"],
        "unknown key",
    ),
    "section": ({"space": {"optim": {"type": "choice", "values": [1]}}}, ["body", "space", "optim"], "a section"),
    "low >= high": (
        {"space": {"optim.lr": {"type": "float", "low": 0.1, "high": 0.1}}},
        ["body", "space", "optim.lr", "float", "high"],
        "must be above low",
    ),
    "log low <= 0": (
        {"space": {"optim.lr": {"type": "float", "low": 0, "high": 0.1, "log": True}}},
        ["body", "space", "optim.lr", "float", "low"],
        "log range",
    ),
    "empty choices": (
        {"space": {"tricks.mixup_alpha": {"type": "choice", "values": []}}},
        ["body", "space", "tricks.mixup_alpha", "choice", "values"],
        "at least 1",
    ),
    "budget of 0": ({"budget": {"trials": 0}}, ["body", "budget", "trials"], "greater than or equal to 1"),
    "objective names no figure": ({"objective": "accuracy"}, ["body", "objective"], "peak_valid_top1"),
    "condition never holds": (
        {"space": {"tricks.kd.temperature": {"type": "float", "low": 1, "high": 20}}},
        ["body", "space", "tricks.kd.temperature"],
        "acts only where tricks.kd.teacher is set",
    ),
    "value RunConfig refuses": (
        {"space": {"optim.lr": {"type": "float", "low": 0.1, "high": 20}}},
        ["body", "space", "optim.lr"],
        "high 20.0: ",
    ),
    "the sweep's own key": (
        {"space": {"seed": {"type": "int", "low": 1, "high": 5}}},
        ["body", "space", "seed"],
        "the sweep sets it",
    ),
    "grid over a range": ({"sampler": {"name": "grid"}}, ["body", "space", "optim.lr"], "choices only"),
    "CMA-ES over a choice": (
        {"sampler": {"name": "cmaes"}, "space": {"optim.name": {"type": "choice", "values": ["adam", "sgd"]}}},
        ["body", "space", "optim.name"],
        "CMA-ES searches numbers only",
    ),
    "bad base": ({"base": {"optim.name": "lamb"}}, ["body", "base", "optim.name"], "'adam' or 'sgd'"),
    "no dataset": ({"base": {"data.root": "/nowhere"}}, ["body", "base", "data.root"], "outside the data roots"),
    "halving without a factor": (
        {"pruner": {"name": "halving", "reduction_factor": 1}},
        ["body", "pruner", "halving", "reduction_factor"],
        "greater than or equal to 2",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_a_422_naming_the_field_and_queues_nothing(api: TestClient, case: str):
    changes, loc, message = BAD[case]
    answer = api.post("/api/v1/sweeps", json=body(api, **changes))
    assert answer.status_code == 422, answer.text
    errors = answer.json()["detail"]
    assert any(error["loc"] == loc and message in error["msg"] for error in errors), errors
    assert api.get("/api/v1/sweeps").json()["count"] == 0
    assert api.get("/api/v1/runs").json()["count"] == 0


def test_a_conditional_key_is_taken_where_its_condition_can_hold(api: TestClient):
    space = {
        "optim.name": {"type": "choice", "values": ["adam", "sgd"]},
        "optim.momentum": {"type": "float", "low": 0.5, "high": 0.95},
    }
    answer = api.post(
        "/api/v1/sweeps", json=body(api, name="momentum", space=space, budget={"trials": 4, "parallel": 4})
    )
    assert answer.status_code == 201, answer.text
    settings = app_state(api).settings
    advance(database=app_state(api).database, settings=settings, sweep_id=answer.json()["id"])
    trials = api.get(f"/api/v1/sweeps/{answer.json()['id']}").json()["trials"]
    assert len(trials) == 4
    for trial in trials:
        assert ("optim.momentum" in trial["params"]) == (trial["params"]["optim.name"] == "sgd")
    api.post(f"/api/v1/sweeps/{answer.json()['id']}/cancel")


def test_pause_resume_cancel_in_the_wrong_state_is_a_409(api: TestClient):
    sweep = api.post("/api/v1/sweeps", json=body(api, name="states")).json()
    path = f"/api/v1/sweeps/{sweep['id']}"
    assert api.post(f"{path}/resume").status_code == 409  # running, not paused
    assert api.post(f"{path}/pause").json()["status"] == "paused"
    assert api.post(f"{path}/pause").status_code == 409
    assert api.post(f"{path}/resume").json()["status"] == "running"
    assert api.post(f"{path}/cancel").json()["status"] == "cancelled"
    for action in ("pause", "resume", "cancel"):
        answer = api.post(f"{path}/{action}")
        assert answer.status_code == 409 and "cancelled" in answer.json()["detail"]
    assert api.post("/api/v1/sweeps/999999/pause").status_code == 404


def test_presets_are_valid_sweeps(api: TestClient):
    presets = {preset["key"]: preset for preset in api.get("/api/v1/sweeps/presets").json()}
    assert set(presets) == {"mixup_report", "recipe_searched"}
    grid = presets["mixup_report"]["body"]
    answer = api.post("/api/v1/sweeps", json={**grid, "name": "mixup", "base": body(api)["base"]})
    assert answer.status_code == 201, answer.text
    assert answer.json()["budget"] == 4 and answer.json()["spec"]["seeds"] == 3
    api.post(f"/api/v1/sweeps/{answer.json()['id']}/cancel")
    # The searched recipe needs a teacher for its KD keys, and says so at the field.
    recipe = presets["recipe_searched"]["body"]
    refused = api.post("/api/v1/sweeps", json={**recipe, "name": "recipe", "base": body(api)["base"]})
    assert refused.status_code == 422
    assert {tuple(e["loc"]) for e in refused.json()["detail"]} == {
        ("body", "space", "tricks.kd.temperature"),
        ("body", "space", "tricks.kd.alpha"),
    }


@pytest.fixture(scope="module")
def finished(api: TestClient) -> dict[str, Any]:
    """A grid over two mixup values, two seeds each and a confirmation over two more, trained by the
    queue's own calls to exact figures: 0.1 clearly ahead of 0.4."""
    answer = api.post(
        "/api/v1/sweeps",
        json=body(
            api,
            name="report <mixup> & 100%",
            space={"tricks.mixup_alpha": {"type": "choice", "values": [0.4, 0.1]}},
            sampler={"name": "grid", "seed": 0},
            budget={"trials": 2, "parallel": 2},
            seeds=2,
            confirm={"top": 2, "seeds": 2},
        ),
    )
    assert answer.status_code == 201, answer.text

    def curve(config: dict[str, Any], epoch: int) -> float:
        return (80.0 if config["tricks"]["mixup_alpha"] == 0.1 else 60.0) * epoch / 2 + config["seed"] % 2

    state = app_state(api)
    Workers(state.database, state.settings, curve).drive(answer.json()["id"])
    return cast(dict[str, Any], api.get(f"/api/v1/sweeps/{answer.json()['id']}").json())


def test_a_sweeps_report_as_html_markdown_and_latex(api: TestClient, finished: dict[str, Any]):
    path = f"/api/v1/sweeps/{finished['id']}"
    winner = finished["conclusion"]["winner"]
    assert finished["status"] == "finished" and winner is not None
    html = api.get(f"{path}/report.html")
    assert html.status_code == 200 and html.headers["content-type"] == "text/html; charset=utf-8"
    assert 'filename="sweep-' in html.headers["content-disposition"]
    text = html.text
    # The name is the user's text, escaped; the verdict, the design and each trial's parameters are there.
    assert "report &lt;mixup&gt; &amp; 100%" in text and "<mixup>" not in text
    assert f"#{winner} (tricks.mixup_alpha=0.1) beats #" in text
    assert "tricks.mixup_alpha: one of 0.4, 0.1" in text and "grid (seed 0) sampler" in text
    figures = json.loads(text.split('id="report-figures">', 1)[1].split("</script>", 1)[0])["figures"]
    assert set(figures) == {"history", "parallel", "slice", "importance"}
    assert text.count('<tr><th scope="row">#') >= 2 + 2 + 8  # confirmation rows, trials, 8 runs' provenance

    markdown = api.get(f"{path}/report.md")
    assert markdown.status_code == 200 and markdown.headers["content-type"] == "text/markdown; charset=utf-8"
    lines = markdown.text.splitlines()
    loser = 1 - winner
    # The winner first: its 4 seeds, mean ± std, the delta to the runner-up with its interval, p; the verdict.
    assert lines[4:7] == [
        f"| #{winner} \\[winner\\] | tricks.mixup\\_alpha=0.1 | 4 | 80.50 ± 0.58 | +20.00p \\[+19.00, +21.00\\] "
        f"vs #{loser} | p\\<0.001 |",
        f"| #{loser} | tricks.mixup\\_alpha=0.4 | 4 | 60.50 ± 0.58 | −20.00p \\[−21.00, −19.00\\] "
        f"vs #{winner} | p\\<0.001 |",
        "",
    ]
    assert lines[7].startswith(f"- Verdict: #{winner} (tricks.mixup\\_alpha=0.1) beats #{loser}")
    trials = {
        f"| #{winner} \\[best\\] | complete | tricks.mixup\\_alpha=0.1 | – | 2/2 | 80.50 |",
        f"| #{loser} | complete | tricks.mixup\\_alpha=0.4 | – | 2/2 | 60.50 |",
    }
    assert {line for line in lines if "| complete |" in line} == trials

    latex = api.get(f"{path}/report.tex")
    assert latex.status_code == 200 and latex.text.count("\\begin{tabular}") == 2
    assert "\\label{tab:sweep-" in latex.text and "{llrrrr}" in latex.text and "{llllrr}" in latex.text
    assert "tricks.mixup\\_alpha=0.1" in latex.text and "\\textpm{}" in latex.text


def test_a_sweeps_report_refuses_what_it_has_not(api: TestClient, finished: dict[str, Any]):
    assert api.get("/api/v1/sweeps/999999/report.html").status_code == 404
    assert api.get(f"/api/v1/sweeps/{finished['id']}/report.pdf").status_code == 422
    assert api.get(f"/api/v1/sweeps/{finished['id']}/figures/effects.svg").status_code == 422
    # A sweep with no trial yet: its report says there is no verdict, and why a figure is missing; that
    # figure is a 404 naming the ones there are, before any browser starts.
    fresh = api.post("/api/v1/sweeps", json=body(api, name="fresh")).json()
    path = f"/api/v1/sweeps/{fresh['id']}"
    markdown = api.get(f"{path}/report.md").text
    assert "- No verdict yet: the sweep has not ended." in markdown
    assert "Parallel coordinates: needs 1 complete trials; 0 so far" in api.get(f"{path}/report.html").text
    missing = api.get(f"{path}/figures/parallel.svg")
    assert missing.status_code == 404 and missing.json()["detail"].endswith("this report has history")
    api.post(f"{path}/cancel")
