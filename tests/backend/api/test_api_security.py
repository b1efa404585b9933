"""The security checks against a real uvicorn server: cross-origin writes (403), foreign Host headers
(400), tokens and log-in cookies (401, or the log-in page), the creator of runs and studies, and the
security headers on every response; on SQLite and PostgreSQL where tokens live in the database."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
import pytest

from backend.db import Database
from backend.hosts import machine_names
from backend.security.auth import SESSION_COOKIE
from backend.security.headers import CONTENT_SECURITY_POLICY
from backend.services import tokens
from backend.settings import Settings

TINY = {"name": "tiny", "epochs": 1, "model": {"arch": "resnet18", "pretrained": False}}
EVIL = "http://evil.example"


@pytest.fixture
def start(make_settings, make_database, live_server, data_root) -> Callable[..., tuple[str, Settings]]:
    """A live server on the given database, with settings overrides; returns its URL and settings."""

    def run(database_url: str, **overrides) -> tuple[str, Settings]:
        settings = make_settings(database_url, **overrides)
        make_database(settings)
        return live_server(settings), settings

    return run


@dataclass
class TokenAdmin:
    """What `tricklab token create|revoke NAME` does, on the server's database."""

    database: Database

    def create(self, name: str) -> str:
        with self.database.session(write=True) as session:
            return tokens.create_token(session=session, name=name)

    def revoke(self, name: str) -> int:
        with self.database.session(write=True) as session:
            return tokens.revoke_token(session=session, name=name)


@pytest.fixture
def admin(make_database) -> Callable[[Settings], TokenAdmin]:
    return lambda settings: TokenAdmin(make_database(settings))


def config(data_root, **changes) -> dict:
    return {"config": {**TINY, "data": {"root": str(data_root), "image_size": 32}, **changes}}


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def test_an_open_server_refuses_cross_origin_writes(start, sqlite_url, data_root):
    url, _ = start(sqlite_url)
    run = httpx.post(f"{url}/api/v1/runs", json=config(data_root))
    assert run.status_code == 201 and run.json()["created_by"] is None
    cancel = f"{url}/api/v1/runs/{run.json()['id']}/cancel"
    port = urlsplit(url).port

    # The simple request a foreign page sends without a preflight: a POST with no body.
    attack = httpx.post(cancel, headers={"Origin": EVIL, "Content-Type": "text/plain"})
    assert attack.status_code == 403
    assert attack.json()["detail"] == f"cross-origin request refused: it comes from {EVIL}, not from {url}"
    for headers in (
        {"Origin": f"http://127.0.0.1:{port + 1}"},  # another server on this machine: same site, not same origin
        {"Origin": "null"},
        {"Referer": f"{EVIL}/attack.html"},
        {"Sec-Fetch-Site": "cross-site"},
    ):
        assert httpx.post(cancel, headers=headers).status_code == 403, headers
    assert httpx.delete(f"{url}/api/v1/runs/{run.json()['id']}", headers={"Origin": EVIL}).status_code == 403
    assert httpx.get(f"{url}/api/v1/runs/{run.json()['id']}").json()["status"] == "queued"

    # The dashboard's own pages, and scripts without any of these headers, go on.
    same = httpx.post(cancel, headers={"Origin": url, "Sec-Fetch-Site": "same-origin"})
    assert same.status_code == 200 and same.json()["status"] == "cancelled"
    # curl -H "Authorization: Bearer $TRICKLAB_TOKEN" with the variable unset sends a bare scheme: no token.
    retry = httpx.post(f"{url}/api/v1/runs/{run.json()['id']}/retry", headers={"Authorization": "Bearer"})
    assert retry.status_code == 200


def test_a_foreign_host_is_refused(start, sqlite_url):
    url, _ = start(sqlite_url)
    port = urlsplit(url).port
    # A DNS-rebinding page reaches this server under its own name.
    rebound = httpx.get(f"{url}/api/v1/runs", headers={"Host": f"evil.example:{port}"})
    assert rebound.status_code == 400
    assert rebound.json()["detail"].startswith("Host 'evil.example:") and "TRICKLAB_ALLOWED_HOSTS" in rebound.text
    assert httpx.post(f"{url}/api/v1/runs", json={}, headers={"Host": "evil.example"}).status_code == 400
    assert httpx.get(f"{url}/", headers={"Host": "evil.example"}).status_code == 400
    for host in (f"localhost:{port}", f"[::1]:{port}", f"127.0.0.1:{port}"):
        assert httpx.get(f"{url}/api/v1/runs", headers={"Host": host}).status_code == 200, host


def test_every_response_carries_the_security_headers(start, sqlite_url):
    url, _ = start(sqlite_url)
    responses = [
        httpx.get(f"{url}/"),
        httpx.get(f"{url}/api/v1/runs"),
        httpx.get(f"{url}/static/app.css"),
        httpx.get(f"{url}/api/v1/runs/12345"),
        httpx.get(f"{url}/api/v1/runs", headers={"Host": "evil.example"}),
        httpx.post(f"{url}/api/v1/runs/1/cancel", headers={"Origin": EVIL}),
    ]
    assert [response.status_code for response in responses] == [200, 200, 200, 404, 400, 403]
    for response in responses:
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "same-origin"
    assert "script-src 'self';" in CONTENT_SECURITY_POLICY and "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY


