"""The LR range test's sweep: its typed spec, and the pure functions of it the trainer and the server share.

A range test trains a fresh copy of a run's model for ``steps`` batches while the learning rate rises
from ``start_lr`` to ``end_lr``, and reads the loss. The report found its FOUND_LR that way: Adam from
1e-7 to 10 over 100 steps, exponentially, the loss smoothed at 0.05, stopping once the smoothed loss
exceeded 5x its lowest (the defaults here). Every rate is the config's ``optim.lr``: each layer group
trains at ``rate / divisor`` (times ``batch_size / 256`` under linear scaling), so the rate the test
suggests is the one to put into ``optim.lr``.

The trainer stops the sweep with these functions, and the server reads the stored steps with the same
ones, so the curve, the minimum and the suggestion are one computation wherever they are shown. No
torch here: the web process imports this module.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from trainer.config import ConfigError, validation_errors
from trainer.files import write_atomic

MAX_STEPS = 10_000
LARGEST_LR = 10.0  # the largest optim.lr a RunConfig takes: a suggestion always fits the form


def _number(value: Any) -> Any:
    # JSON's true and false are no numbers; pydantic would read them as 1 and 0.
    if isinstance(value, bool):
        raise PydanticCustomError("number_type", "must be a number, not true or false")
    return value


# The bounds before the check of the number, so that the schema says them (see trainer.config.NUMBER).
Rate = Annotated[float, Field(gt=0, le=LARGEST_LR, allow_inf_nan=False), BeforeValidator(_number)]


class LRSweep(BaseModel):
    """How the range test raises the learning rate, smooths the loss and decides it diverged."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    start_lr: Rate = Field(1e-7, description="the rate of the first step")
    end_lr: Rate = Field(LARGEST_LR, description="the rate of the last step (reached unless the loss diverges first)")
    steps: Annotated[int, BeforeValidator(_number)] = Field(
        100, ge=2, le=MAX_STEPS, description="training steps (batches) from start_lr to end_lr"
    )
    mode: Literal["exponential", "linear"] = Field(
        "exponential", description="exponential: the same factor every step (the report's); linear: the same increment"
    )
    smoothing: Annotated[float, BeforeValidator(_number)] = Field(
        0.05,
        gt=0,
        le=1,
        allow_inf_nan=False,
        description="weight of each new loss in the moving average the curve shows (the report's 0.05); 1 = none",
    )
    stop_factor: Annotated[float, BeforeValidator(_number)] = Field(
        5.0,
        gt=1,
        le=1000,
        allow_inf_nan=False,
        description="stop once the smoothed loss exceeds this many times its lowest so far (the report's 5)",
    )

    @field_validator("end_lr")
    @classmethod
    def _rises(cls, end_lr: float, info: ValidationInfo) -> float:
        start_lr = info.data.get("start_lr")
        if start_lr is not None and end_lr <= start_lr:
            raise PydanticCustomError("sweep_range", "must be above start_lr ({start})", {"start": start_lr})
        return end_lr

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> LRSweep:
        """Validate, raising ConfigError keyed by field name (``steps``, ``end_lr``)."""
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise ConfigError(validation_errors(exc)) from None

    @classmethod
    def load(cls, path: str | Path) -> LRSweep:
        try:
            return cls.model_validate_json(Path(path).read_text())
        except ValidationError as exc:
            errors = validation_errors(exc)
            raise ConfigError({f"sweep.{field}": message for field, message in errors.items()}) from None

    def save(self, path: str | Path) -> None:
        # Whole or not at all, as the run's config.json.
        write_atomic(Path(path), self.model_dump_json(indent=2) + "\n")


# --- the schedule -------------------------------------------------------------------------------


