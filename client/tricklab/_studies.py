"""The studies' part of ``Client``: queue, preview, read, rename, delete, cancel and wait, and their effects."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Literal

from tricklab._transport import PAGE_SIZE, _Transport, idempotent
from tricklab.models import Study, StudyEffects, StudyPage, StudyPreview


class _Studies:
    _transport: _Transport

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
        return Study.model_validate(self._transport.post("/studies", body, headers=idempotent(idempotency_key)))

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