def test_once_a_token_exists_every_request_needs_one(start, admin, database_url, data_root):
    url, settings = start(database_url)
    tokens_of = admin(settings)
    secret = tokens_of.create("alice")

    refused = httpx.get(f"{url}/api/v1/runs")
    assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
    assert refused.json()["detail"] == "a token is needed: send Authorization: Bearer TOKEN, or log in at /login"
    assert httpx.post(f"{url}/api/v1/runs", json=config(data_root)).status_code == 401
    assert httpx.get(f"{url}/openapi.json").status_code == 401
    page = httpx.get(f"{url}/runs/5?x=1", headers={"Accept": "text/html"})
    assert page.status_code == 303 and page.headers["location"] == "/login?next=%2Fruns%2F5%3Fx%3D1"
    # The only open paths: health, the log-in page and the static files.
    assert httpx.get(f"{url}/api/v1/health").json() == {"status": "ok"}
    assert httpx.get(f"{url}/login").status_code == 200
    assert httpx.get(f"{url}/static/js/common.js").status_code == 200
    with httpx.stream("GET", f"{url}/vendor/plotly.min.js") as plotly:
        assert plotly.status_code == 200

    assert httpx.get(f"{url}/api/v1/runs", headers=bearer(secret + "x")).json() == {
        "detail": "invalid or revoked token"
    }
    assert httpx.get(f"{url}/api/v1/runs", headers={"Authorization": f"Basic {secret}"}).status_code == 401
    schema = httpx.get(f"{url}/openapi.json", headers=bearer(secret)).json()
    assert {"400", "401", "403"} <= set(schema["paths"]["/api/v1/runs/{run_id}/cancel"]["post"]["responses"])
    assert set(schema["paths"]["/api/v1/health"]["get"]["responses"]) == {"200", "400"}
    run = httpx.post(f"{url}/api/v1/runs", json=config(data_root), headers=bearer(secret))
    assert run.status_code == 201 and run.json()["created_by"] == "alice"
    with httpx.stream("GET", f"{url}/api/v1/runs/{run.json()['id']}/events", headers=bearer(secret)) as events:
        assert events.status_code == 200 and events.headers["content-type"].startswith("text/event-stream")
    # A token does not make a foreign page's request acceptable.
    foreign = httpx.post(f"{url}/api/v1/runs", json=config(data_root), headers={**bearer(secret), "Origin": EVIL})
    assert foreign.status_code == 403

    bob = tokens_of.create("bob")
    clone = httpx.post(f"{url}/api/v1/runs/{run.json()['id']}/clone", json={"overrides": {}}, headers=bearer(bob))
    assert clone.status_code == 201 and clone.json()["created_by"] == "bob"
    study = httpx.post(
        f"{url}/api/v1/studies",
        json={
            "name": "grid",
            "grid": {"switches": {"cosine": True}},
            "overrides": {"data.root": str(data_root), "model.pretrained": False},
        },
        headers=bearer(bob),
        timeout=30,
    )
    assert study.status_code == 201 and study.json()["created_by"] == "bob"
    mine = httpx.get(f"{url}/api/v1/runs", params={"created_by": "alice"}, headers=bearer(bob)).json()
    assert [(r["id"], r["created_by"]) for r in mine["data"]] == [(run.json()["id"], "alice")]
    assert httpx.get(f"{url}/api/v1/runs", params={"created_by": "bob"}, headers=bearer(bob)).json()["count"] == 3
    # Who changed what: the token's name, as for who created it.
    renamed = httpx.patch(f"{url}/api/v1/runs/{run.json()['id']}", json={"add_tags": ["keep"]}, headers=bearer(bob))
    assert (renamed.json()["created_by"], renamed.json()["updated_by"], renamed.json()["tags"]) == (
        "alice",
        "bob",
        ["keep"],
    )
    study_id = study.json()["id"]
    renamed = httpx.patch(f"{url}/api/v1/studies/{study_id}", json={"name": "grid 2"}, headers=bearer(secret))
    assert (renamed.json()["name"], renamed.json()["updated_by"]) == ("grid 2", "alice")

    tokens_of.revoke("alice")
    assert httpx.get(f"{url}/api/v1/runs", headers=bearer(secret)).json() == {"detail": "invalid or revoked token"}
    assert httpx.get(f"{url}/api/v1/runs", headers=bearer(bob)).status_code == 200


def cookie(value: str) -> dict[str, str]:
    return {"Cookie": f"{SESSION_COOKIE}={value}"}


def log_in(url: str, secret: str, next_path: str = "/") -> httpx.Response:
    return httpx.post(f"{url}/login", data={"token": secret, "next": next_path}, headers={"Origin": url})


