"""Studies: one action queues a named group of runs; one table says which tricks helped beyond noise.

A study is the seed study's preset (the report's 15 runs) or a grid (the cartesian product of trick
switches); every run of it is replicated over seeds. Its layout (groups, and per group one run per
seed) is fixed when it is created and kept in ``studies.spec``: an identical run that already
succeeded is reused rather than rerun, so a run can belong to several studies, which
``runs.study_id`` (the study that created the run) cannot say.

Functions take the session and commit what they change, as the runs service does.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.models import EpochMetric, Run, RunStatus, Study
from backend.reports import stats
from backend.reports.compare import delta_points, with_delta
from backend.reports.labels import trick_summary
from backend.schemas.studies import (
    CurveBand,
    GroupCurves,
    Metric,
    MetricStats,
    StudyCurves,
    StudyGroupPublic,
    StudyPublic,
    StudyRunPublic,
    StudyTable,
    StudyTableRow,
)
from backend.services import runs as run_service
from backend.services.errors import Conflict, InvalidConfig, NotFound, ServiceError
from backend.settings import Settings
from trainer.config import ConfigError, RunConfig, apply_overrides
from trainer.presets import PRESETS_BY_KEY, STUDY, Preset

SEED_PRESET = "seed"
SEED_RUNS = len(STUDY)  # runs per seed of the seed preset
TEACHER_PREFIX = "teacher."
BASELINE_PRESET = "base"
# A grid grows as a product; past this many runs a typo (a long value list) is likelier than intent.
MAX_RUNS = 600
# Keys the study itself sets on each run.
STUDY_KEYS = {
    "name": "each run is named after the study, its group and its seed",
    "tricks.kd.teacher": "the study picks each student's teacher run (use the kd switch or the preset)",
}
TEACHER_ONLY_FORBIDDEN = {
    "seed": "a teacher takes the seed of the replicate it teaches",
    "data": "a teacher learns the students' dataset and classes",
}
METRIC_FIELDS: Mapping[Metric, tuple[str, str]] = {
    # The report tabulates the best validation accuracy over epochs; test is measured on the
    # best-validation-loss checkpoint, the figure a paper should quote.
    "valid": ("max_valid_top1", "max_valid_top5"),
    "test": ("test_top1", "test_top5"),
}
CURVE_FIELDS = ("train_loss", "valid_top1", "valid_top5", "lr")
METHOD = "Welch's t (unequal variances), two-sided"


class InvalidStudy(ServiceError):
    """A study request that cannot be used (422); ``errors`` maps request locations to messages,
    e.g. ``("overrides", "model.arch")`` or ``("grid", "switches", "kd")``."""

    def __init__(self, errors: Mapping[tuple[str, ...], str]):
        self.errors = dict(errors)
        super().__init__("; ".join(f"{'.'.join(loc)}: {message}" for loc, message in self.errors.items()))


# --- grid switches ------------------------------------------------------------------------------


def _ls_label(value: float) -> str:
    return "-LS" if not value else "+LS" if value == 0.1 else f"+LS {value:g}"


@dataclass(frozen=True)
class Switch:
    """A trick a grid turns on and off. ``true`` in a request stands for ``default`` (off, then on)."""

    name: str
    title: str
    default: tuple[Any, Any] | None
    label: Callable[[Any], str]
    when_on: Mapping[str, Any] | None = None  # on/off switches: the overrides of "on"
    key: str | None = None  # valued switches: the field the value goes to

    @property
    def is_flag(self) -> bool:
        return self.when_on is not None

    def overrides(self, value: Any) -> dict[str, Any]:
        if self.is_flag:
            return dict(self.when_on) if value else {}
        return {self.key: value}


SWITCHES: tuple[Switch, ...] = (
    Switch(
        "cosine",
        "Cosine decay (instead of OneCycle)",
        (False, True),
        lambda on: "+Cosine" if on else "-Cosine",
        when_on={"schedule.name": "cosine"},
    ),
    Switch("label_smoothing", "Label smoothing epsilon", (0.0, 0.1), _ls_label, key="tricks.label_smoothing"),
    # The teacher is added by the study (one per label-smoothing value and seed), so "on" sets nothing here.
    Switch("kd", "Knowledge distillation", (False, True), lambda on: "+KD" if on else "-KD", when_on={}),
    Switch(
        "mixup_alpha",
        "Mixup alpha",
        (0.0, 0.2),
        lambda a: f"+Mixup α={a:g}" if a else "-Mixup",
        key="tricks.mixup_alpha",
    ),
    Switch(
        "warmup_epochs",
        "Warmup epochs (cosine or constant only)",
        (0.0, 1.0),
        lambda w: f"+Warmup {w:g}ep" if w else "-Warmup",
        key="schedule.warmup_epochs",
    ),
    Switch(
        "no_bias_decay",
        "No weight decay on biases and norms",
        (False, True),
        lambda on: "+No bias decay" if on else "-No bias decay",
        when_on={"optim.no_bias_decay": True},
    ),
)
SWITCHES_BY_NAME: Mapping[str, Switch] = {switch.name: switch for switch in SWITCHES}


def _switch(name: str) -> Switch | None:
    """A named trick, or a plain dotted RunConfig key swept over a list of values."""
    if name in SWITCHES_BY_NAME:
        return SWITCHES_BY_NAME[name]
    try:
        apply_overrides({}, {name: None})
    except ConfigError:
        return None
    return Switch(name, name, None, lambda value: f"{name}={json.dumps(value)}", key=name)


# --- planning: groups of runs, before anything is written ----------------------------------------


@dataclass(frozen=True)
class GroupPlan:
    key: str
    title: str
    role: str  # "teacher" or "experiment"
    values: dict[str, Any]  # dotted overrides on RunConfig's defaults, without name, seed and teacher
    teacher: str | None = None  # key of the teacher group
    reported: tuple[float | None, float | None] = (None, None)


@dataclass
class Plan:
    groups: list[GroupPlan]
    baseline: str
    skipped: list[dict[str, Any]] = field(default_factory=list)


def _owning_key(field_name: str, keys: Iterable[str]) -> str | None:
    """The override that set ``field_name`` (itself or a parent mapping such as "data")."""
    owners = [key for key in keys if field_name == key or field_name.startswith(key + ".")]
    return max(owners, key=len, default=None)


def _override_errors(errors: Mapping[str, str], keys: Iterable[str], prefix: str = "") -> dict[tuple[str, ...], str]:
    located: dict[tuple[str, ...], str] = {}
    for field_name, message in errors.items():
        key = _owning_key(field_name, keys)
        loc = ("overrides", prefix + key) if key else ("overrides",)
        text = message if key == field_name else f"{field_name}: {message}"
        located[loc] = f"{located[loc]}; {text}" if loc in located else text
    return located


def _validate(values: dict[str, Any]) -> RunConfig:
    return RunConfig.from_dict(apply_overrides({}, values))


def _split_overrides(overrides: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every-run overrides and teacher-only ones (``teacher.`` stripped), checked key by key."""
    every, teacher = {}, {}
    errors: dict[tuple[str, ...], str] = {}
    for key, value in overrides.items():
        own = key.removeprefix(TEACHER_PREFIX)
        is_teacher = key.startswith(TEACHER_PREFIX)
        reason = STUDY_KEYS.get(own) or (TEACHER_ONLY_FORBIDDEN.get(own.partition(".")[0]) if is_teacher else None)
        if reason:
            errors[("overrides", key)] = f"set by the study: {reason}"
            continue
        try:
            apply_overrides({}, {own: value})
        except ConfigError as exc:
            message = next(iter(exc.errors.values()))
            if "teacher" in own and not is_teacher:
                message += f"; teacher runs take `{TEACHER_PREFIX}`-prefixed keys, e.g. teacher.model.arch"
            errors[("overrides", key)] = message
            continue
        (teacher if is_teacher else every)[own] = value
    if errors:
        raise InvalidStudy(errors)
    try:
        _validate(every)
    except ConfigError as exc:
        raise InvalidStudy(_override_errors(exc.errors, every)) from None
    return every, teacher


