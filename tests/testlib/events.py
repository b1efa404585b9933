"""Reading a run's Server-Sent Events in tests, with httpx-sse."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import httpx
from httpx_sse import EventSource


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
