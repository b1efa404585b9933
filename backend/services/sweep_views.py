"""Sweeps as the API and the pages read them: the public form with its trials and runs, and the
figures (``optuna.visualization``'s, sent as Plotly JSON, beside the objective per trial with its best
so far and the pruned trials marked)."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from backend.models import Run, Sweep, SweepRun, SweepTrial, TrialState, utcnow
from backend.schemas.sweep_spec import PRESETS, SweepSpec
from backend.schemas.sweeps import SweepFigures, SweepPreset, SweepPublic, TrialPublic, TrialRun
from backend.services import sweep_figure_cache as figure_cache
from backend.services import sweep_optuna
from backend.services.sweep_controller import budget_of
from backend.services.sweep_figure_cache import Drawn
from backend.settings import Settings


def sweeps_public(*, session: Session, sweeps: Sequence[Sweep]) -> list[SweepPublic]:
    return [sweep_public(session=session, sweep=sweep) for sweep in sweeps]


def sweep_public(*, session: Session, sweep: Sweep) -> SweepPublic:
    spec = SweepSpec.of(sweep)
    column = spec.objective_info.run_column
    trials = session.scalars(
        select(SweepTrial).where(SweepTrial.sweep_id == sweep.id).order_by(SweepTrial.number)
    ).all()
    runs_of: dict[int, list[TrialRun]] = defaultdict(list)
    for link, run in session.execute(
        select(SweepRun, Run)
        .join(Run, Run.id == SweepRun.run_id)
        .where(SweepRun.trial_id.in_([trial.id for trial in trials]))
        .order_by(SweepRun.confirm, SweepRun.seed)
    ):
        runs_of[link.trial_id].append(
            TrialRun(run_id=run.id, seed=link.seed, confirm=link.confirm, status=run.status, value=getattr(run, column))
        )
    complete = [trial for trial in trials if trial.state == TrialState.complete and trial.value is not None]
    sign = 1 if spec.objective_info.direction == "maximize" else -1
    best = max(complete, key=lambda trial: (sign * (trial.value or 0.0), -trial.number), default=None)
    return SweepPublic(
        id=sweep.id,
        name=sweep.name,
        status=sweep.status,
        spec=spec,
        created_by=sweep.created_by,
        created_at=sweep.created_at,
        finished_at=sweep.finished_at,
        paused_seconds=sweep.paused_seconds
        + ((utcnow() - sweep.paused_at).total_seconds() if sweep.paused_at is not None else 0.0),
        trials=[
            TrialPublic(
                number=trial.number,
                state=trial.state,
                params=trial.params,
                value=trial.value,
                warm=trial.warm,
                retry_of=trial.retry_of,
                reported_epoch=trial.reported_epoch,
                pruned=trial.pruned,
                created_at=trial.created_at,
                finished_at=trial.finished_at,
                runs=runs_of[trial.id],
            )
            for trial in trials
        ],
        counts=dict(Counter(trial.state.value for trial in trials)),
        budget=budget_of(spec),
        best=best.number if best else None,
        conclusion=sweep.conclusion,
    )


def presets() -> list[SweepPreset]:
    return [
        SweepPreset(
            key=key,
            title=preset["title"],
            body={k: v for k, v in preset.items() if k not in ("title", "note")},
            note=preset.get("note"),
        )
        for key, preset in PRESETS.items()
    ]


# --- figures ------------------------------------------------------------------------------------

STATE_MARKERS = {"complete": "circle", "pruned": "x", "failed": "triangle-down", "running": "circle-open"}


def _history(sweep: SweepPublic) -> dict[str, Any]:
    """The objective per trial in the order they were queued, with the best so far as a line."""
    maximize = sweep.spec.objective_info.direction == "maximize"
    traces = []
    for state in ("complete", "pruned", "failed", "running"):
        shown = [trial for trial in sweep.trials if trial.state.value == state and trial.value is not None]
        if shown:
            traces.append(
                {
                    "type": "scatter",
                    "mode": "markers",
                    "name": state,
                    "x": [trial.number for trial in shown],
                    "y": [trial.value for trial in shown],
                    "text": [trial.pruned or json.dumps(trial.params) for trial in shown],
                    "marker": {"symbol": STATE_MARKERS[state], "size": 9},
                }
            )
    best_x, best_y, best = [], [], None
    for trial in sweep.trials:
        if trial.state == TrialState.complete and trial.value is not None:
            better = best is None or (trial.value > best if maximize else trial.value < best)
            best = trial.value if better else best
            best_x.append(trial.number)
            best_y.append(best)
    traces.append(
        {"type": "scatter", "mode": "lines", "name": "best so far", "x": best_x, "y": best_y, "line": {"shape": "hv"}}
    )
    title = sweep.spec.objective_info.title
    return {
        "data": traces,
        "layout": {
            "title": {"text": f"{title} per trial"},
            # Trials are numbered: ticks on whole numbers, at most about ten of them.
            "xaxis": {"title": {"text": "trial"}, "tick0": 0, "dtick": max(1, -(-len(sweep.trials) // 10))},
            "yaxis": {"title": {"text": title}},
        },
    }


def _finished(session: Session, sweep_id: int) -> tuple[int, int, datetime | None]:
    """What the sweep's finished trials are in tricklab's rows: how many, how many complete, the last end."""
    row = session.execute(
        select(
            func.count(),
            func.count().filter(SweepTrial.state == TrialState.complete),
            func.max(SweepTrial.finished_at),
        ).where(SweepTrial.sweep_id == sweep_id, SweepTrial.state != TrialState.running)
    ).one()
    return int(row[0]), int(row[1]), row[2]


def _draw(settings: Settings, sweep: Sweep) -> tuple[Drawn, int]:
    """Optuna's parallel coordinates, slice plots and PED-ANOVA importance, and its complete trials' count."""
    import optuna
    from optuna import visualization

    study = sweep_optuna.study(settings.database_url, sweep)
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    notes: dict[str, str] = {}
    figures: dict[str, Any] = {}
    plots = {
        "parallel": lambda: visualization.plot_parallel_coordinate(study),
        "slice": lambda: visualization.plot_slice(study),
        "importance": lambda: visualization.plot_param_importances(
            study, evaluator=optuna.importance.PedAnovaImportanceEvaluator()
        ),
    }
    needed = {"parallel": 1, "slice": 1, "importance": 2}
    for name, plot in plots.items():
        if len(complete) < needed[name]:
            figures[name] = None
            notes[name] = f"needs {needed[name]} complete trials; {len(complete)} so far"
            continue
        try:
            figures[name] = json.loads(plot().to_json())
        except (ValueError, RuntimeError) as exc:  # e.g. one parameter value only: no importance to measure
            figures[name] = None
            notes[name] = str(exc)
    return Drawn(figures, notes), len(complete)


def sweep_figures(*, session: Session, settings: Settings, sweep: Sweep) -> SweepFigures:
    """The history from tricklab's rows; Optuna's figures from the cache while no trial has been told or
    pruned since they were drawn (``sweep_figure_cache``)."""
    public = sweep_public(session=session, sweep=sweep)
    key = (settings.database_url, sweep.id, sweep.created_at)
    finished = _finished(session, sweep.id)
    drawn = figure_cache.FIGURES.get(key, finished)
    if drawn is None:
        drawn, told = _draw(settings, sweep)
        if told == finished[1]:  # Optuna has been told of every complete trial the rows hold
            figure_cache.FIGURES.put(key, finished, drawn)
    return SweepFigures(history=_history(public), notes=drawn.notes, **drawn.figures)