def _check_group(
    values: dict[str, Any], *, every: Mapping[str, Any], teacher: Mapping[str, Any], is_teacher: bool
) -> None:
    """A group whose config fails names the override that made it fail."""
    try:
        _validate({**values, "tricks.kd.teacher": None})
    except ConfigError as exc:
        keys = list(teacher) if is_teacher else []
        located = _override_errors({f: m for f, m in exc.errors.items() if _owning_key(f, keys)}, keys, TEACHER_PREFIX)
        rest = {f: m for f, m in exc.errors.items() if not _owning_key(f, keys)}
        located.update(_override_errors(rest, every))
        raise InvalidStudy(located) from None


def _preset_plan(every: dict[str, Any], teacher: dict[str, Any]) -> Plan:
    """The report's runs in its table's order: the teachers, the base, then a to i2."""
    teacher_keys = {preset.teacher for preset in STUDY if preset.teacher}
    ordered = sorted(STUDY, key=lambda preset: preset.key not in teacher_keys)  # stable: report order otherwise

    def plan(preset: Preset) -> GroupPlan:
        is_teacher = preset.key in teacher_keys
        values = {**preset.overrides, **every, **(teacher if is_teacher else {})}
        _check_group(values, every=every, teacher=teacher, is_teacher=is_teacher)
        return GroupPlan(
            preset.key,
            preset.title,
            "teacher" if is_teacher else "experiment",
            values,
            preset.teacher,
            (preset.reported_top1, preset.reported_top5),
        )

    return Plan([plan(preset) for preset in ordered], BASELINE_PRESET)


