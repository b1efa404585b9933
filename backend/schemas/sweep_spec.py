"""What a sweep is: its search space over RunConfig keys, objective, budget, seeds, sampler and pruner.

One home for the sweep's vocabulary, at the bottom of the backend's layers: the request body, the
stored ``sweeps.spec`` (``SweepSpec.of``), the controller and the pages all read these words.
Checks that need one field alone live here (pydantic answers them as 422s at the field); checks that
need the RunConfig (an unknown key, a value the config refuses, a condition that never holds) are
``backend.services.sweep_plan``'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from backend.models import Sweep
from trainer.config import NUMBER, Float, Int

MAX_TRIALS = 1000
MAX_SEEDS = 10
# Bounds before NUMBER, so that an optional field's JSON schema keeps them (see trainer.config).
Minutes = Annotated[float, Field(gt=0, le=60 * 24 * 30), NUMBER, Field(allow_inf_nan=False)]
SamplerSeed = Annotated[int, Field(ge=0, le=2**31 - 1), NUMBER]

# --- the search space -----------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FloatParam(_Strict):
    type: Literal["float"]
    low: Float = Field(description="the smallest value tried")
    high: Float = Field(description="the largest value tried (above low)")
    log: bool = Field(False, description="sample on a log scale (low must be above 0)")

    @model_validator(mode="after")
    def _range(self) -> FloatParam:
        if self.low >= self.high:
            raise ValueError(f"high: must be above low ({self.low})")
        if self.log and self.low <= 0:
            raise ValueError("low: a log range starts above 0")
        return self


class IntParam(_Strict):
    type: Literal["int"]
    low: Int = Field(description="the smallest value tried")
    high: Int = Field(description="the largest value tried (above low)")
    log: bool = Field(False, description="sample on a log scale (low must be at least 1)")

    @model_validator(mode="after")
    def _range(self) -> IntParam:
        if self.low >= self.high:
            raise ValueError(f"high: must be above low ({self.low})")
        if self.log and self.low <= 0:
            raise ValueError("low: a log range starts above 0")
        return self


class ChoiceParam(_Strict):
    type: Literal["choice"]
    values: list[Any] = Field(min_length=1, max_length=100, description="the values to choose from")

    @model_validator(mode="after")
    def _distinct(self) -> ChoiceParam:
        for value in self.values:
            if not (value is None or isinstance(value, bool | int | float | str)):
                raise ValueError("values: each value is a number, a text, true, false or null")
        if len({repr(value) for value in self.values}) < len(self.values):
            raise ValueError("values: a value is listed twice")
        return self


Param = Annotated[FloatParam | IntParam | ChoiceParam, Field(discriminator="type")]


@dataclass(frozen=True)
class Condition:
    """A RunConfig key that changes nothing unless another key holds a value: the sweep suggests it
    only where the condition holds, and refuses a space where it never can."""

    key: str
    holds: Any  # a predicate on the key's value
    says: str


# Derived from RunConfig's own rules: distillation's knobs act only with a teacher; momentum only
# with SGD; warmup only under cosine or constant (OneCycle refuses it).
CONDITIONS: dict[str, Condition] = {
    "tricks.kd.alpha": Condition("tricks.kd.teacher", lambda v: v is not None, "tricks.kd.teacher is set"),
    "tricks.kd.temperature": Condition("tricks.kd.teacher", lambda v: v is not None, "tricks.kd.teacher is set"),
    "optim.momentum": Condition("optim.name", lambda v: v == "sgd", "optim.name is sgd"),
    "schedule.warmup_epochs": Condition(
        "schedule.name", lambda v: v in ("cosine", "constant"), "schedule.name is cosine or constant"
    ),
}
# Keys the sweep sets on each run itself.
SWEEP_KEYS = {
    "name": "each run is named after the sweep, its trial and its seed",
    "seed": "the sweep runs each trial over its paired seeds (seeds)",
    "epochs": "the pruner's resource: set it in base",
}


# --- the objective --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Objective:
    title: str
    direction: Literal["maximize", "minimize"]
    run_column: str  # the run's figure once it has finished
    epoch_column: str  # the epoch rows' figure the pruner is told, as its best so far


OBJECTIVES: dict[str, Objective] = {
    "peak_valid_top1": Objective("peak valid top-1 (%)", "maximize", "peak_valid_top1", "valid_top1"),
    "peak_valid_top5": Objective("peak valid top-5 (%)", "maximize", "peak_valid_top5", "valid_top5"),
    "checkpoint_valid_loss": Objective("lowest valid loss", "minimize", "checkpoint_valid_loss", "valid_loss"),
    "test_top1": Objective("test top-1 of the kept checkpoint (%)", "maximize", "test_top1", "valid_top1"),
}
ObjectiveName = Literal["peak_valid_top1", "peak_valid_top5", "checkpoint_valid_loss", "test_top1"]


# --- budget, sampler, pruner, noise -------------------------------------------------------------


class Budget(_Strict):
    trials: Int = Field(20, ge=1, le=MAX_TRIALS, description="configurations to try (retries of failed ones aside)")
    parallel: Int = Field(2, ge=1, le=64, description="trials queued at once")
    minutes: Minutes | None = Field(None, description="queue no new trial after this many minutes; none = no limit")


class TPE(_Strict):
    name: Literal["tpe"]
    seed: SamplerSeed | None = Field(None, description="a fixed seed reproduces the suggestions")
    n_startup_trials: Int = Field(5, ge=0, le=MAX_TRIALS, description="random trials before TPE models the space")


class RandomSearch(_Strict):
    name: Literal["random"]
    seed: SamplerSeed | None = Field(None, description="a fixed seed reproduces the suggestions")


class Grid(_Strict):
    name: Literal["grid"]
    seed: SamplerSeed | None = Field(None, description="the order the grid's cells are tried in")


class CmaEs(_Strict):
    name: Literal["cmaes"]
    seed: SamplerSeed | None = Field(None, description="a fixed seed reproduces the suggestions")
    n_startup_trials: Int = Field(1, ge=0, le=MAX_TRIALS, description="random trials before CMA-ES adapts")


Sampler = Annotated[TPE | RandomSearch | Grid | CmaEs, Field(discriminator="name")]


class NoPruner(_Strict):
    name: Literal["none"]


class MedianPruner(_Strict):
    name: Literal["median"]
    n_startup_trials: Int = Field(3, ge=0, le=MAX_TRIALS, description="trials that run to the end before any is pruned")
    n_warmup_steps: Int = Field(0, ge=0, le=1000, description="epochs before a trial can be pruned")


class Halving(_Strict):
    """Successive halving: at rung r (after min_resource x reduction_factor^(r + min_early_stopping_rate)
    epochs) a trial goes on only if it is in the top 1/reduction_factor of the trials that reached it."""

    name: Literal["halving"]
    min_resource: Int = Field(1, ge=1, le=1000, description="epochs before the first rung")
    reduction_factor: Int = Field(2, ge=2, le=10, description="1 / the share of trials that go on at each rung")
    min_early_stopping_rate: Int = Field(0, ge=0, le=10, description="rungs skipped before the first one")


Pruner = Annotated[NoPruner | MedianPruner | Halving, Field(discriminator="name")]


class Confirm(_Strict):
    top: Int = Field(2, ge=2, le=10, description="the best configurations rerun")
    seeds: Int = Field(2, ge=1, le=MAX_SEEDS, description="more seeds each, the same for every one")


class SweepSpec(_Strict):
    """A sweep's design: the request, less its name; ``sweeps.spec`` holds it as JSON."""

    base: dict[str, Any] = Field(
        default_factory=dict, description="dotted RunConfig keys every trial shares (data.root, epochs, ...)"
    )
    space: dict[str, Param] = Field(min_length=1, max_length=32, description="dotted RunConfig key: its range")
    objective: ObjectiveName = Field("peak_valid_top1", description="the run's figure the search optimizes")
    budget: Budget = Field(default_factory=Budget)
    seeds: Int = Field(
        1, ge=1, le=MAX_SEEDS, description="paired seeds per trial (base seed and the next); the mean is the objective"
    )
    sampler: Sampler = Field(default_factory=lambda: TPE(name="tpe"))
    pruner: Pruner = Field(default_factory=lambda: NoPruner(name="none"))
    confirm: Confirm | None = Field(
        None, description="rerun the best configurations over more seeds, then name a winner"
    )
    warm_start: bool = Field(False, description="finished runs whose configs fall in the space join as trials")
    priority: Int = Field(0, ge=-1000, le=1000, description="queue priority of every run")

    @classmethod
    def of(cls, sweep: Sweep) -> SweepSpec:
        return cls.model_validate(sweep.spec)

    @property
    def objective_info(self) -> Objective:
        return OBJECTIVES[self.objective]


