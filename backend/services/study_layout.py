"""A study's layout: every (group, seed) and the run it takes, shared by creating and previewing.

An identical run that already succeeded is reused rather than rerun, so a run can belong to several
studies, which ``runs.study_id`` (the study that created the run) cannot say.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.models import Run, RunKind, RunStatus
from backend.schemas.study_spec import MAX_RUNS
from backend.services.errors import InvalidStudy
from backend.services.study_groups import GroupPlan, Plan, config_of
from backend.services.weights import weights_errors
from trainer.config import RunConfig


@dataclass
class Member:
    group: GroupPlan
    seed: int
    values: dict[str, Any]
    run_id: int | str  # a run id; in a preview, "planned:<fingerprint>" for a run not created
    reused: bool


def _succeeded_twin(session: Session, fingerprint: str) -> int | None:
    return session.scalar(
        select(func.min(Run.id)).where(
            Run.config_hash == fingerprint, Run.status == RunStatus.succeeded, Run.kind == RunKind.training
        )
    )


def _absolute(path: str) -> str:
    return str(Path(path).expanduser().resolve())


def _stored_form(config: RunConfig) -> RunConfig:
    # queue_run stores data.root and model.weights_path absolute; the fingerprint must be taken of the same.
    weights = config.model.weights_path
    return config.model_copy(
        update={
            "data": config.data.model_copy(update={"root": _absolute(config.data.root)}),
            "model": config.model.model_copy(update={"weights_path": weights and _absolute(weights)}),
        }
    )


def layout(
    session: Session,
    plan: Plan,
    seed_list: Sequence[int],
    *,
    name: str,
    create: Callable[[dict[str, Any]], int] | None,
) -> list[Member]:
    """Every (group, seed) of a study, seed-major (every group's first seed, then the second, ...),
    so a first result of every group comes before the replicates; students follow their teachers.

    A run identical to one already laid out, or to one that succeeded earlier, is shared rather
    than created. ``create`` queues a run and returns its id; without it nothing is written, and a
    run to be created stands under a placeholder (its students, whose teacher it is, are new too).
    """
    run_of: dict[tuple[str, int], int | str] = {}
    by_fingerprint: dict[str, int | str] = {}
    members: list[Member] = []
    for seed in seed_list:
        for group in plan.groups:
            values = {**group.values, "seed": seed, "name": f"{name} · {group.key} · seed {seed}"[:200]}
            if group.teacher is not None:
                values["tricks.kd.teacher"] = run_of[(group.teacher, seed)]
            fingerprint = _stored_form(config_of(values)).fingerprint()
            run_id = by_fingerprint.get(fingerprint)
            reused = False
            if run_id is None:
                twin = _succeeded_twin(session, fingerprint)
                reused = twin is not None
                run_id = twin if twin is not None else create(values) if create else f"planned:{fingerprint}"
            by_fingerprint[fingerprint] = run_id
            run_of[(group.key, seed)] = run_id
            members.append(Member(group, seed, values, run_id, reused))
    return members


def seed_list(plan: Plan, *, seeds: int, preset: str | None) -> list[int]:
    """The seeds every group is replicated over: the config's seed and the ones after it."""
    if len(plan.groups) * seeds > MAX_RUNS:
        where = ("seeds",) if preset else ("grid", "switches")
        total = len(plan.groups) * seeds
        raise InvalidStudy({where: f"{len(plan.groups)} groups x {seeds} seeds = {total} runs; at most {MAX_RUNS}"})
    first_seed = config_of(plan.groups[0].values).seed
    seeds_of_study = [first_seed + index for index in range(seeds)]
    if seeds_of_study[-1] > 2**31 - 1:
        raise InvalidStudy({("seeds",): f"seeds {first_seed}..{seeds_of_study[-1]} pass the largest seed, {2**31 - 1}"})
    return seeds_of_study


def check_weights(members: Sequence[Member]) -> None:
    """Refuse a study whose new pretrained runs could not load their ImageNet weights, with the
    trainer's own message, before any run is queued to fail with it."""
    errors = weights_errors(config_of({**m.values, "tricks.kd.teacher": None}) for m in members if not m.reused)
    if errors:
        raise InvalidStudy({("overrides", field): message for field, message in errors.items()})