def _switch_values(name: str, raw: Any) -> tuple[Switch, list[Any]]:
    loc = ("grid", "switches", name)
    switch = _switch(name)
    if switch is None:
        known = ", ".join(SWITCHES_BY_NAME)
        raise InvalidStudy(
            {loc: f"unknown switch: use one of {known}, or a dotted RunConfig key with a list of values"}
        )
    if switch.key in STUDY_KEYS:
        raise InvalidStudy({loc: f"set by the study: {STUDY_KEYS[switch.key]}"})
    if raw is True and switch.default is not None:
        values = list(switch.default)
    elif isinstance(raw, list) and raw:
        values = raw
    else:
        expected = "true or a list of values" if switch.default is not None else "a list of values"
        raise InvalidStudy({loc: f"expected {expected} (the first is the baseline's), got {json.dumps(raw)}"})
    if switch.is_flag and not all(isinstance(value, bool) for value in values):
        raise InvalidStudy({loc: "an on/off switch takes true, or a list of true/false"})
    if len({json.dumps(value) for value in values}) != len(values):
        raise InvalidStudy({loc: "a value is listed twice"})
    return switch, values


def _teacher_group(label_smoothing: float, *, every: dict[str, Any], teacher: dict[str, Any]) -> GroupPlan:
    """As in the report: a ResNet152 trained like the base, with the student's label smoothing."""
    key = "T" if not label_smoothing else "T-LS" if label_smoothing == 0.1 else f"T-LS {label_smoothing:g}"
    values = {**PRESETS_BY_KEY["T"].overrides, **every, "tricks.label_smoothing": label_smoothing, **teacher}
    _check_group(values, every=every, teacher=teacher, is_teacher=True)
    return GroupPlan(key, f"Teacher {key}", "teacher", values)


def _grid_plan(switches: Mapping[str, Any], every: dict[str, Any], teacher: dict[str, Any]) -> Plan:
    """Every combination of the switches' values; the first values make the baseline.

    A combination whose config is invalid (warmup with OneCycle) is skipped and listed, so that
    "cosine x warmup" needs no special case; a value that no valid combination takes is an error.
    """
    chosen = [_switch_values(name, raw) for name, raw in switches.items()]
    size = math.prod(len(values) for _, values in chosen)
    if size > MAX_RUNS:
        raise InvalidStudy({("grid", "switches"): f"{size} combinations; at most {MAX_RUNS} runs in a study"})
    baseline_values = [values[0] for _, values in chosen]
    teachers: dict[float, GroupPlan] = {}
    cells: list[GroupPlan] = []
    skipped: list[dict[str, Any]] = []
    valid: list[dict[str, Any]] = []
    for combination in itertools.product(*(values for _, values in chosen)):
        cell = {switch.name: value for (switch, _), value in zip(chosen, combination, strict=True)}
        values = dict(every)
        for (switch, _), value in zip(chosen, combination, strict=True):
            values.update(switch.overrides(value))
        try:
            config = _validate(values)
        except ConfigError as exc:
            skipped.append({"cell": cell, "reason": "; ".join(f"{f}: {m}" for f, m in exc.errors.items())})
            continue
        teacher_key = None
        if cell.get("kd"):
            ls = config.tricks.label_smoothing
            if ls not in teachers:
                teachers[ls] = _teacher_group(ls, every=every, teacher=teacher)
            teacher_key = teachers[ls].key
        changed = [
            switch.label(value)
            for (switch, _), value, base in zip(chosen, combination, baseline_values, strict=True)
            if value != base
        ]
        key = " ".join(changed) or "base"
        if any(group.key == key for group in cells):  # two values with one label ("+Mixup α=0.1")
            key = f"{key} {json.dumps(cell)}"
        cells.append(GroupPlan(key, key, "experiment", values, teacher_key))
        valid.append(cell)
    errors: dict[tuple[str, ...], str] = {}
    for switch, values in chosen:
        for value in values:
            if not any(cell[switch.name] == value for cell in valid):
                reason = next(cell["reason"] for cell in skipped if cell["cell"][switch.name] == value)
                errors.setdefault(("grid", "switches", switch.name), f"{json.dumps(value)}: {reason}")
    if errors:
        raise InvalidStudy(errors)
    if cells[0].key != "base":
        raise InvalidStudy(
            {("grid", "switches"): f"the baseline (every first value) is invalid: {skipped[0]['reason']}"}
        )
    return Plan([*teachers.values(), *cells], "base", skipped)