class SweepCreate(SweepSpec):
    name: Annotated[str, Field(min_length=1, max_length=200)]

    def spec(self) -> SweepSpec:
        return SweepSpec.model_validate(self.model_dump(exclude={"name"}))


# --- the presets from the seed report -------------------------------------------------------------

PRESETS: dict[str, dict[str, Any]] = {
    "mixup_report": {
        "title": "mixup alpha, the report's way",
        "space": {"tricks.mixup_alpha": {"type": "choice", "values": [1.0, 0.2, 0.1, 0.01]}},
        "sampler": {"name": "grid"},
        "budget": {"trials": 4, "parallel": 2},
        "seeds": 3,
        "confirm": {"top": 2, "seeds": 2},
    },
    "recipe_searched": {
        "title": "the report's recipe, searched",
        "space": {
            "optim.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
            "tricks.label_smoothing": {"type": "float", "low": 0.0, "high": 0.2},
            "tricks.kd.temperature": {"type": "float", "low": 1.0, "high": 20.0},
            "tricks.kd.alpha": {"type": "float", "low": 0.0, "high": 1.0},
            "tricks.mixup_alpha": {"type": "float", "low": 0.0, "high": 1.0},
        },
        "sampler": {"name": "tpe"},
        "pruner": {"name": "halving", "min_resource": 1, "reduction_factor": 2},
        "budget": {"trials": 30, "parallel": 2},
        "note": "set tricks.kd.teacher in base to a finished teacher run: the KD keys act only with one",
    },
}
