"""Helpers shared by the backend tests (a module of its own: every test folder has a "conftest")."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

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


def iter_events(lines: Iterator[str]) -> Iterator[tuple[str, str | None, Any]]:
    """(event, id, data) for each message in the lines of a Server-Sent Events response, as it arrives."""
    event, event_id, data = "message", None, []
    for line in lines:
        if line:
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                event = value
            elif field == "id":
                event_id = value
            elif field == "data":
                data.append(value)
            continue
        if data:
            yield event, event_id, json.loads("\n".join(data))
        event, event_id, data = "message", None, []


def read_events(lines: Iterator[str], *, until: str = "end") -> list[tuple[str, str | None, Any]]:
    """The messages up to and including the first ``until`` event."""
    events = []
    for message in iter_events(lines):
        events.append(message)
        if message[0] == until:
            break
    return events