def sweep_rate(sweep: LRSweep, index: int) -> float:
    """The rate of step ``index`` (0-based): ``start_lr`` at 0, ``end_lr`` at ``steps - 1``."""
    if not 0 <= index < sweep.steps:
        raise ValueError(f"step index {index} is outside the sweep's {sweep.steps} steps")
    fraction = index / (sweep.steps - 1)
    if sweep.mode == "exponential":
        return sweep.start_lr * (sweep.end_lr / sweep.start_lr) ** fraction
    return sweep.start_lr + (sweep.end_lr - sweep.start_lr) * fraction


def sweep_rates(sweep: LRSweep) -> list[float]:
    return [sweep_rate(sweep, index) for index in range(sweep.steps)]


# --- smoothing and the stop rule ------------------------------------------------------------------


class Smoother:
    """The moving average of the losses, its lowest value so far, and whether the sweep must stop.

    The first loss starts the average; each later one enters with weight ``smoothing``, as the report's
    range test (the notebook it followed) smoothed. ``stop_reason`` says why a step ends the sweep: a loss
    that is not a finite number, or a smoothed loss past ``stop_factor`` times the lowest one.
    """

    def __init__(self, *, smoothing: float, stop_factor: float):
        self.smoothing = smoothing
        self.stop_factor = stop_factor
        self.value: float | None = None
        self.lowest = math.inf

    def add(self, loss: float) -> float:
        self.value = loss if self.value is None else self.smoothing * loss + (1 - self.smoothing) * self.value
        self.lowest = min(self.lowest, self.value)
        return self.value

    def stop_reason(self, loss: float | None) -> str | None:
        """Add ``loss`` (None: a loss the JSON could not carry, a NaN) and say whether the sweep ends here."""
        if loss is None or not math.isfinite(loss):
            return "the loss is not a finite number: training diverged"
        smoothed = self.add(loss)
        if smoothed > self.stop_factor * self.lowest:
            return f"the smoothed loss {smoothed:.4g} passed {self.stop_factor:g}x its lowest, {self.lowest:.4g}"
        return None


def smooth(losses: Sequence[float], smoothing: float) -> list[float]:
    """The moving average of ``losses``, as ``Smoother`` computes it."""
    smoother = Smoother(smoothing=smoothing, stop_factor=math.inf)
    return [smoother.add(loss) for loss in losses]


# --- reading a curve -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CurvePoint:
    step: int  # 1-based
    lr: float
    loss: float | None  # None: not a finite number
    smoothed: float | None  # None from the first loss that is not finite


@dataclass(frozen=True)
class Stop:
    step: int
    reason: str


@dataclass(frozen=True)
class Analysis:
    points: list[CurvePoint]
    stop: Stop | None  # the step where the stop rule fired, or None: the sweep reached end_lr (or has not ended)
    minimum: CurvePoint | None  # the lowest smoothed loss
    steepest: CurvePoint | None  # the steepest fall of the smoothed loss before its minimum
    suggestion: float | None  # the rate to use: the steepest descent's

    @property
    def minimum_tenth(self) -> float | None:
        """The other usual pick: a tenth of the minimum's rate."""
        return None if self.minimum is None else self.minimum.lr / 10


def _position(lr: float, mode: str) -> float:
    # The slope is taken along the axis the rates are spaced on.
    return math.log10(lr) if mode == "exponential" else lr


def steepest_descent(points: Sequence[CurvePoint], mode: str) -> CurvePoint | None:
    """The point of most negative slope of the smoothed loss, among those up to its minimum: central
    differences inside, one-sided at the ends (numpy.gradient's rule, on the points' own spacing).
    None when the curve never falls."""
    curve = [(point, point.smoothed) for point in points if point.smoothed is not None]
    if len(curve) < 2:
        return None
    lowest = min(range(len(curve)), key=lambda i: curve[i][1])
    steepest: tuple[float, CurvePoint] | None = None
    for i in range(lowest + 1):
        (before, low), (after, high) = curve[max(i - 1, 0)], curve[min(i + 1, len(curve) - 1)]
        slope = (high - low) / (_position(after.lr, mode) - _position(before.lr, mode))
        if slope < 0 and (steepest is None or slope < steepest[0]):
            steepest = (slope, curve[i][0])
    return None if steepest is None else steepest[1]