def plan_study(*, preset: str | None, switches: Mapping[str, Any] | None, overrides: Mapping[str, Any]) -> Plan:
    """The groups a request makes, validated; raises InvalidStudy naming the request field at fault."""
    every, teacher = _split_overrides(overrides)
    if preset is not None and preset != SEED_PRESET:
        raise InvalidStudy({("preset",): f"unknown preset {preset!r}; the one preset is {SEED_PRESET!r}"})
    plan = _preset_plan(every, teacher) if preset is not None else _grid_plan(switches or {}, every, teacher)
    if teacher and not any(group.role == "teacher" for group in plan.groups):
        key = next(key for key in overrides if key.startswith(TEACHER_PREFIX))
        raise InvalidStudy({("overrides", key): "no run of this study is a teacher (add the kd switch)"})
    return plan


# --- creating -----------------------------------------------------------------------------------


def _succeeded_twin(session: Session, fingerprint: str) -> int | None:
    return session.scalar(
        select(func.min(Run.id)).where(Run.config_hash == fingerprint, Run.status == RunStatus.succeeded)
    )


def _stored_form(config: RunConfig) -> RunConfig:
    # create_run stores data.root absolute; the fingerprint must be taken of the same value.
    return config.model_copy(
        update={"data": config.data.model_copy(update={"root": str(Path(config.data.root).expanduser().resolve())})}
    )


def create_study(
    *,
    session: Session,
    settings: Settings,
    name: str,
    overrides: Mapping[str, Any],
    seeds: int,
    preset: str | None = None,
    switches: Mapping[str, Any] | None = None,
    priority: int = 0,
) -> Study:
    """Queue a study's runs, seed-major (every group's first seed, then the second, ...), so a
    first result of every group comes before the replicates; students follow their teachers."""
    plan = plan_study(preset=preset, switches=switches, overrides=overrides)
    if len(plan.groups) * seeds > MAX_RUNS:
        raise InvalidStudy(
            {
                ("seeds",)
                if preset
                else (
                    "grid",
                    "switches",
                ): f"{len(plan.groups)} groups x {seeds} seeds = {len(plan.groups) * seeds} runs; at most {MAX_RUNS}"
            }
        )
    first_seed = _validate(plan.groups[0].values).seed
    seed_list = [first_seed + index for index in range(seeds)]
    if seed_list[-1] > 2**31 - 1:
        raise InvalidStudy({("seeds",): f"seeds {first_seed}..{seed_list[-1]} pass the largest seed, {2**31 - 1}"})

    study = Study(name=name, spec={})
    session.add(study)
    session.flush()
    run_of: dict[tuple[str, int], int] = {}
    members: dict[str, list[dict[str, Any]]] = {group.key: [] for group in plan.groups}
    by_fingerprint: dict[str, int] = {}
    for seed in seed_list:
        for group in plan.groups:
            values = {**group.values, "seed": seed, "name": f"{name} · {group.key} · seed {seed}"[:200]}
            if group.teacher is not None:
                values["tricks.kd.teacher"] = run_of[(group.teacher, seed)]
            fingerprint = _stored_form(_validate(values)).fingerprint()
            run_id = by_fingerprint.get(fingerprint)
            reused = False
            if run_id is None:
                run_id = _succeeded_twin(session, fingerprint)
                reused = run_id is not None
            if run_id is None:
                try:
                    run_id = run_service.create_run(
                        session=session,
                        settings=settings,
                        config=apply_overrides({}, values),
                        priority=priority,
                        study_id=study.id,
                    ).id
                except InvalidConfig as exc:
                    # Checked by create_run only (the dataset folder): it fails on the first run,
                    # before anything was committed.
                    session.rollback()
                    raise InvalidStudy(_override_errors(exc.errors, overrides)) from None
            by_fingerprint[fingerprint] = run_id
            run_of[(group.key, seed)] = run_id
            members[group.key].append({"run_id": run_id, "seed": seed, "reused": reused})

    study.baseline_run_id = run_of[(plan.baseline, seed_list[0])]
    study.spec = {
        "kind": "preset" if preset else "grid",
        "preset": preset,
        "grid": {"switches": dict(switches)} if switches is not None else None,
        "overrides": dict(overrides),
        "seeds": seed_list,
        "priority": priority,
        "baseline": plan.baseline,
        "groups": [
            {
                "key": group.key,
                "title": group.title,
                "role": group.role,
                "teacher": group.teacher,
                "tricks": _tricks(group),
                "reported_top1": group.reported[0],
                "reported_top5": group.reported[1],
                "runs": members[group.key],
            }
            for group in plan.groups
        ],
        "skipped": plan.skipped,
    }
    session.commit()
    return study


