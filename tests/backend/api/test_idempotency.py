"""Idempotency-Key on POST /runs and /studies: a retried create returns the first result, on a real
server and a real database of each kind, including when the retries arrive all at once."""

from __future__ import annotations

import threading
import uuid

import httpx
import pytest
from sqlalchemy import func, select

from backend.db import Database
from backend.models import IdempotencyKey, Run, Study

TINY_STUDY = {"model.arch": "resnet18", "model.pretrained": False, "data.image_size": 32, "epochs": 1}


@pytest.fixture
def server(make_settings, database_url, live_server):
    settings = make_settings(database_url)
    return live_server(settings), Database(settings.database_url)


def count(database: Database, model: type) -> int:
    with database.session() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def post(base: str, path: str, body: dict, key: str | None) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key else {}
    return httpx.post(f"{base}/api/v1{path}", json=body, headers=headers, timeout=60)


def test_a_retried_create_returns_the_first_run(server, data_root):
    base, database = server
    body = {"config": {"name": "once", "data": {"root": str(data_root)}}, "priority": 3}
    key = str(uuid.uuid4())
    first = post(base, "/runs", body, key)
    again = post(base, "/runs", body, key)
    assert first.status_code == again.status_code == 201, again.text
    assert again.json()["id"] == first.json()["id"] and again.json()["priority"] == 3
    assert count(database, Run) == 1
    other = post(base, "/runs", body, str(uuid.uuid4()))
    no_key = post(base, "/runs", body, None)
    assert len({first.json()["id"], other.json()["id"], no_key.json()["id"]}) == 3
    assert count(database, Run) == 3 and count(database, IdempotencyKey) == 2
    database.dispose()


def test_a_key_sent_with_another_body_is_refused(server, data_root):
    base, database = server
    key = "retry-me"
    assert post(base, "/runs", {"config": {"data": {"root": str(data_root)}}}, key).status_code == 201
    changed = post(base, "/runs", {"config": {"data": {"root": str(data_root)}, "epochs": 3}}, key)
    assert changed.status_code == 422
    (error,) = changed.json()["detail"]
    assert error["loc"] == ["header", "Idempotency-Key"] and "another request" in error["msg"]
    assert count(database, Run) == 1
    database.dispose()


@pytest.mark.parametrize("key", ["", "has space", "x" * 256, "caf\u00e9"])
def test_a_malformed_key_is_a_422(server, data_root, key):
    base, database = server
    answer = httpx.post(
        f"{base}/api/v1/runs",
        json={"config": {"data": {"root": str(data_root)}}},
        headers={"Idempotency-Key": key.encode()},  # bytes: httpx sends text headers as ASCII only
        timeout=30,
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"][0]["loc"] == ["header", "Idempotency-Key"]
    assert count(database, Run) == 0
    database.dispose()


def test_retries_arriving_together_store_one_run(server, data_root):
    base, database = server
    body = {"config": {"name": "race", "data": {"root": str(data_root)}}}
    key = str(uuid.uuid4())
    answers: list[httpx.Response] = []
    start = threading.Barrier(8)

    def send() -> None:
        start.wait()
        answers.append(post(base, "/runs", body, key))

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [answer.status_code for answer in answers] == [201] * 8, [answer.text for answer in answers]
    assert len({answer.json()["id"] for answer in answers}) == 1
    assert count(database, Run) == 1
    database.dispose()


def test_a_replay_of_a_deleted_run_says_so(server, data_root):
    base, database = server
    body = {"config": {"data": {"root": str(data_root)}}}
    run = post(base, "/runs", body, "gone").json()
    assert httpx.delete(f"{base}/api/v1/runs/{run['id']}", timeout=30).status_code == 204
    replay = post(base, "/runs", body, "gone")
    assert replay.status_code == 409 and "was deleted" in replay.json()["detail"]
    database.dispose()


def test_a_retried_study_returns_the_first_study(server, data_root):
    base, database = server
    body = {
        "name": "grid once",
        "grid": {"switches": {"cosine": True}},
        "seeds": 2,
        "overrides": {**TINY_STUDY, "data.root": str(data_root)},
    }
    first = post(base, "/studies", body, "study-key")
    runs = count(database, Run)
    again = post(base, "/studies", body, "study-key")
    assert first.status_code == again.status_code == 201, again.text
    assert again.json()["id"] == first.json()["id"]
    assert count(database, Study) == 1 and count(database, Run) == runs == 4
    database.dispose()


def test_a_study_that_fails_stores_nothing(server, data_root):
    base, database = server
    body = {"name": "bad root", "preset": "seed", "overrides": {**TINY_STUDY, "data.root": str(data_root / "none")}}
    answer = post(base, "/studies", body, "bad")
    assert answer.status_code == 422
    assert count(database, Study) == count(database, Run) == count(database, IdempotencyKey) == 0
    database.dispose()
