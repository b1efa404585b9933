"""The teacher a distillation student is offered first, as the report paired them."""

from __future__ import annotations

from types import SimpleNamespace

from testlib.presets import preset_config

from backend.services.teachers import teacher_choices


def test_teacher_suggestion_follows_label_smoothing():
    def teacher(run_id, key, top1):
        return SimpleNamespace(
            id=run_id, name=key, config=preset_config(key).model_dump(mode="json"), max_valid_top1=top1
        )

    runs = [teacher(1, "T", 80.49), teacher(2, "T-LS", 82.78), teacher(3, "base", 78.53)]
    with_ls, hint = teacher_choices(runs, label_smoothing=0.1)
    assert [choice.id for choice in with_ls] == [2, 1, 3] and "#2" in hint
    without_ls, _ = teacher_choices(runs, label_smoothing=0.0)
    assert [choice.id for choice in without_ls] == [1, 3, 2]
    assert with_ls[0].label == "#2 T-LS (ResNet152 +LS, valid top-1 82.78)"
    assert teacher_choices([], label_smoothing=0.1)[1].startswith("No finished run yet")
