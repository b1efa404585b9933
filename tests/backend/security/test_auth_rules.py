"""The small rules of authentication: which paths are open, how a bearer header reads, where a
log-in may send the browser next."""

import pytest

from backend.security.auth import bearer_secret, is_open_path, safe_next


def test_only_health_login_and_static_files_are_open():
    assert all(map(is_open_path, ("/api/v1/health", "/login", "/logout", "/static/app.css", "/vendor/plotly.min.js")))
    assert not any(map(is_open_path, ("/", "/api/v1/runs", "/openapi.json", "/docs", "/api/v1/health/x", "/loginx")))


@pytest.mark.parametrize(
    ("header", "secret"),
    [
        ("Bearer tlab_abc", "tlab_abc"),
        ("bearer   tlab_abc ", "tlab_abc"),
        ("Bearer", None),  # curl -H "Authorization: Bearer $TRICKLAB_TOKEN" with the variable unset
        ("Bearer ", None),
        ("Basic dXNlcjpwYXNz", None),
        (None, None),
    ],
)
def test_bearer_header(header, secret):
    assert bearer_secret(header) == secret


@pytest.mark.parametrize(
    ("path", "target"),
    [
        ("/runs/3?x=1", "/runs/3?x=1"),
        ("/", "/"),
        (None, "/"),
        ("https://evil.example/", "/"),
        ("//evil.example/", "/"),
        ("/\\evil.example/", "/"),
        ("/\t/evil.example/", "/"),
        ("/login?next=/", "/"),
        ("/logout", "/"),
    ],
)
def test_after_log_in_the_browser_stays_on_this_server(path, target):
    assert safe_next(path) == target
