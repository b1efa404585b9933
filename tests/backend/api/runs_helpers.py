"""A run submitted through the API and claimed as a worker claims it, for the runs API's tests."""

from backend.services import queue as jobs


def submit(client, data_root, **config):
    config.setdefault("data", {"root": str(data_root)})
    response = client.post("/api/v1/runs", json={"config": config})
    assert response.status_code == 201, response.text
    return response.json()


def claim(db):
    with db.session(write=True) as session:
        return jobs.claim_run(session=session, worker="test", stale_after_seconds=60)