def test_a_browser_logs_in_with_a_token_and_out_again(start, admin, database_url, data_root):
    url, settings = start(database_url)
    tokens_of = admin(settings)
    secret = tokens_of.create("alice")

    wrong = log_in(url, "tlab_not-a-token")
    assert wrong.status_code == 401 and "That token is not valid" in wrong.text and "set-cookie" not in wrong.headers
    assert log_in(url, secret, "//evil.example/").headers["location"] == "/"  # never off to another site
    flood = httpx.post(f"{url}/login", content="&".join(f"f{i}=x" for i in range(50)), headers={"Origin": url})
    assert flood.status_code == 401 and "That token is not valid" in flood.text
    answer = log_in(url, secret, "/runs/7")
    assert answer.status_code == 303 and answer.headers["location"] == "/runs/7"
    set_cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in set_cookie and "SameSite=strict" in set_cookie and "Path=/" in set_cookie
    assert f"Max-Age={7 * 24 * 3600}" in set_cookie
    session = answer.cookies[SESSION_COOKIE]
    assert secret not in set_cookie  # the cookie holds a session secret of its own

    assert httpx.get(f"{url}/api/v1/runs", headers=cookie(session)).status_code == 200
    assert 'Logged in as <strong id="account-name">alice</strong>' in httpx.get(f"{url}/", headers=cookie(session)).text
    # A cookie alone cannot vouch for a write: the request must show it comes from our own page.
    no_origin = httpx.post(f"{url}/api/v1/runs", json=config(data_root), headers=cookie(session))
    assert no_origin.status_code == 403 and "neither Origin nor Referer" in no_origin.text
    made = httpx.post(f"{url}/api/v1/runs", json=config(data_root), headers={**cookie(session), "Origin": url})
    assert made.status_code == 201 and made.json()["created_by"] == "alice"
    referred = httpx.post(
        f"{url}/api/v1/runs/{made.json()['id']}/cancel", headers={**cookie(session), "Referer": f"{url}/"}
    )
    assert referred.status_code == 200

    out = httpx.post(f"{url}/logout", headers={**cookie(session), "Origin": url})
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert f'{SESSION_COOKIE}=""' in out.headers["set-cookie"] and "Max-Age=0" in out.headers["set-cookie"]
    assert httpx.get(f"{url}/api/v1/runs", headers=cookie(session)).status_code == 401
    assert httpx.post(f"{url}/logout", headers={"Origin": EVIL}).status_code == 403  # no log-out from elsewhere

    # Revoking the token ends its sessions; a page then clears the dead cookie on the way to the log-in.
    again = log_in(url, secret).cookies[SESSION_COOKIE]
    assert httpx.get(f"{url}/api/v1/runs", headers=cookie(again)).status_code == 200
    assert tokens_of.revoke("alice") == 2  # this one and the log-in sent to "/" above
    page = httpx.get(f"{url}/", headers={**cookie(again), "Accept": "text/html"})
    assert page.status_code == 303 and page.headers["location"] == "/login?next=%2F"
    assert f'{SESSION_COOKIE}=""' in page.headers["set-cookie"]
    # With no active token left the server stays closed: a leaked token's revocation opens nothing.
    closed = httpx.get(f"{url}/api/v1/runs")
    assert closed.status_code == 401 and "every token of this server was revoked" in closed.json()["detail"]


def test_beyond_loopback_the_machine_names_are_answered_and_a_token_is_needed(start, admin, sqlite_url):
    url, settings = start(sqlite_url, bind_host="0.0.0.0")
    port = urlsplit(url).port
    name = sorted(machine_names())[0]
    runs = f"{url}/api/v1/runs"
    assert httpx.get(runs, headers={"Host": f"evil.example:{port}"}).status_code == 400
    # No token yet (a token revoked while serving, or a test's create_app): nothing is served.
    for host in (f"{name}:{port}", f"10.1.2.3:{port}", f"localhost:{port}"):
        refused = httpx.get(runs, headers={"Host": host})
        assert refused.status_code == 401 and "tricklab token create NAME" in refused.json()["detail"], host
    assert httpx.get(f"{url}/api/v1/health", headers={"Host": f"{name}:{port}"}).status_code == 200

    secret = admin(settings).create("alice")
    assert httpx.get(runs, headers={"Host": f"{name}:{port}", **bearer(secret)}).status_code == 200

    open_url, _ = start(sqlite_url, bind_host="0.0.0.0", insecure_no_auth=True)
    # --insecure-no-auth serves without a token only while none exists; this database has one now.
    assert httpx.get(f"{open_url}/api/v1/runs").status_code == 401


def test_insecure_no_auth_serves_beyond_loopback_while_no_token_exists(start, sqlite_url):
    url, _ = start(sqlite_url, bind_host="0.0.0.0", insecure_no_auth=True)
    assert httpx.get(f"{url}/api/v1/runs").status_code == 200
    assert httpx.post(f"{url}/api/v1/runs/1/cancel", headers={"Origin": EVIL}).status_code == 403