def _tricks(group: GroupPlan) -> str:
    # The teacher group's key stands in for its run ids, which differ by seed.
    values = {**group.values, "tricks.kd.teacher": group.teacher}
    return trick_summary(_validate(values))


# --- reading ------------------------------------------------------------------------------------


def get_study(*, session: Session, study_id: int) -> Study:
    study = session.get(Study, study_id)
    if study is None or not study.spec:
        # An empty spec is a study still being created (its runs commit one by one).
        raise NotFound(f"study {study_id} not found")
    return study


def list_studies(*, session: Session, skip: int = 0, limit: int = 100) -> tuple[list[Study], int]:
    """Newest first. Studies are few (each holds many runs), so the ones still being created are
    filtered here: PostgreSQL's JSON type has no equality to filter them in SQL."""
    ready = [study for study in session.scalars(select(Study).order_by(Study.id.desc())) if study.spec]
    return ready[skip : skip + limit], len(ready)


def _run_ids(study: Study) -> list[int]:
    return list(dict.fromkeys(run["run_id"] for group in study.spec["groups"] for run in group["runs"]))


def _runs(session: Session, study: Study) -> dict[int, Run]:
    ids = _run_ids(study)
    return {run.id: run for run in session.scalars(select(Run).where(Run.id.in_(ids)))} if ids else {}


def study_public(*, session: Session, study: Study) -> StudyPublic:
    return studies_public(session=session, studies=[study])[0]


def studies_public(*, session: Session, studies: Sequence[Study]) -> list[StudyPublic]:
    """Each study with its runs' statuses and progress; one query for the runs of all of them."""
    ids = [run_id for study in studies for run_id in _run_ids(study)]
    statuses = dict(session.execute(select(Run.id, Run.status).where(Run.id.in_(ids))).all()) if ids else {}
    return [_public(study, statuses) for study in studies]


def _public(study: Study, statuses: Mapping[int, RunStatus]) -> StudyPublic:
    spec = study.spec
    groups = [
        StudyGroupPublic(
            key=group["key"],
            title=group["title"],
            role=group["role"],
            teacher=group["teacher"],
            tricks=group["tricks"],
            reported_top1=group["reported_top1"],
            reported_top5=group["reported_top5"],
            runs=[
                StudyRunPublic(
                    run_id=run["run_id"], seed=run["seed"], status=statuses.get(run["run_id"]), reused=run["reused"]
                )
                for run in group["runs"]
            ],
        )
        for group in spec["groups"]
    ]
    distinct = {run.run_id: run for group in groups for run in group.runs}
    progress = {status.value: 0 for status in RunStatus}
    for run in distinct.values():
        if run.status is not None:
            progress[run.status.value] += 1
    progress["deleted"] = sum(run.status is None for run in distinct.values())
    progress["total"] = len(distinct)
    progress["reused"] = sum(run.reused for run in distinct.values())
    return StudyPublic(
        id=study.id,
        name=study.name,
        created_at=study.created_at,
        kind=spec["kind"],
        preset=spec["preset"],
        grid=spec["grid"],
        overrides=spec["overrides"],
        seeds=spec["seeds"],
        priority=spec["priority"],
        baseline=spec["baseline"],
        baseline_run_id=study.baseline_run_id,
        groups=groups,
        progress=progress,
        finished=progress["queued"] + progress["running"] == 0,
        skipped=spec["skipped"],
    )


