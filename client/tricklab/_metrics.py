"""The metrics' part of ``Client``: epoch rows and columns, the comparison table, and the reports and
figures of a study or a comparison."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from tricklab._transport import _Transport
from tricklab.models import Comparison, EpochMetrics, MetricColumns

# The server draws a figure in a browser, within a minute.
FIGURE_TIMEOUT = 90.0


class _Metrics:
    _transport: _Transport

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


def _ids(run_ids: Iterable[int]) -> str:
    return ",".join(str(run_id) for run_id in run_ids)
