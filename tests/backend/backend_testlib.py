"""Helpers shared by the backend tests (a module of its own: every test folder has a "conftest")."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import EventSource

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition: Callable[[], Any], *, timeout: float, what: str, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def iter_events(lines: Iterable[str]) -> Iterator[tuple[str, str, Any]]:
    """(event, id, data) for each message in the lines of a Server-Sent Events response, as it arrives.

    httpx-sse parses them. It reads from a response, so the lines are handed to it as the body of
    one: the caller keeps the lines, and can read the retry field and the keep-alive comments
    (which a parser drops) from the same stream.
    """
    body = (f"{line}\n".encode() for line in lines)
    source = EventSource(httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body))
    for event in source.iter_sse():
        if event.data:  # the retry field alone is an event without data
            yield event.event, event.id, event.json()


def read_events(lines: Iterable[str], *, until: str = "end") -> list[tuple[str, str, Any]]:
    """The messages up to and including the first ``until`` event."""
    events = []
    for message in iter_events(lines):
        events.append(message)
        if message[0] == until:
            break
    return events
