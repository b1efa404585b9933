"""The one place the client speaks HTTP: base URL, token, timeouts, retries and errors."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import httpx
from httpx_sse import ServerSentEvent, connect_sse

from tricklab.errors import Busy, TricklabError, Unreachable, error_for

API_PREFIX = "/api/v1"
PAGE_SIZE = 100  # a list's page, unless the caller asks for another
RETRY_PAUSE_SECONDS = 1.0
# A live stream is quiet between epochs; the server sends a keep-alive comment every 15 s.
STREAM_TIMEOUT = httpx.Timeout(10, read=60)


class _Transport:
    def __init__(self, url: str, *, token: str | None, timeout: float, retries: int):
        self.url = url.rstrip("/")
        self.retries = retries
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=self.url + API_PREFIX, headers=headers, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        retry: bool = False,
        timeout: float | None = None,
    ) -> httpx.Response:
        """The answer to one request, a success or a 304; the error it stands for otherwise.

        With ``retry`` (reads, and creates that carry an Idempotency-Key: requests that change
        nothing when sent twice), a lost answer or a 503 is tried again up to ``retries`` times.
        """
        tries = self.retries + 1 if retry else 1
        for attempt in range(1, tries + 1):
            error: TricklabError
            try:
                response = self.http.request(
                    method, path, params=params, json=json, headers=headers, timeout=timeout or self.http.timeout
                )
            except httpx.TransportError as exc:
                error = Unreachable(f"{method} {self.url}{API_PREFIX}{path}: {exc or type(exc).__name__}")
                error.__cause__ = exc
            else:
                if response.is_success or response.status_code == 304:
                    return response
                error = error_for(response)
                if not isinstance(error, Busy):
                    raise error
            if attempt == tries:
                raise error
            time.sleep(error.retry_after if isinstance(error, Busy) and error.retry_after else RETRY_PAUSE_SECONDS)
        raise AssertionError("unreachable: the last try returns or raises")

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=_present(params), retry=True).json()

    def content(self, path: str, *, timeout: float | None = None, **params: Any) -> bytes:
        """A file's bytes (a report, a figure), read whole."""
        return self.request("GET", path, params=_present(params), retry=True, timeout=timeout).content

    def post(self, path: str, body: Any = None, *, headers: Mapping[str, str] | None = None) -> Any:
        # A create with an Idempotency-Key is the one POST that is safe to send again.
        retry = headers is not None and "Idempotency-Key" in headers
        return self.request("POST", path, json=body, headers=headers, retry=retry).json()

    @contextmanager
    def stream(self, path: str, *, headers: Mapping[str, str] | None = None) -> Iterator[httpx.Response]:
        """A GET whose body is read as it arrives (a file, a zip): the response, or the error it stands for."""
        try:
            with self.http.stream("GET", path, headers=headers, timeout=STREAM_TIMEOUT) as response:
                if not response.is_success and response.status_code != 416:
                    response.read()
                    raise error_for(response)
                yield response
        except httpx.TransportError as exc:
            raise Unreachable(f"GET {self.url}{API_PREFIX}{path}: {exc or type(exc).__name__}") from exc

    def events(self, path: str, *, last_event_id: int) -> Iterator[ServerSentEvent]:
        """The messages of a Server-Sent Events stream, resumed after ``last_event_id``."""
        try:
            with connect_sse(
                self.http, "GET", path, headers={"Last-Event-ID": str(last_event_id)}, timeout=STREAM_TIMEOUT
            ) as source:
                if not source.response.is_success:
                    source.response.read()
                    raise error_for(source.response)
                yield from source.iter_sse()
        except httpx.TransportError as exc:
            raise Unreachable(f"GET {self.url}{API_PREFIX}{path}: {exc or type(exc).__name__}") from exc


def idempotent(key: str | None) -> dict[str, str]:
    """The header that makes a create safe to send again: a lost answer's retry returns what the first made."""
    return {"Idempotency-Key": key or str(uuid.uuid4())}


def _present(params: Mapping[str, Any]) -> dict[str, Any]:
    """Query parameters without those left out (None), lists as repeated keys, as the API reads them."""
    return {key: value for key, value in params.items() if value is not None}
