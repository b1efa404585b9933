"""Organising runs and studies over the API, on SQLite and PostgreSQL: rename, notes, tags, archive,
changes to several runs at once, who changed what, deleting studies, and every bad input."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from testlib.processes import LOOPBACK

from backend.app import create_app
from backend.services import queue as jobs

GRID = {"name": "grid", "grid": {"switches": {"cosine": True}}, "seeds": 1}


@pytest.fixture
def client(make_settings, database_url):
    with TestClient(create_app(make_settings(database_url)), base_url=LOOPBACK) as client:
        yield client


def submit(client, data_root, name="run"):
    response = client.post("/api/v1/runs", json={"config": {"name": name, "data": {"root": str(data_root)}}})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def finish(client, run_id):
    with client.app.state.database.session(write=True) as session:
        claimed = jobs.claim_run(session=session, worker="test", stale_after_seconds=60)
        assert claimed is not None and claimed.run_id == run_id
        jobs.mark_cancelled(session=session, run_id=run_id, attempt=1)


def listed(client, **params):
    return [run["id"] for run in client.get("/api/v1/runs", params=params).json()["data"]]


def test_rename_notes_tags_and_archive_one_run(client, data_root):
    run_id = submit(client, data_root)
    fresh = client.get(f"/api/v1/runs/{run_id}").json()
    assert (fresh["notes"], fresh["tags"], fresh["archived_at"], fresh["updated_at"]) == ("", [], None, None)

    notes = "# Why\n\nCosine **without** warmup; see [the paper](https://arxiv.org/abs/1812.01187).\n<b>x</b>"
    changed = client.patch(
        f"/api/v1/runs/{run_id}", json={"name": "cosine, no warmup", "notes": notes, "add_tags": ["keep", "v2.1"]}
    )
    assert changed.status_code == 200, changed.text
    run = changed.json()
    assert (run["name"], run["notes"], run["tags"]) == ("cosine, no warmup", notes, ["keep", "v2.1"])
    assert run["updated_by"] is None and run["updated_at"] is not None  # an open server has no names
    assert '<a href="https://arxiv.org/abs/1812.01187">the paper</a>' in run["notes_html"]
    assert "<b>" not in run["notes_html"] and "&lt;b&gt;x&lt;/b&gt;" in run["notes_html"]
    # The queue's order is no change of what the run says: updated_at stays.
    assert client.patch(f"/api/v1/runs/{run_id}", json={"priority": 3}).json()["updated_at"] == run["updated_at"]

    run = client.patch(f"/api/v1/runs/{run_id}", json={"add_tags": ["keep", "best"], "remove_tags": ["v2.1"]}).json()
    assert run["tags"] == ["best", "keep"]
    assert client.get(f"/api/v1/runs/{run_id}").json()["tags"] == ["best", "keep"]

    # Archive: a queued run could still train unseen; a finished one hides from the default list.
    refused = client.patch(f"/api/v1/runs/{run_id}", json={"archived": True})
    assert refused.status_code == 409 and "only a finished run can be archived" in refused.json()["detail"]
    other = submit(client, data_root, name="other")
    finish(client, run_id)
    archived = client.patch(f"/api/v1/runs/{run_id}", json={"archived": True}).json()
    assert archived["archived_at"] is not None
    assert listed(client) == [other] and client.get("/api/v1/runs").json()["count"] == 1
    assert listed(client, archived="true") == [run_id]
    assert listed(client, archived="any") == [other, run_id]
    # The filter language reads tags and notes, and the archive applies to it and to the seed groups.
    assert listed(client, filter='tag = "keep"') == []
    assert listed(client, filter='tag = "keep" and notes ilike "%WITHOUT%"', archived="any") == [run_id]
    assert listed(client, filter='tag != "keep"', archived="any", sort="name") == [other]
    assert listed(client, filter="tag exists", archived="true") == [run_id]
    grouped = client.get("/api/v1/run-groups", params={"filter": "id > 0"}).json()
    assert [group["run_ids"] for group in grouped["data"]] == [[other]]
    grouped = client.get("/api/v1/run-groups", params={"archived": "true"}).json()
    assert [group["run_ids"] for group in grouped["data"]] == [[run_id]]
    assert client.get(f"/api/v1/runs/{run_id}").status_code == 200  # kept, still readable by id
    restored = client.patch(f"/api/v1/runs/{run_id}", json={"archived": False}).json()
    assert restored["archived_at"] is None and listed(client) == [other, run_id]
    # A run still renames, and is still a 409 for its priority, once it is no longer queued.
    assert client.patch(f"/api/v1/runs/{run_id}", json={"name": "renamed"}).json()["name"] == "renamed"
    assert client.patch(f"/api/v1/runs/{run_id}", json={"priority": 1}).status_code == 409


def test_a_change_to_several_runs_is_all_or_none(client, data_root):
    first, second, third = (submit(client, data_root, name=f"r{n}") for n in range(3))
    both = client.patch("/api/v1/runs", json={"run_ids": [first, second], "add_tags": ["ablation"], "name": "same"})
    assert both.status_code == 200, both.text
    assert [(r["id"], r["name"], r["tags"]) for r in both.json()["data"]] == [
        (first, "same", ["ablation"]),
        (second, "same", ["ablation"]),
    ]
    # One unknown run: a 404 naming it, and the others keep their tags.
    missing = client.patch("/api/v1/runs", json={"run_ids": [third, 999999], "add_tags": ["x"]})
    assert missing.status_code == 404 and missing.json()["detail"] == "run 999999 not found"
    assert client.get(f"/api/v1/runs/{third}").json()["tags"] == []
    # One run that cannot be archived: a 409 naming it, and the finished one stays listed.
    finish(client, first)
    refused = client.patch("/api/v1/runs", json={"run_ids": [first, second], "archived": True})
    assert refused.status_code == 409 and f"run {second} is queued" in refused.json()["detail"]
    assert listed(client) == [third, second, first]
    removed = client.patch("/api/v1/runs", json={"run_ids": [first, second], "remove_tags": ["ablation"]}).json()
    assert [r["tags"] for r in removed["data"]] == [[], []]
    # Deleting a tagged run takes its tags with it.
    client.patch(f"/api/v1/runs/{first}", json={"add_tags": ["gone"]})
    assert client.delete(f"/api/v1/runs/{first}").status_code == 204


CONTROL = "a\x07b"


@pytest.mark.parametrize(
    ("body", "loc", "message"),
    [
        ({"add_tags": ["Keep"]}, ["body", "add_tags", 0], "a tag is 1 to 32 of a-z"),
        ({"add_tags": ["has space"]}, ["body", "add_tags", 0], "a tag is 1 to 32 of a-z"),
        ({"add_tags": ["-lead"]}, ["body", "add_tags", 0], "a tag is 1 to 32 of a-z"),
        ({"add_tags": ["x" * 33]}, ["body", "add_tags", 0], "a tag is 1 to 32 of a-z"),
        ({"add_tags": [""]}, ["body", "add_tags", 0], "a tag is 1 to 32 of a-z"),
        ({"add_tags": ["<script>"]}, ["body", "add_tags", 0], "a tag is 1 to 32 of a-z"),
        ({"remove_tags": ["a\nb"]}, ["body", "remove_tags", 0], "a tag is 1 to 32 of a-z"),
        ({"add_tags": [f"t{n}" for n in range(33)]}, ["body", "add_tags"], "at most 32"),
        ({"add_tags": "keep"}, ["body", "add_tags"], "valid list"),
        ({"add_tags": ["a"], "remove_tags": ["a"]}, ["body"], "tag 'a' is both added and removed"),
        ({"name": ""}, ["body", "name"], "at least 1 character"),
        ({"name": "x" * 201}, ["body", "name"], "at most 200 characters"),
        ({"name": CONTROL}, ["body", "name"], "control characters"),
        ({"notes": "x" * 20_001}, ["body", "notes"], "at most 20000 characters"),
        ({"notes": "ok\n\tthen \x1b[31m"}, ["body", "notes"], "control characters other than line breaks"),
        ({"archived": "yes"}, ["body", "archived"], "valid boolean"),
        ({"archived": 1}, ["body", "archived"], "valid boolean"),
        ({}, ["body"], "nothing to change"),
        ({"name": None, "add_tags": []}, ["body"], "nothing to change"),
        ({"tags": ["keep"]}, ["body", "tags"], "unknown key"),
    ],
)
def test_every_bad_change_is_a_422_naming_its_field(client, data_root, body, loc, message):
    run_id = submit(client, data_root)
    response = client.patch(f"/api/v1/runs/{run_id}", json=body)
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"] == loc and message in error["msg"]
    run = client.get(f"/api/v1/runs/{run_id}").json()
    assert (run["name"], run["tags"], run["updated_at"]) == ("run", [], None)


def test_bulk_bad_inputs_and_a_run_full_of_tags(client, data_root):
    run_id = submit(client, data_root)
    for body, loc in (
        ({"run_ids": [], "add_tags": ["a"]}, ["body", "run_ids"]),
        ({"run_ids": [0], "add_tags": ["a"]}, ["body", "run_ids", 0]),
        ({"run_ids": [run_id]}, ["body"]),
        ({"add_tags": ["a"]}, ["body", "run_ids"]),
    ):
        response = client.patch("/api/v1/runs", json=body)
        assert response.status_code == 422 and [e["loc"] for e in response.json()["detail"]] == [loc], body
    client.patch(f"/api/v1/runs/{run_id}", json={"add_tags": [f"t{n:02}" for n in range(32)]})
    full = client.patch(f"/api/v1/runs/{run_id}", json={"add_tags": ["one-more"]})
    assert full.status_code == 422
    assert full.json()["detail"][0]["msg"] == f"run {run_id} would have 33 tags; at most 32"
    assert len(client.get(f"/api/v1/runs/{run_id}").json()["tags"]) == 32
    assert client.get("/api/v1/runs", params={"archived": "maybe"}).status_code == 422


def test_rename_and_delete_a_study(client, data_root):
    study = client.post("/api/v1/studies", json={**GRID, "overrides": {"data.root": str(data_root)}})
    assert study.status_code == 201, study.text
    study = study.json()
    runs = sorted(run["run_id"] for group in study["groups"] for run in group["runs"])
    assert len(runs) == 2 and study["updated_by"] is None and study["updated_at"] is None
    renamed = client.patch(f"/api/v1/studies/{study['id']}", json={"name": "cosine or not"})
    assert renamed.status_code == 200 and renamed.json()["name"] == "cosine or not"
    assert renamed.json()["updated_at"] is not None
    assert client.patch(f"/api/v1/studies/{study['id']}", json={"name": "a\x00b"}).status_code == 422
    assert client.patch("/api/v1/studies/999999", json={"name": "x"}).status_code == 404

    # A study whose run trains is not deleted: cancel it first.
    with client.app.state.database.session(write=True) as session:
        jobs.claim_run(session=session, worker="test", stale_after_seconds=60)
    busy = client.delete(f"/api/v1/studies/{study['id']}")
    assert busy.status_code == 409 and "is running; cancel it first" in busy.json()["detail"]
    assert client.get(f"/api/v1/runs/{runs[0]}").status_code == 200
    client.post(f"/api/v1/studies/{study['id']}/cancel")
    with client.app.state.database.session(write=True) as session:
        jobs.mark_cancelled(session=session, run_id=runs[0], attempt=1)
    assert client.delete(f"/api/v1/studies/{study['id']}").status_code == 204
    assert client.get(f"/api/v1/studies/{study['id']}").status_code == 404
    assert [client.get(f"/api/v1/runs/{run_id}").status_code for run_id in runs] == [404, 404]
    assert client.delete(f"/api/v1/studies/{study['id']}").status_code == 404


def test_deleting_a_study_keeps_the_runs_a_later_study_reused(client, data_root):
    body = {**GRID, "overrides": {"data.root": str(data_root)}}
    first = client.post("/api/v1/studies", json=body).json()
    made = sorted(run["run_id"] for group in first["groups"] for run in group["runs"])
    with client.app.state.database.session(write=True) as session:
        for run_id in made:
            claimed = jobs.claim_run(session=session, worker="test", stale_after_seconds=60)
            assert claimed is not None and claimed.run_id == run_id
            jobs.succeed(session=session, run_id=claimed.run_id, attempt=1, result={})
    second = client.post("/api/v1/studies", json={**body, "name": "again"}).json()
    assert all(run["reused"] for group in second["groups"] for run in group["runs"])

    assert client.delete(f"/api/v1/studies/{first['id']}").status_code == 204
    kept = [client.get(f"/api/v1/runs/{run_id}").json() for run_id in made]
    assert [run["study_id"] for run in kept] == [second["id"]] * len(made)
    assert client.get(f"/api/v1/studies/{second['id']}/table").status_code == 200
    assert client.delete(f"/api/v1/studies/{second['id']}").status_code == 204
    assert [client.get(f"/api/v1/runs/{run_id}").status_code for run_id in made] == [404] * len(made)


def test_deleting_a_study_can_keep_its_runs(client, data_root):
    study = client.post("/api/v1/studies", json={**GRID, "overrides": {"data.root": str(data_root)}})
    assert study.status_code == 201, study.text
    study = study.json()
    with client.app.state.database.session(write=True) as session:
        jobs.claim_run(session=session, worker="test", stale_after_seconds=60)
    assert client.delete(f"/api/v1/studies/{study['id']}", params={"keep_runs": "true"}).status_code == 204
    kept = client.get("/api/v1/runs").json()["data"]
    assert len(kept) == 2 and {run["study_id"] for run in kept} == {None}
    assert "running" in {run["status"] for run in kept}
