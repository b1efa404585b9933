"""The teacher a distillation student is offered first, as the report paired them."""

from __future__ import annotations

from types import SimpleNamespace

from testlib.presets import preset_config

from backend.services.teachers import teacher_choices


def _teacher(run_id, key, top1):
    return SimpleNamespace(id=run_id, name=key, config=preset_config(key).model_dump(mode="json"), peak_valid_top1=top1)


RUNS = [_teacher(1, "T", 80.49), _teacher(2, "T-LS", 82.78), _teacher(3, "base", 78.53)]


def test_without_a_preset_the_teacher_is_trained_like_the_student():
    with_ls, hint = teacher_choices(RUNS, label_smoothing=0.1)
    assert [choice.id for choice in with_ls] == [2, 1, 3] and "#2" in hint
    without_ls, _ = teacher_choices(RUNS, label_smoothing=0.0)
    assert [choice.id for choice in without_ls] == [1, 3, 2]
    assert with_ls[0].label == "#2 T-LS (ResNet152 +LS, peak valid top-1 82.78)"
    assert teacher_choices([], label_smoothing=0.1)[1].startswith("No finished run yet")


def test_the_teacher_a_preset_names_comes_first():
    # g, h, i1 and i2 train an unsmoothed student from T-LS: LS 0, and still T-LS suggested.
    choices, hint = teacher_choices(RUNS, label_smoothing=0.0, teacher="T-LS")
    assert choices[0].id == 2
    assert hint == "Suggested: #2, a teacher trained with label smoothing (the preset names T-LS)."
    assert teacher_choices(RUNS, label_smoothing=0.0, teacher="T")[0][0].id == 1
    choices, hint = teacher_choices([RUNS[0]], label_smoothing=0.0, teacher="T-LS")
    assert [choice.id for choice in choices] == [1]
    assert hint.startswith("No finished run fits: the preset names T-LS")
