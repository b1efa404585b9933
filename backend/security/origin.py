"""Same-origin writes: a state-changing request that a page of another origin could have sent is refused.

Browsers send ``Origin`` on every cross-origin POST, even a "simple" one that needs no preflight (a
form, or a fetch without a body), and on same-origin POSTs too; ``Referer`` goes along on same-origin
requests under our ``Referrer-Policy: same-origin``; ``Sec-Fetch-Site`` names the relation outright.
A script (curl, ``tricklab submit``) sends none of them and is judged by its token alone.
"""

from __future__ import annotations

from urllib.parse import urlsplit

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str) -> str | None:
    """``scheme://host[:port]`` of a URL, with the scheme's default port left out; None for an opaque
    origin (``null``) or anything that is not an http(s) URL."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}" + (f":{port}" if port not in (None, _DEFAULT_PORTS[parts.scheme]) else "")


def refusal(
    *,
    method: str,
    own_origin: str,
    origin: str | None,
    referer: str | None,
    fetch_site: str | None,
    by_cookie: bool,
) -> str | None:
    """Why this request must be refused with 403, or None when it may go on."""
    if method.upper() in SAFE_METHODS:
        return None
    if origin is not None:
        if origin_of(origin) != own_origin:
            return f"cross-origin request refused: it comes from {origin}, not from {own_origin}"
    elif referer is not None:
        if origin_of(referer) != own_origin:
            return f"cross-origin request refused: its Referer is not a page of {own_origin}"
    elif by_cookie:
        # Our own pages always send one of the two; a request without either cannot show where it
        # comes from, and a logged-in browser's cookie must not vouch for it.
        return (
            "a request with a log-in cookie but neither Origin nor Referer is refused; "
            "scripts send Authorization: Bearer TOKEN instead of the cookie"
        )
    if fetch_site is not None and fetch_site.lower() not in ("same-origin", "none"):
        return f"cross-site request refused (Sec-Fetch-Site: {fetch_site})"
    return None