def analyse(lrs: Sequence[float], losses: Sequence[float | None], sweep: LRSweep, *, finished: bool) -> Analysis:
    """The curve of the steps so far: smoothed, cut where the stop rule fired, its minimum and the
    suggestion. ``finished``: the sweep ended (stopped or reached its last step), so the suggestion is
    final; before that it is None."""
    smoother = Smoother(smoothing=sweep.smoothing, stop_factor=sweep.stop_factor)
    points: list[CurvePoint] = []
    stop: Stop | None = None
    for index, (lr, loss) in enumerate(zip(lrs, losses, strict=True)):
        reason = smoother.stop_reason(loss)
        finite = loss is not None and math.isfinite(loss)
        points.append(CurvePoint(index + 1, lr, loss if finite else None, smoother.value if finite else None))
        if reason is not None:
            stop = Stop(index + 1, reason)
            break
    smoothed = [(point.smoothed, point.step, point) for point in points if point.smoothed is not None]
    minimum = min(smoothed)[2] if smoothed else None
    steepest = steepest_descent(points, sweep.mode) if finished else None
    return Analysis(
        points=points,
        stop=stop,
        minimum=minimum,
        steepest=steepest,
        suggestion=None if steepest is None else steepest.lr,
    )


# --- the curve as a table ----------------------------------------------------------------------------

CURVE_ROWS = 20


def curve_table(analysis: Analysis, *, rows: int = CURVE_ROWS) -> str:
    """The curve as ``tricklab lr-find`` prints it: about ``rows`` steps evenly spread (0: every step),
    the minimum and the steepest descent always among them, then what the sweep found."""
    points = analysis.points
    marks: dict[int, str] = {}
    if analysis.steepest is not None:
        marks[analysis.steepest.step] = "steepest descent: the suggestion"
    if analysis.minimum is not None:
        marks[analysis.minimum.step] = "minimum"
    if analysis.stop is not None:
        marks.setdefault(analysis.stop.step, "stopped")
    if rows and len(points) > rows:
        shown = {points[round(i * (len(points) - 1) / (rows - 1))].step for i in range(rows)} | set(marks)
    else:
        shown = {point.step for point in points}
    lines = [f"{'step':>5}  {'lr':>9}  {'loss':>9}  {'smoothed':>9}"]
    for point in points:
        if point.step in shown:
            mark = f"  <- {marks[point.step]}" if point.step in marks else ""
            lines.append(
                f"{point.step:>5}  {point.lr:>9.2e}  {_cell(point.loss)}  {_cell(point.smoothed)}{mark}".rstrip()
            )
    lines.append("")
    lines.extend(findings(analysis))
    return "\n".join(lines)


def _cell(value: float | None) -> str:
    return f"{value:>9.4f}" if value is not None else f"{'-':>9}"


def findings(analysis: Analysis) -> list[str]:
    """What the curve says, one sentence a line: the minimum, the suggestion, where it stopped."""
    said = []
    if analysis.minimum is not None:
        minimum = analysis.minimum
        said.append(
            f"minimum: smoothed loss {minimum.smoothed:.4f} at lr {minimum.lr:.2e} (step {minimum.step}); "
            f"a tenth of its rate: {minimum.lr / 10:.2e}"
        )
    if analysis.suggestion is not None:
        said.append(f"suggestion: optim.lr = {analysis.suggestion:.2e} (the steepest descent of the smoothed loss)")
    else:
        said.append("no suggestion: the smoothed loss never fell; start the sweep lower (start_lr) or check the data")
    if analysis.stop is not None:
        said.append(f"stopped at step {analysis.stop.step}: {analysis.stop.reason}")
    return said
