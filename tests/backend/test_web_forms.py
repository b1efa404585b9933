"""The launch form follows RunConfig: every leaf field is one input, named by its dotted path."""

from __future__ import annotations

from backend.web.forms import build_form
from trainer.config import RunConfig


def form_fields():
    return [
        leaf
        for group in build_form()
        for leaf in [*group.fields, *(f for section in group.sections for f in section.fields)]
    ]


def _leaf_names(model=RunConfig, prefix=""):
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
            yield from _leaf_names(annotation, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}"


def test_every_config_field_has_one_input_with_its_default():
    fields = {field.name: field for field in form_fields()}
    assert sorted(fields) == sorted(_leaf_names())
    assert fields["epochs"].default == 10 and fields["epochs"].kind == "integer" and fields["epochs"].minimum == 1
    assert fields["schedule.name"].choices == ("onecycle", "cosine", "constant")
    assert fields["model.pretrained"].kind == "boolean"
    assert fields["model.weights_path"].kind == "optional-text"
    assert fields["tricks.kd.teacher"].kind == "teacher"


def test_fields_come_in_six_groups_and_the_optimiser_sections_in_order():
    titles = [group.title for group in build_form()]
    assert titles == ["Run", "Data", "Model", "Optimisation and schedule", "Tricks", "Runtime"]
    optimisation = next(group for group in build_form() if group.key == "optimisation")
    assert [section.title for section in optimisation.sections] == [
        "Optimizer",
        "Per-layer learning-rate divisors",
        "Schedule",
    ]
