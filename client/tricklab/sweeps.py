"""``Client``'s sweep methods: an Optuna search over RunConfig keys that the server's controller runs."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Literal

from tricklab._metrics import FIGURE_TIMEOUT
from tricklab._transport import _Transport
from tricklab.sweep_models import Sweep, SweepPage, SweepPreset


class SweepMethods:
    _transport: _Transport

    def create_sweep(
        self,
        name: str,
        *,
        space: Mapping[str, Mapping[str, Any]],
        base: Mapping[str, Any] | None = None,
        **settings: Any,
    ) -> Sweep:
        """Start a sweep: ``space`` maps dotted RunConfig keys to ``{"type": "float", "low": ..., "high": ...,
        "log": ...}``, ``{"type": "int", ...}`` or ``{"type": "choice", "values": [...]}``; ``base`` holds the
        keys every trial shares; ``settings`` are the other fields of POST /sweeps (objective, budget, seeds,
        sampler, pruner, confirm, warm_start, priority). Invalid (422) names each bad field."""
        body = {"name": name, "space": dict(space), "base": dict(base or {}), **settings}
        return Sweep.model_validate(self._transport.post("/sweeps", body))

    def get_sweep(self, sweep_id: int) -> Sweep:
        return Sweep.model_validate(self._transport.get(f"/sweeps/{sweep_id}"))

    def list_sweeps(self, *, skip: int = 0, limit: int = 100) -> SweepPage:
        return SweepPage.model_validate(self._transport.get("/sweeps", skip=skip, limit=limit))

    def list_sweep_presets(self) -> list[SweepPreset]:
        return [SweepPreset.model_validate(preset) for preset in self._transport.get("/sweeps/presets")]

    def sweep_figures(self, sweep_id: int) -> dict[str, Any]:
        """The sweep's Plotly figures as JSON: history, parallel, slice, importance (and notes)."""
        return self._transport.get(f"/sweeps/{sweep_id}/figures")

    def sweep_report(self, sweep_id: int, kind: Literal["html", "md", "tex"] = "html") -> str:
        """The sweep as one HTML file that opens offline ("html": its space, verdict, confirmation table,
        trials and figures), or its confirmation and trials tables as Markdown or LaTeX."""
        return self._transport.content(f"/sweeps/{sweep_id}/report.{kind}").decode()

    def sweep_figure(
        self,
        sweep_id: int,
        name: Literal["history", "parallel", "slice", "importance"],
        image_format: Literal["svg", "png"] = "svg",
    ) -> bytes:
        """One of the sweep's figures as SVG or PNG, drawn by the server's Chromium (``Busy`` without one)."""
        return self._transport.content(f"/sweeps/{sweep_id}/figures/{name}.{image_format}", timeout=FIGURE_TIMEOUT)

    def pause_sweep(self, sweep_id: int) -> Sweep:
        """Queue no new trial or confirmation run; running ones finish, and the wall clock stops (Conflict
        unless it is running or confirming)."""
        return Sweep.model_validate(self._transport.post(f"/sweeps/{sweep_id}/pause"))

    def resume_sweep(self, sweep_id: int) -> Sweep:
        return Sweep.model_validate(self._transport.post(f"/sweeps/{sweep_id}/resume"))

    def cancel_sweep(self, sweep_id: int) -> Sweep:
        return Sweep.model_validate(self._transport.post(f"/sweeps/{sweep_id}/cancel"))

    def wait_for_sweep(self, sweep_id: int, *, timeout: float | None = None, interval: float = 1.0) -> Sweep:
        """The sweep once it has finished or been cancelled; TimeoutError after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not (sweep := self.get_sweep(sweep_id)).ended:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"sweep {sweep_id} is still {sweep.status} after {timeout:g} s: {sweep.counts}")
            time.sleep(interval)
        return sweep
