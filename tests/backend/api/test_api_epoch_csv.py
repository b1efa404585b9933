"""Epoch rows as CSV in long format, for a comparison's runs, a study and the runs list's filters, on
SQLite and PostgreSQL: one line per run and epoch, each figure a column, names kept from running as
formulas."""

from __future__ import annotations

import csv
import io

import pytest
from fastapi.testclient import TestClient
from testlib.processes import LOOPBACK

from backend.app import create_app
from backend.services import queue as jobs
from trainer.protocol import EPOCH_FIELDS


@pytest.fixture
def client(make_settings, database_url):
    with TestClient(create_app(make_settings(database_url)), base_url=LOOPBACK) as client:
        yield client


def train_next(client, epochs: int) -> int:
    """Claim the next queued run and store ``epochs`` epoch rows, as a worker would; its id."""
    db = client.app.state.database
    with db.session(write=True) as session:
        claim = jobs.claim_run(session=session, worker="test", stale_after_seconds=60)
    assert claim is not None
    with db.session(write=True) as session:
        for epoch in range(1, epochs + 1):
            row = {"epoch": epoch, "train_loss": 1.0 / epoch, "valid_top1": 10.0 * epoch, "lr": 0.1, "seconds": 2}
            jobs.store_epoch(session=session, run_id=claim.run_id, attempt=claim.attempt, row=row)
    return claim.run_id


def rows(answer) -> list[dict[str, str]]:
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(answer.text)))


def submit(client: TestClient, data_root, name: str) -> int:
    answer = client.post("/api/v1/runs", json={"config": {"name": name, "epochs": 3, "data": {"root": str(data_root)}}})
    assert answer.status_code == 201, answer.text
    return answer.json()["id"]


def test_a_comparison_and_the_filtered_list_download_their_epochs_long(client, data_root):
    first = submit(client, data_root, '=HYPERLINK("http://x")')
    second = submit(client, data_root, "plain")
    assert train_next(client, 3) == first and train_next(client, 2) == second

    compared = rows(client.get("/api/v1/compare/epochs.csv", params={"run_ids": f"{second},{first}"}))
    assert list(compared[0]) == ["run_id", "run_name", "study_id", "config_hash", "epoch", "attempt", *EPOCH_FIELDS]
    assert [(row["run_id"], row["epoch"]) for row in compared] == [
        (str(second), "1"),
        (str(second), "2"),
        (str(first), "1"),
        (str(first), "2"),
        (str(first), "3"),
    ]
    assert compared[4]["valid_top1"] == "30.0" and compared[4]["valid_loss"] == ""
    assert compared[2]["run_name"] == '\'=HYPERLINK("http://x")'  # text, never a formula

    listed = rows(client.get("/api/v1/epochs.csv", params={"name": "plain"}))
    assert {row["run_id"] for row in listed} == {str(second)} and len(listed) == 2
    everything = rows(client.get("/api/v1/epochs.csv", params={"status": "running"}))
    assert len(everything) == 5
    # The runs list's filter language, through the same listing as GET /runs.
    filtered = rows(client.get("/api/v1/epochs.csv", params={"filter": f"id = {first}", "archived": "any"}))
    assert {row["run_id"] for row in filtered} == {str(first)} and len(filtered) == 3
    bad = client.get("/api/v1/epochs.csv", params={"filter": "id >"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "filter"]

    missing = client.get("/api/v1/compare/epochs.csv", params={"run_ids": f"{first},999"})
    assert missing.status_code == 404 and missing.json() == {"detail": "run 999 not found"}
    unknown = client.get("/api/v1/epochs.csv", params={"sort": "name"})
    assert unknown.status_code == 422 and unknown.json()["detail"][0]["loc"] == ["query", "sort"]


def test_a_study_downloads_the_epochs_of_its_runs(client, data_root):
    body = {
        "name": "csv",
        "grid": {"switches": {"cosine": True}},
        "seeds": 1,
        "overrides": {"epochs": 2, "data.root": str(data_root)},
    }
    answer = client.post("/api/v1/studies", json=body)
    assert answer.status_code == 201, answer.text
    study = answer.json()
    trained = {train_next(client, 2), train_next(client, 1)}
    lines = rows(client.get(f"/api/v1/studies/{study['id']}/epochs.csv"))
    assert {int(row["run_id"]) for row in lines} == trained and len(lines) == 3
    assert {row["study_id"] for row in lines} == {str(study["id"])}
    assert client.get("/api/v1/studies/999/epochs.csv").status_code == 404
