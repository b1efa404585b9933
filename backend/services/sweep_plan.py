"""A sweep's request checked against RunConfig, and the configs of its trials.

Every bad input is refused here, located at its field, before anything is queued: a key RunConfig does
not have, a bound or choice it refuses, a conditional key whose condition can never hold, a sampler
that cannot take the space. The pydantic schema (``backend.schemas.sweep_spec``) already refused what
one field says alone (low >= high, an empty choice list, a budget of 0, an unknown objective).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from backend.schemas.sweep_spec import CONDITIONS, SWEEP_KEYS, ChoiceParam, CmaEs, Grid, SweepSpec
from backend.services.errors import InvalidSearch
from trainer.config import ConfigError, RunConfig, apply_overrides, dotted_keys

_SECTIONS = {key for key in dotted_keys() if any(other.startswith(key + ".") for other in dotted_keys())}
_LEAVES = set(dotted_keys()) - _SECTIONS


def value_at(config: Mapping[str, Any], key: str) -> Any:
    """The value of a dotted key in a nested config dict."""
    node: Any = config
    for part in key.split("."):
        node = node[part]
    return node


def base_values(spec: SweepSpec) -> dict[str, Any]:
    """The whole config every trial starts from (RunConfig's defaults under ``base``)."""
    return RunConfig.from_dict(apply_overrides({}, spec.base)).model_dump(mode="json")


def ordered_keys(spec: SweepSpec) -> list[str]:
    """The space's keys, each condition's key before the keys it governs (Optuna suggests in this order)."""
    return sorted(spec.space, key=lambda key: (key in CONDITIONS, key))


def applies(key: str, params: Mapping[str, Any], base: Mapping[str, Any]) -> bool:
    """Whether ``key`` acts in a trial with ``params`` over ``base``: its condition, if any, holds."""
    condition = CONDITIONS.get(key)
    if condition is None:
        return True
    value = params[condition.key] if condition.key in params else value_at(base, condition.key)
    return bool(condition.holds(value))


def trial_config(spec: SweepSpec, params: Mapping[str, Any], *, seed: int, name: str) -> dict[str, Any]:
    """The config of one run of a trial: ``base``, the trial's parameters, its seed and name."""
    return apply_overrides({}, {**spec.base, **params, "seed": seed, "name": name})


def seeds(spec: SweepSpec, *, confirm: bool = False) -> list[int]:
    """The paired seeds: the base seed and the ones after it; the confirmation's come next."""
    first = int(base_values(spec)["seed"]) + (spec.seeds if confirm else 0)
    count = spec.confirm.seeds if confirm and spec.confirm else spec.seeds
    return [first + index for index in range(count)]


def grid_size(spec: SweepSpec) -> int:
    return math.prod(len(param.values) for param in spec.space.values() if isinstance(param, ChoiceParam))


def check(spec: SweepSpec) -> None:
    """Raise InvalidSearch naming every field RunConfig or the sampler refuses."""
    errors: dict[tuple[str, ...], str] = {}
    try:
        base = RunConfig.from_dict(apply_overrides({}, spec.base)).model_dump(mode="json")
    except ConfigError as exc:
        raise InvalidSearch({("base", field): message for field, message in exc.errors.items()}) from None
    for key, param in spec.space.items():
        if key in SWEEP_KEYS:
            errors[("space", key)] = f"the sweep sets it: {SWEEP_KEYS[key]}"
        elif key in _SECTIONS:
            errors[("space", key)] = "a section, not a key: name one of its keys"
        elif key not in _LEAVES:
            errors[("space", key)] = "unknown key"
        else:
            message = _refused_value(spec, key, param)
            if message:
                errors[("space", key)] = message
    if errors:
        raise InvalidSearch(errors)
    for key in spec.space:
        if key in CONDITIONS and not _can_hold(spec, key, base):
            condition = CONDITIONS[key]
            errors[("space", key)] = (
                f"acts only where {condition.says}, which no trial's config holds: "
                f"set {condition.key} in base or add it to the space"
            )
    if isinstance(spec.sampler, Grid):
        for key, param in spec.space.items():
            if not isinstance(param, ChoiceParam):
                errors[("space", key)] = f"the grid sampler takes choices only; this is a {param.type} range"
    if isinstance(spec.sampler, CmaEs):
        for key, param in spec.space.items():
            if isinstance(param, ChoiceParam):
                errors[("space", key)] = "CMA-ES searches numbers only: give a float or int range"
    if errors:
        raise InvalidSearch(errors)


def _can_hold(spec: SweepSpec, key: str, base: Mapping[str, Any]) -> bool:
    condition = CONDITIONS[key]
    param = spec.space.get(condition.key)
    if param is None:
        return bool(condition.holds(value_at(base, condition.key)))
    candidates = param.values if isinstance(param, ChoiceParam) else [param.low, param.high]
    return any(condition.holds(value) for value in candidates)


def _holding(spec: SweepSpec, key: str) -> dict[str, Any]:
    """Overrides under which ``key``'s condition holds, so that its values are checked where they act."""
    condition = CONDITIONS.get(key)
    param = spec.space.get(condition.key) if condition else None
    if condition is None or not isinstance(param, ChoiceParam):
        return {}
    return next(({condition.key: value} for value in param.values if condition.holds(value)), {})


def _refused_value(spec: SweepSpec, key: str, param: Any) -> str | None:
    """RunConfig's message for the first bound or choice it refuses, naming which."""
    candidates = (
        [("value", value) for value in param.values]
        if isinstance(param, ChoiceParam)
        else [("low", param.low), ("high", param.high)]
    )
    for label, value in candidates:
        try:
            RunConfig.from_dict(apply_overrides({}, {**spec.base, **_holding(spec, key), key: value}))
        except ConfigError as exc:
            message = exc.errors.get(key) or next(
                (text for field, text in exc.errors.items() if field.startswith(key)), None
            )
            if message:
                return f"{label} {value!r}: {message}"
    return None