# --- the table ----------------------------------------------------------------------------------


def _number(value: float) -> str:
    return f"{value:+.2f}".replace("-", "−")


def _p_text(p: float) -> str:
    return "p<0.001" if p < 0.001 else f"p={p:.3f}" if p < 0.1 else f"p={p:.2f}"


def metric_stats(values: Sequence[float], baseline: Sequence[float], *, is_baseline: bool) -> MetricStats:
    """One metric of one group against the baseline group, with the texts the page and CSV show."""
    own = stats.spread(values)
    text = "–" if own.mean is None else f"{own.mean:.2f}" if own.std is None else f"{own.mean:.2f} ± {own.std:.2f}"
    if is_baseline:
        return MetricStats(
            values=list(values),
            n=own.n,
            mean=own.mean,
            std=own.std,
            delta=None,
            ci_low=None,
            ci_high=None,
            p_value=None,
            df=None,
            within_noise=None,
            verdict="baseline",
            text=text,
            delta_text="baseline",
        )
    comparison = stats.welch(values, baseline)
    if comparison.within_noise is None:
        verdict = comparison.note or stats.NO_VALUES
    elif comparison.within_noise:
        verdict = "within noise"
    else:
        verdict = "helped" if comparison.delta > 0 else "hurt"
    if comparison.delta is None:
        delta_text = "–"
    elif comparison.low is None:
        delta_text = f"{_number(comparison.delta)}p ({comparison.note})"
    else:
        delta_text = (
            f"{_number(comparison.delta)}p [{_number(comparison.low)}, {_number(comparison.high)}] "
            f"{_p_text(comparison.p_value)}"
        )
    return MetricStats(
        values=list(values),
        n=own.n,
        mean=own.mean,
        std=own.std,
        delta=comparison.delta,
        ci_low=comparison.low,
        ci_high=comparison.high,
        p_value=comparison.p_value,
        df=comparison.df,
        within_noise=comparison.within_noise,
        verdict=verdict,
        text=text,
        delta_text=delta_text,
    )


def study_table(*, session: Session, study: Study, metric: Metric = "valid") -> StudyTable:
    """One row per group: mean +/- std over seeds, delta to the baseline with a 95 % interval and p."""
    spec = study.spec
    runs = _runs(session, study)
    seconds = (
        dict(
            session.execute(
                select(EpochMetric.run_id, func.avg(EpochMetric.seconds))
                .where(EpochMetric.run_id.in_(list(runs)))
                .group_by(EpochMetric.run_id)
            ).all()
        )
        if runs
        else {}
    )
    top1_field, top5_field = METRIC_FIELDS[metric]

    def values(group: Mapping[str, Any], name: str) -> list[float]:
        finished = [runs.get(run["run_id"]) for run in sorted(group["runs"], key=lambda run: run["seed"])]
        return [
            getattr(run, name)
            for run in finished
            if run is not None and run.status == RunStatus.succeeded and getattr(run, name) is not None
        ]

    base_group = next(group for group in spec["groups"] if group["key"] == spec["baseline"])
    base1, base5 = values(base_group, top1_field), values(base_group, top5_field)
    rows = []
    for group in spec["groups"]:
        is_baseline = group is base_group
        ids = [run["run_id"] for run in group["runs"]]
        timings = [seconds[run_id] for run_id in ids if seconds.get(run_id) is not None]
        rows.append(
            StudyTableRow(
                group=group["key"],
                title=group["title"],
                tricks=group["tricks"],
                role=group["role"],
                is_baseline=is_baseline,
                run_ids=ids,
                runs=len(ids),
                succeeded=sum(runs[i].status == RunStatus.succeeded for i in ids if i in runs),
                top1=metric_stats(values(group, top1_field), base1, is_baseline=is_baseline),
                top5=metric_stats(values(group, top5_field), base5, is_baseline=is_baseline),
                report_top1=group["reported_top1"],
                report_top5=group["reported_top5"],
                report=_report_text(group, base_group, is_baseline=is_baseline),
                seconds_per_epoch=math.fsum(timings) / len(timings) if timings else None,
            )
        )
    return StudyTable(
        study_id=study.id,
        metric=metric,
        baseline=spec["baseline"],
        confidence=stats.CONFIDENCE,
        method=METHOD,
        data=rows,
        count=len(rows),
    )


