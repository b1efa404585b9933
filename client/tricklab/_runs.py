"""The runs' part of ``Client``: queue, list, change, cancel, retry, clone, delete, follow and wait."""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable, Iterator, Mapping
from typing import Any

from httpx_sse import ServerSentEvent

from tricklab._transport import PAGE_SIZE, _Transport, idempotent
from tricklab.errors import Unreachable
from tricklab.models import FINAL_STATUSES, EpochMetrics, Run, RunEvent, RunGroupPage, RunPage

RECONNECT_SECONDS = 2.0


class _Runs:
    _transport: _Transport

    def create_run(
        self, config: Mapping[str, Any] | None = None, *, priority: int = 0, idempotency_key: str | None = None
    ) -> Run:
        """Queue a run of ``config`` (a RunConfig, partial: the server's defaults fill the rest).

        The request carries ``idempotency_key`` (a new UUID by default): sent again, it returns the run
        the first one queued, so a lost answer is retried without queueing the run twice.
        """
        body = {"config": dict(config or {}), "priority": priority}
        return Run.model_validate(self._transport.post("/runs", body, headers=idempotent(idempotency_key)))

    def get_run(self, run_id: int) -> Run:
        return Run.model_validate(self._transport.get(f"/runs/{run_id}"))

    def list_runs(
        self,
        *,
        filter: str | None = None,
        sort: str = "-id",
        cursor: str | None = None,
        status: str | Iterable[str] | None = None,
        kind: str | Iterable[str] | None = None,
        name: str | None = None,
        study_id: int | None = None,
        created_by: str | None = None,
        archived: bool | None = False,
        skip: int = 0,
        limit: int = PAGE_SIZE,
    ) -> RunPage:
        """One page of the runs that match every filter given, in ``sort``'s order (a column, descending
        with a leading -, e.g. ``-peak.valid_top1``; newest first by default). ``filter`` is the filter
        language (``'config.tricks.mixup_alpha > 0 and peak.valid_top1 >= 80'``; a bad one raises Invalid
        naming where); ``name`` matches part of the name, in any case; ``cursor`` is the previous page's
        ``next_cursor``. Archived runs are left out; ``archived=True`` lists only them, ``archived=None``
        both."""
        answer = self._transport.get(
            "/runs",
            filter=filter,
            sort=sort,
            cursor=cursor,
            status=_several(status),
            kind=_several(kind),
            name=name,
            study_id=study_id,
            created_by=created_by,
            archived=_archived(archived),
            skip=skip,
            limit=limit,
        )
        return RunPage.model_validate(answer)

    def iter_runs(self, *, page_size: int = PAGE_SIZE, **filters: Any) -> Iterator[Run]:
        """Every run ``list_runs(**filters)`` matches, page after page (each after the last one's cursor,
        so a run queued meanwhile shifts nothing)."""
        cursor = None
        while True:
            page = self.list_runs(**filters, cursor=cursor, limit=page_size)
            yield from page.data
            cursor = page.next_cursor
            if cursor is None:
                return

    def list_run_groups(
        self,
        *,
        filter: str | None = None,
        sort: str = "-id",
        archived: bool | None = False,
        skip: int = 0,
        limit: int = PAGE_SIZE,
    ) -> RunGroupPage:
        """The seeds of each configuration among the runs ``filter`` matches as one group, with each
        figure's mean and standard deviation over them; ``sort`` orders the groups (by a figure's mean).
        ``archived`` as in ``list_runs``."""
        answer = self._transport.get(
            "/run-groups",
            filter=filter,
            sort=sort,
            archived=_archived(archived),
            skip=skip,
            limit=limit,
        )
        return RunGroupPage.model_validate(answer)

    def update_run(
        self,
        run_id: int,
        *,
        priority: int | None = None,
        name: str | None = None,
        notes: str | None = None,
        add_tags: Iterable[str] = (),
        remove_tags: Iterable[str] = (),
        archived: bool | None = None,
    ) -> Run:
        """Change what is given: rename, set the Markdown notes, add and remove tags, archive (True) or
        restore (False) a finished run, or move a queued run in the queue (higher priorities run first;
        Conflict once it has started). Invalid names the field a bad value came in."""
        body = _changes(priority, name, notes, add_tags, remove_tags, archived)
        # Setting a value twice changes nothing more, so a lost answer may be retried.
        return Run.model_validate(self._transport.request("PATCH", f"/runs/{run_id}", json=body, retry=True).json())

    def update_runs(
        self,
        run_ids: Iterable[int],
        *,
        priority: int | None = None,
        name: str | None = None,
        notes: str | None = None,
        add_tags: Iterable[str] = (),
        remove_tags: Iterable[str] = (),
        archived: bool | None = None,
    ) -> RunPage:
        """``update_run``'s change to several runs at once: all of them change, or none (NotFound or
        Conflict names the run in the way)."""
        body = {"run_ids": list(run_ids), **_changes(priority, name, notes, add_tags, remove_tags, archived)}
        return RunPage.model_validate(self._transport.request("PATCH", "/runs", json=body, retry=True).json())

    def cancel_run(self, run_id: int) -> Run:
        """Cancel a queued run, or stop a running one; Conflict once it has finished."""
        return Run.model_validate(self._transport.post(f"/runs/{run_id}/cancel"))

    def retry_run(self, run_id: int) -> Run:
        """Queue a failed or cancelled run again, resuming from its last checkpoint."""
        return Run.model_validate(self._transport.post(f"/runs/{run_id}/retry"))

    def clone_run(
        self,
        run_id: int,
        overrides: Mapping[str, Any] | None = None,
        *,
        name: str | None = None,
        priority: int | None = None,
    ) -> Run:
        """Queue a copy of a run with dotted ``overrides`` (``{"tricks.label_smoothing": 0.1}``)."""
        body = {"overrides": dict(overrides or {}), "name": name, "priority": priority}
        return Run.model_validate(self._transport.post(f"/runs/{run_id}/clone", body))

    def delete_run(self, run_id: int) -> None:
        """Delete a run that is not running (Conflict otherwise), its folder included."""
        self._transport.request("DELETE", f"/runs/{run_id}")

    def follow_run(self, run_id: int, *, after_epoch: int = 0, reconnects: int = 30) -> Iterator[RunEvent]:
        """The run's live events until it ends: a ``status`` event first, an ``epoch`` event per stored
        epoch after ``after_epoch``, a ``status`` event per change, and ``end`` (with the final run) last.

        A dropped stream is reopened where it left off, up to ``reconnects`` times in a row; a resumed
        attempt's epochs come again as it rewrites them.
        """
        cursor, failures = after_epoch, 0
        while True:
            try:
                for message in self._transport.events(f"/runs/{run_id}/events", last_event_id=cursor):
                    failures = 0
                    if not message.data:
                        continue  # the stream's reconnection delay, sent alone
                    cursor = int(message.id) if message.id else cursor
                    event = _run_event(message)
                    yield event
                    if event.event == "end":
                        return
            except Unreachable:
                failures += 1
                if failures > reconnects:
                    raise
                time.sleep(RECONNECT_SECONDS)

    def wait_for_run(
        self,
        run_id: int,
        *,
        until: Collection[str] = FINAL_STATUSES,
        timeout: float | None = None,
        interval: float = 0.5,
    ) -> Run:
        """The run once its status is one of ``until`` (by default: it has finished, however it ended);
        TimeoutError after ``timeout`` seconds. It polls, so it holds no connection open."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while (run := self.get_run(run_id)).status not in until:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} is {run.status} after {timeout:g} s, not {' or '.join(until)}")
            time.sleep(interval)
        return run


def _changes(
    priority: int | None,
    name: str | None,
    notes: str | None,
    add_tags: Iterable[str],
    remove_tags: Iterable[str],
    archived: bool | None,
) -> dict[str, Any]:
    """A PATCH body of the changes given; the server says what is wrong with any of them."""
    given = {"priority": priority, "name": name, "notes": notes, "archived": archived}
    body: dict[str, Any] = {key: value for key, value in given.items() if value is not None}
    for key, tags in (("add_tags", add_tags), ("remove_tags", remove_tags)):
        if listed := _several(tags):
            body[key] = listed
    return body


def _archived(archived: bool | None) -> str:
    """The list's ``archived`` parameter: False leaves archived runs out, True keeps only them, None both."""
    return {False: "false", True: "true", None: "any"}[archived]


def _several(value: str | Iterable[str] | None) -> list[str] | None:
    return [value] if isinstance(value, str) else None if value is None else list(value)


def _run_event(message: ServerSentEvent) -> RunEvent:
    data = message.json()
    if message.event == "epoch":
        return RunEvent(event="epoch", epoch=EpochMetrics.model_validate(data))
    return RunEvent.model_validate({"event": message.event, "run": data})
