"""Same-origin writes: which state-changing requests are refused, and which go on."""

import pytest

from backend.security.origin import origin_of, refusal

OWN = "http://127.0.0.1:8000"


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("http://127.0.0.1:8000", OWN),
        ("http://127.0.0.1:8000/runs/1?x=1", OWN),
        ("HTTP://LOCALHOST:80/", "http://localhost"),
        ("https://gpu.lab:443", "https://gpu.lab"),
        ("http://[::1]:8000", "http://[::1]:8000"),
        ("null", None),
        ("file:///etc/passwd", None),
        ("http://host:99999", None),
    ],
)
def test_origin_of(url, origin):
    assert origin_of(url) == origin


def check(method="POST", origin=None, referer=None, fetch_site=None, by_cookie=False):
    return refusal(
        method=method, own_origin=OWN, origin=origin, referer=referer, fetch_site=fetch_site, by_cookie=by_cookie
    )


def test_reads_are_never_refused():
    assert check("GET", origin="http://evil.example", by_cookie=True) is None
    assert check("HEAD", fetch_site="cross-site") is None


def test_writes_from_another_origin_are_refused():
    assert "comes from http://evil.example" in check(origin="http://evil.example")
    assert check(origin="http://127.0.0.1:9999") is not None  # same site, another port: another origin
    assert check(origin="null") is not None  # a sandboxed frame or a file: page
    assert "Referer" in check(referer="http://evil.example/attack.html")
    assert "Sec-Fetch-Site: cross-site" in check(fetch_site="cross-site")
    assert check("DELETE", origin="http://localhost:8000") is not None  # another name of the same server


def test_writes_from_own_pages_and_scripts_go_on():
    assert check(origin=OWN, fetch_site="same-origin", by_cookie=True) is None
    assert check(referer=f"{OWN}/runs/1", by_cookie=True) is None
    assert check() is None  # curl, tricklab submit: judged by their token
    assert check("DELETE") is None


def test_a_cookie_without_origin_or_referer_is_refused():
    assert "neither Origin nor Referer" in check(by_cookie=True)
