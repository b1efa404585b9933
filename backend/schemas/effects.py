"""Response body of /api/v1/studies/{id}/effects: a grid study's factorial effects."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from backend.schemas.studies import Metric

ESTIMATE_HELP = (
    "in points: twice the coefficient under −1/+1 coding. For a main effect in a balanced grid, the mean "
    "with the switch at its second level minus the mean at its first (the baseline's), over every "
    "combination of the others; for an interaction a × b, half of how much a's effect changes when b "
    "goes from its first level to its second"
)


class EffectPublic(BaseModel):
    effect: str = Field(description='the switch, or "a × b" for the interaction of two switches')
    kind: Literal["main", "interaction"]
    switches: list[str] = Field(description="the one or two switches of the effect")
    label: str = Field(description='how the page names it, e.g. "LS" or "cosine × LS"')
    estimate: float = Field(description=ESTIMATE_HELP)
    std_error: float | None = Field(description="of the estimate, in points; null when the seeds show no spread")
    ci_low: float | None = Field(description="95 % confidence interval (t on the residual degrees of freedom)")
    ci_high: float | None = Field(description="upper end of the 95 % confidence interval, in points")
    p_value: float | None = Field(description="two-sided t test of 'no effect', unadjusted")
    p_holm: float | None = Field(description="p_value after Holm's correction across every estimated effect")
    within_noise: bool | None = Field(description="whether the interval holds 0; null without an interval")
    text: str = Field(description='e.g. "+2.90p [+1.80, +4.00] p=0.004 (Holm p=0.012)"')


class FactorPublic(BaseModel):
    name: str = Field(description="the grid's switch: a trick name or a dotted RunConfig key")
    label: str
    levels: list[Any] = Field(description="its values in the grid; coded −1 for the first, +1 for the second")


class NotEstimable(BaseModel):
    effect: str | None = Field(description="the effect that cannot be estimated; null: none can")
    reason: str


class MissingCell(BaseModel):
    cell: dict[str, Any] = Field(description="the combination of switch values")
    group: str | None = Field(description="the study's group for it; null when the combination was never planned")
    reason: str = Field(description="why it has no result: skipped as invalid, still running, failed, ...")


class StudyEffects(BaseModel):
    study_id: int = Field(description="the study's id")
    metric: Metric = Field(
        description="valid: the peak valid top-1; test: test top-1 of the kept checkpoint (lowest valid loss)"
    )
    model: str | None = Field(description='the terms fitted, e.g. "top-1 ~ cosine + LS + cosine × LS"')
    method: str
    confidence: float = Field(description="confidence level of the intervals, e.g. 0.95")
    switches: list[FactorPublic] = Field(description="the grid's switches that take part in the model")
    observations: int = Field(description="succeeded runs in the fit, one per seed and cell")
    residual_df: int | None = Field(description="residual degrees of freedom of the intervals and p-values")
    residual_std: float | None = Field(description="seed-to-seed standard deviation left by the model, in points")
    data: list[EffectPublic] = Field(description="main effects first, then interactions, in the grid's order")
    count: int = Field(description="effects in data")
    not_estimable: list[NotEstimable] = Field(description="what cannot be estimated, and why")
    missing_cells: list[MissingCell]
    notes: list[str] = Field(description="what the estimates rest on beyond the model, and what may still move them")
    sentence: str = Field(description="the finding in one paragraph, written from the numbers")
