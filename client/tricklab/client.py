"""``Client``: what a script, a test or a benchmark calls to talk to a tricklab server.

One method per route, named as the route is (``create_run`` is ``POST /api/v1/runs``), each returning
a typed model from ``tricklab.models`` and raising one of ``tricklab.errors`` for an unsuccessful
answer. The HTTP itself lives in one private transport, as MLflow's ``MlflowClient`` keeps it.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Collection, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

from httpx_sse import ServerSentEvent

from tricklab import downloads
from tricklab._transport import _Transport
from tricklab.errors import Unreachable
from tricklab.models import (
    FINAL_STATUSES,
    Comparison,
    EpochMetrics,
    Health,
    LRRangeTest,
    LRRangeTestCreated,
    MetricColumns,
    Run,
    RunEvent,
    RunFile,
    RunFiles,
    RunGroupPage,
    RunPage,
    Study,
    StudyEffects,
    StudyPage,
    StudyPreview,
    Workers,
)
from tricklab.sweeps import SweepMethods

DEFAULT_URL = "http://127.0.0.1:8000"
PAGE_SIZE = 100
RECONNECT_SECONDS = 2.0


# The server draws a figure in a browser, within a minute.
FIGURE_TIMEOUT = 90.0


class Client(SweepMethods):
    """A tricklab server's REST API.

    ``url`` defaults to ``$TRICKLAB_SERVER`` or the local dashboard, ``token`` to ``$TRICKLAB_TOKEN``
    (``""`` or neither: none is sent, for an open server). Reads, and creates (each sends an
    ``Idempotency-Key``), are tried again ``retries`` times when the answer is lost or the server is busy.
    """

    def __init__(self, url: str | None = None, *, token: str | None = None, timeout: float = 30, retries: int = 2):
        self._transport = _Transport(
            url or os.environ.get("TRICKLAB_SERVER") or DEFAULT_URL,
            token=token if token is not None else os.environ.get("TRICKLAB_TOKEN") or None,
            timeout=timeout,
            retries=retries,
        )

    @property
    def url(self) -> str:
        return self._transport.url

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def health(self) -> Health:
        """Open without a token: that the server answers."""
        return Health.model_validate(self._transport.get("/health"))

    # --- runs ------------------------------------------------------------------------------------

    def create_run(
        self, config: Mapping[str, Any] | None = None, *, priority: int = 0, idempotency_key: str | None = None
    ) -> Run:
        """Queue a run of ``config`` (a RunConfig, partial: the server's defaults fill the rest).

        The request carries ``idempotency_key`` (a new UUID by default): sent again, it returns the run
        the first one queued, so a lost answer is retried without queueing the run twice.
        """
        body = {"config": dict(config or {}), "priority": priority}
        return Run.model_validate(self._transport.post("/runs", body, headers=_idempotent(idempotency_key)))

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

    # --- studies ---------------------------------------------------------------------------------

    def create_study(
        self,
        name: str,
        *,
        preset: Literal["seed", "paper"] | None = None,
        grid: Mapping[str, Any] | None = None,
        overrides: Mapping[str, Any] | None = None,
        seeds: int = 1,
        priority: int = 0,
        idempotency_key: str | None = None,
    ) -> Study:
        """Queue a study: a ``preset``'s runs or a ``grid`` of trick switches (``{"cosine": True}``), each
        over ``seeds`` seeds, with dotted ``overrides`` on every run. Idempotent as ``create_run``."""
        body = _study_body(name, preset=preset, grid=grid, overrides=overrides, seeds=seeds) | {"priority": priority}
        return Study.model_validate(self._transport.post("/studies", body, headers=_idempotent(idempotency_key)))

    def preview_study(
        self,
        name: str,
        *,
        preset: Literal["seed", "paper"] | None = None,
        grid: Mapping[str, Any] | None = None,
        overrides: Mapping[str, Any] | None = None,
        seeds: int = 1,
    ) -> StudyPreview:
        """What ``create_study`` would queue and about how long it would take; nothing is written."""
        body = _study_body(name, preset=preset, grid=grid, overrides=overrides, seeds=seeds)
        return StudyPreview.model_validate(self._transport.post("/studies/preview", body))

    def get_study(self, study_id: int) -> Study:
        return Study.model_validate(self._transport.get(f"/studies/{study_id}"))

    def list_studies(self, *, skip: int = 0, limit: int = PAGE_SIZE) -> StudyPage:
        return StudyPage.model_validate(self._transport.get("/studies", skip=skip, limit=limit))

    def update_study(self, study_id: int, *, name: str) -> Study:
        """Rename a study."""
        response = self._transport.request("PATCH", f"/studies/{study_id}", json={"name": name}, retry=True)
        return Study.model_validate(response.json())

    def delete_study(self, study_id: int, *, keep_runs: bool = False) -> None:
        """Delete a study with the runs it created, their files included (Conflict while one is running);
        with ``keep_runs`` its runs stay, in no study."""
        self._transport.request("DELETE", f"/studies/{study_id}", params={"keep_runs": str(keep_runs).lower()})

    def cancel_study(self, study_id: int) -> Study:
        """Cancel the study's queued runs and stop its running ones; finished runs stay."""
        return Study.model_validate(self._transport.post(f"/studies/{study_id}/cancel"))

    def study_effects(self, study_id: int, *, metric: Literal["valid", "test"] = "valid") -> StudyEffects:
        """A grid study's main effects and two-way interactions on top-1, with intervals."""
        return StudyEffects.model_validate(self._transport.get(f"/studies/{study_id}/effects", metric=metric))

    def wait_for_study(self, study_id: int, *, timeout: float | None = None, interval: float = 1.0) -> Study:
        """The study once none of its runs is queued or running; TimeoutError after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not (study := self.get_study(study_id)).finished:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"study {study_id} has not finished after {timeout:g} s: {study.progress}")
            time.sleep(interval)
        return study

    # --- a run's files ---------------------------------------------------------------------------

    def run_files(self, run_id: int) -> RunFiles:
        """The files of the run's folder with their sizes and kinds (config, metrics, checkpoint, ...)."""
        return RunFiles.model_validate(self._transport.get(f"/runs/{run_id}/files"))

    def download_file(self, run_id: int, path: str | RunFile, dest: str | os.PathLike[str]) -> Path:
        """One file of the run's folder (a path, or a ``RunFile`` from ``run_files``) saved at ``dest``; a
        ``DEST.part`` left by a broken download is resumed with Range (given a RunFile, only while the file's
        time is the listed one, and a file already at ``dest`` with its size is kept). Incomplete when the
        size that arrived is not the server's."""
        return downloads.download(self._transport, run_id, path, Path(dest))

    def pull(self, run_id: int, out: str | os.PathLike[str], *, zip: bool = False) -> list[Path]:
        """Every file of the run's folder under ``out`` (its layout kept), each resumed where a part exists and
        checked against the listed size; files already there with that size are kept. With ``zip``: one
        ``run-ID.zip`` of the folder without its checkpoints instead. Returns the paths written."""
        folder = Path(out)
        if zip:
            return [downloads.download_zip(self._transport, run_id, folder / f"run-{run_id}.zip")]
        files = self.run_files(run_id).data
        targets = [(file, downloads.local_path(folder, file.path)) for file in files]  # all checked first
        return [downloads.download(self._transport, run_id, file, target) for file, target in targets]

    # --- metrics and comparisons -----------------------------------------------------------------

    def get_metrics(self, run_ids: Iterable[int]) -> list[EpochMetrics]:
        """Every stored epoch of the runs, by run and epoch; NotFound if any run does not exist."""
        answer = self._transport.get("/metrics", run_ids=_ids(run_ids))
        return [EpochMetrics.model_validate(row) for row in answer["data"]]

    def metric_columns(
        self, run_ids: Iterable[int], *, fields: Iterable[str] | None = None, if_none_match: str | None = None
    ) -> MetricColumns | None:
        """The runs' epochs as one array per field per run (what a chart takes). Finished runs come with an
        ``etag``: passed back as ``if_none_match``, it gets None while the rows are unchanged."""
        response = self._transport.request(
            "GET",
            "/metrics/columns",
            params={"run_ids": _ids(run_ids)} | ({"fields": ",".join(fields)} if fields is not None else {}),
            headers={"If-None-Match": if_none_match} if if_none_match else None,
            retry=True,
        )
        if response.status_code == 304:
            return None
        return MetricColumns.model_validate(response.json() | {"etag": response.headers.get("ETag")})

    def compare(
        self, run_ids: Iterable[int], *, baseline: int | None = None, mode: Literal["peak", "final"] = "peak"
    ) -> Comparison:
        """The report's summary table of the runs, deltas against ``baseline`` (default: the fewest tricks)."""
        answer = self._transport.get("/compare", run_ids=_ids(run_ids), baseline=baseline, mode=mode)
        return Comparison.model_validate(answer)

    # --- reports: a study or a comparison for a paper ------------------------------------------

    def study_report(
        self, study_id: int, kind: Literal["html", "md", "tex"] = "html", *, metric: Literal["valid", "test"] = "valid"
    ) -> str:
        """The study as one HTML file that opens offline ("html"), or its table as Markdown or LaTeX."""
        return self._transport.content(f"/studies/{study_id}/report.{kind}", metric=metric).decode()

    def study_figure(
        self,
        study_id: int,
        name: Literal["train_loss", "valid_top1", "valid_top5", "lr", "effects"],
        image_format: Literal["svg", "png"] = "svg",
        *,
        metric: Literal["valid", "test"] = "valid",
    ) -> bytes:
        """One of the study's figures as SVG or PNG, drawn by the server's Chromium (``Busy`` without one)."""
        path = f"/studies/{study_id}/figures/{name}.{image_format}"
        return self._transport.content(path, timeout=FIGURE_TIMEOUT, metric=metric)

    def compare_report(
        self,
        run_ids: Iterable[int],
        kind: Literal["html", "md", "tex"] = "html",
        *,
        baseline: int | None = None,
        mode: Literal["peak", "final"] = "peak",
    ) -> str:
        """The compared runs as one HTML file that opens offline ("html"), or their table as Markdown or LaTeX."""
        path = f"/compare/report.{kind}"
        return self._transport.content(path, run_ids=_ids(run_ids), baseline=baseline, mode=mode).decode()

    def compare_figure(
        self,
        run_ids: Iterable[int],
        name: Literal["train_loss", "valid_top1", "valid_top5", "lr"],
        image_format: Literal["svg", "png"] = "svg",
        *,
        baseline: int | None = None,
        mode: Literal["peak", "final"] = "peak",
    ) -> bytes:
        """One of the comparison's figures as SVG or PNG, drawn by the server's Chromium."""
        path = f"/compare/figures/{name}.{image_format}"
        return self._transport.content(
            path, timeout=FIGURE_TIMEOUT, run_ids=_ids(run_ids), baseline=baseline, mode=mode
        )

    # --- LR range tests and workers --------------------------------------------------------------

    def create_lr_range_test(
        self, config: Mapping[str, Any] | None = None, *, sweep: Mapping[str, Any] | None = None, priority: int = 0
    ) -> LRRangeTestCreated:
        """Queue an LR range test of ``config``; ``sweep``'s keys left out take the report's range test."""
        body = {"config": dict(config or {}), "sweep": dict(sweep or {}), "priority": priority}
        return LRRangeTestCreated.model_validate(self._transport.post("/lr-range-tests", body))

    def get_lr_range_test(self, run_id: int) -> LRRangeTest:
        """Its status, curve, minimum and suggestion (None until it has succeeded)."""
        return LRRangeTest.model_validate(self._transport.get(f"/lr-range-tests/{run_id}"))

    def list_workers(self) -> Workers:
        """The workers seen in the last day and their devices, the living ones first."""
        return Workers.model_validate(self._transport.get("/workers"))

    def call(self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json: Any = None) -> Any:
        """The JSON answer of a route this class has no method for (``"GET", "/studies/1/table"``), with
        the same token and errors."""
        return self._transport.request(method, path, params=params, json=json, retry=method == "GET").json()


def _idempotent(key: str | None) -> dict[str, str]:
    return {"Idempotency-Key": key or str(uuid.uuid4())}


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


def _ids(run_ids: Iterable[int]) -> str:
    return ",".join(str(run_id) for run_id in run_ids)


def _several(value: str | Iterable[str] | None) -> list[str] | None:
    return [value] if isinstance(value, str) else None if value is None else list(value)


def _study_body(
    name: str,
    *,
    preset: str | None,
    grid: Mapping[str, Any] | None,
    overrides: Mapping[str, Any] | None,
    seeds: int,
) -> dict[str, Any]:
    return {
        "name": name,
        "preset": preset,
        "grid": {"switches": dict(grid)} if grid is not None else None,
        "overrides": dict(overrides or {}),
        "seeds": seeds,
    }


def _run_event(message: ServerSentEvent) -> RunEvent:
    data = message.json()
    if message.event == "epoch":
        return RunEvent(event="epoch", epoch=EpochMetrics.model_validate(data))
    return RunEvent.model_validate({"event": message.event, "run": data})
