"""The security headers every response carries: the pages run only the app's own scripts, load
nothing from elsewhere, and cannot be framed."""

from __future__ import annotations

# One policy for every page. Scripts: only files the app serves (no inline script, no eval). Styles
# may be inline: Plotly writes its own style rules into a <style> element and styles its elements.
# Images may be blob: URLs: a chart's camera button draws the chart's SVG, loaded from a blob: URL
# the page made itself, onto a canvas (Plotly's toImage); without it saving a chart fails.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
)


def with_security_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``headers`` (raw ASGI pairs) with each security header the response did not set itself."""
    present = {name.lower() for name, _value in headers}
    return [*headers, *((name, value) for name, value in SECURITY_HEADERS if name not in present)]
