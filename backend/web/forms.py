"""The launch form, derived from RunConfig's JSON schema: a new config field appears without template edits.

Each leaf field becomes one input named by its dotted path ("tricks.kd.alpha"), which is also how the
API's 422 errors locate it. Fields are grouped as the report thinks of a run; a section this table
does not know gets a group of its own, titled from the schema. Presets are given as the values they
put into these inputs (``services.presets``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

from backend.schemas.study_spec import CPU_TRYOUT, SEED_RUNS
from backend.schemas.workers import WorkersPublic
from trainer.config import RunConfig

Kind = Literal["integer", "number", "boolean", "choice", "text", "optional-text", "teacher"]

# Group of each top-level key; a top-level scalar not listed joins "run".
GROUP_OF = {
    "name": "run",
    "seed": "run",
    "epochs": "optimisation",
    "batch_size": "optimisation",
    "optim": "optimisation",
    "schedule": "optimisation",
    "data": "data",
    "model": "model",
    "tricks": "tricks",
    "runtime": "runtime",
}
GROUP_TITLES = {
    "run": "Run",
    "data": "Data",
    "model": "Model",
    "optimisation": "Optimisation and schedule",
    "tricks": "Tricks",
    "runtime": "Runtime",
}
# A section that is not its group's namesake ("schedule" in "optimisation") is a fieldset of its own.
SECTION_TITLES = {
    "optim": "Optimizer",
    "schedule": "Schedule",
    "optim.layer_lr_divisors": "Per-layer learning-rate divisors",
    "tricks.kd": "Knowledge distillation",
}
# Labels that the field name alone would spell badly; every other label is the humanised name.
LABELS = {"lr": "Learning rate", "arch": "Architecture", "amp": "Mixed precision (AMP)", "fc": "fc"}
# A teacher refers to another run, so it gets a picker of finished runs instead of a text box.
WIDGET_OF: dict[str, Kind] = {"tricks.kd.teacher": "teacher"}


@dataclass(frozen=True)
class FormField:
    name: str  # dotted path, the input's name and id
    label: str
    kind: Kind
    default: Any
    description: str | None = None
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None

    @property
    def html_id(self) -> str:
        return "f-" + self.name.replace(".", "-")


@dataclass
class FormSection:
    """A nested config model shown as a fieldset inside its group, e.g. ``tricks.kd``."""

    name: str
    title: str
    description: str | None
    fields: list[FormField] = field(default_factory=list)


@dataclass
class FormGroup:
    key: str
    title: str
    fields: list[FormField] = field(default_factory=list)
    sections: list[FormSection] = field(default_factory=list)


def _text(description: str | None) -> str | None:
    # Descriptions come from docstrings and Field(description=...); drop their reST code quotes.
    return description.replace("``", "") if description else None


def _label(key: str) -> str:
    return LABELS.get(key) or key.replace("_", " ").capitalize()


def _resolve(schema: dict[str, Any], definitions: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    return definitions[ref.rsplit("/", 1)[-1]] if ref else schema


def _kind(name: str, schema: dict[str, Any]) -> Kind:
    if name in WIDGET_OF:
        return WIDGET_OF[name]
    if "enum" in schema:
        return "choice"
    types = [option.get("type") for option in schema.get("anyOf", [schema])]
    if types == ["boolean"]:
        return "boolean"
    if types == ["integer"]:
        return "integer"
    if types == ["number"]:
        return "number"
    return "optional-text" if "null" in types else "text"


def _leaf(name: str, key: str, schema: dict[str, Any]) -> FormField:
    return FormField(
        name=name,
        label=_label(key),
        kind=_kind(name, schema),
        default=schema.get("default"),
        description=_text(schema.get("description")),
        choices=tuple(schema.get("enum", ())),
        minimum=schema.get("minimum", schema.get("exclusiveMinimum")),
        maximum=schema.get("maximum", schema.get("exclusiveMaximum")),
    )


def _walk(
    prefix: str,
    schema: dict[str, Any],
    definitions: dict[str, Any],
    group: FormGroup,
    section: FormSection | None = None,
) -> None:
    """Add the leaves under ``prefix`` to ``group``; each nested model becomes a section of the group."""
    for key, reference in schema["properties"].items():
        child = _resolve(reference, definitions)
        name = f"{prefix}.{key}" if prefix else key
        if child.get("type") == "object":
            inner = FormSection(name, SECTION_TITLES.get(name, _label(key)), _text(child.get("description")))
            group.sections.append(inner)
            _walk(name, child, definitions, group, inner)
        else:
            (section.fields if section else group.fields).append(_leaf(name, key, child))


@cache
def build_form() -> tuple[FormGroup, ...]:
    """RunConfig's fields, grouped, in the order the schema declares them."""
    schema = RunConfig.model_json_schema()
    definitions = schema.get("$defs", {})
    groups: dict[str, FormGroup] = {key: FormGroup(key, title) for key, title in GROUP_TITLES.items()}
    for key, reference in schema["properties"].items():
        child = _resolve(reference, definitions)
        is_section = child.get("type") == "object"
        group_key = GROUP_OF.get(key, key if is_section else "run")
        group = groups.setdefault(group_key, FormGroup(group_key, child.get("title", _label(key))))
        if is_section and key != group_key:
            section = FormSection(key, SECTION_TITLES.get(key, _label(key)), _text(child.get("description")))
            group.sections.append(section)
            _walk(key, child, definitions, group, section)
        elif is_section:
            _walk(key, child, definitions, group)
        else:
            group.fields.append(_leaf(key, key, child))
    return tuple(group for group in groups.values() if group.fields or group.sections)


@dataclass(frozen=True)
class StudyDefaults:
    """What the Studies form starts with, for the machine it runs on."""

    seeds: int
    overrides: str  # the text of the overrides box, one "key = value" per line
    note: str


def _override_lines(overrides: dict[str, Any], *, commented: bool) -> list[str]:
    prefix = "# " if commented else ""
    return [
        f"{prefix}{key} = {json.dumps(value) if not isinstance(value, str) else value}"
        for key, value in overrides.items()
    ]


def _fleet_text(fleet: WorkersPublic) -> str:
    alive = [worker for worker in fleet.data if worker.alive]
    if not alive:
        return "no worker is running"
    devices = [device.name or device.device for worker in alive for device in worker.devices]
    return f"{len(alive)} worker{'s' if len(alive) > 1 else ''} ({', '.join(devices)})"


def study_defaults(fleet: WorkersPublic, *, data_root: Path) -> StudyDefaults:
    """The full seed study over 3 seeds where a worker has a GPU; else a CPU-sized try-out of it,
    with the dataset the server was given, and the full-size study one edit away."""
    if fleet.gpus:
        lines = ["# A try-out of the study's shape on a CPU, in minutes:", *_override_lines(CPU_TRYOUT, commented=True)]
        return StudyDefaults(
            3, "\n".join(lines), f"Workers: {_fleet_text(fleet)}. The form starts with the full study."
        )
    lines = [
        "# A try-out of the study's shape on a CPU, in minutes; delete these lines for the report's full-size runs",
        *_override_lines({**CPU_TRYOUT, "data.root": str(data_root)}, commented=False),
    ]
    note = (
        f"No worker with a GPU: {_fleet_text(fleet)}. The form starts with a CPU-sized try-out; the full study "
        f"({SEED_RUNS} pretrained ResNet50/152 runs per seed) takes hours per run on a CPU."
    )
    return StudyDefaults(1, "\n".join(lines), note)