def _report_text(group: Mapping[str, Any], base: Mapping[str, Any], *, is_baseline: bool) -> str | None:
    """The report's own top-1, in its own style: "79.13 (+0.60p)" against its base run."""
    value = group["reported_top1"]
    if value is None:
        return None
    return with_delta(value, None if is_baseline else delta_points(value, base["reported_top1"]))


CSV_COLUMNS = (
    "group",
    "title",
    "tricks",
    "role",
    "runs",
    "succeeded",
    *(
        f"{m}_{part}"
        for m in ("top1", "top5")
        for part in ("mean", "std", "n", "delta", "ci_low", "ci_high", "p_value", "verdict")
    ),
    "report",
    "report_top1",
    "report_top5",
    "seconds_per_epoch",
)


def _as_text(cell: str) -> str:
    # The rule of the compare CSV: a spreadsheet reads "+Cosine" as a formula; a leading quote keeps it text.
    return "'" + cell if cell[:1] in ("=", "+", "-", "@", "\t", "\r") else cell


def table_csv(table: StudyTable) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in table.data:
        values = row.model_dump(
            include={"role", "runs", "succeeded", "report", "report_top1", "report_top5", "seconds_per_epoch"}
        )
        values.update(group=_as_text(row.group), title=_as_text(row.title), tricks=_as_text(row.tricks))
        for name in ("top1", "top5"):
            metric = getattr(row, name)
            values.update(
                {
                    f"{name}_{part}": getattr(metric, part)
                    for part in ("mean", "std", "n", "delta", "ci_low", "ci_high", "p_value", "verdict")
                }
            )
        writer.writerow(values)
    return out.getvalue()


# --- curves -------------------------------------------------------------------------------------


def study_curves(*, session: Session, study: Study) -> StudyCurves:
    """Per group and epoch, the mean and std over the group's runs of the four charted metrics.

    Failed and cancelled runs are left out: a partial curve would bend the band where it stops.
    """
    spec = study.spec
    runs = {
        run_id: run
        for run_id, run in _runs(session, study).items()
        if run.status not in (RunStatus.failed, RunStatus.cancelled)
    }
    rows: dict[int, list[EpochMetric]] = {}
    if runs:
        for row in session.scalars(
            select(EpochMetric)
            .where(EpochMetric.run_id.in_(list(runs)))
            .order_by(EpochMetric.run_id, EpochMetric.epoch)
        ):
            rows.setdefault(row.run_id, []).append(row)
    data = []
    for group in spec["groups"]:
        metrics = [row for run in group["runs"] for row in rows.get(run["run_id"], [])]
        data.append(
            GroupCurves(
                group=group["key"],
                title=group["title"],
                is_baseline=group["key"] == spec["baseline"],
                **{name: curve_band(metrics, name) for name in CURVE_FIELDS},
            )
        )
    epochs = max((run.config["epochs"] for run in runs.values()), default=0)
    return StudyCurves(study_id=study.id, epochs=epochs, data=data, count=len(data))


def curve_band(rows: Iterable[Any], name: str) -> CurveBand:
    """Mean and std of ``name`` over the rows of each epoch (one row per run and epoch)."""
    by_epoch: dict[int, list[float]] = {}
    for row in rows:
        value = getattr(row, name)
        if value is not None:
            by_epoch.setdefault(row.epoch, []).append(value)
    epochs = sorted(by_epoch)
    spreads = [stats.spread(by_epoch[epoch]) for epoch in epochs]
    return CurveBand(
        epoch=epochs, mean=[s.mean for s in spreads], std=[s.std for s in spreads], n=[s.n for s in spreads]
    )


# --- changing -----------------------------------------------------------------------------------


def cancel_study(*, session: Session, study_id: int) -> Study:
    """Cancel the queued and running runs this study created; reused runs belong to others."""
    study = get_study(session=session, study_id=study_id)
    pending = session.scalars(
        select(Run.id).where(
            Run.study_id == study.id,
            Run.status.in_((RunStatus.queued, RunStatus.running)),
            Run.cancel_requested.is_(False),
        )
    ).all()
    if not pending:
        raise Conflict(f"study {study_id} has no queued or running run to cancel")
    for run_id in pending:
        run_service.cancel_run(session=session, run_id=run_id)
    return study
