"""GET /api/v1/presets and /presets/teachers, as the launch form uses them."""

from __future__ import annotations

from trainer.presets import PRESETS, STUDY


def test_presets_endpoint_resets_what_other_presets_set(api):
    answer = api.get("/api/v1/presets").json()
    assert len(STUDY) == 16 and answer["count"] == len(PRESETS) == 17
    by_key = {preset["key"]: preset for preset in answer["data"]}
    # Choosing "a" after "h" or "demo" must undo what they set, and touch nothing else.
    assert by_key["a"]["values"] == {
        "name": "a",
        "model.arch": "resnet50",
        "model.pretrained": True,
        "data.image_size": 224,
        "batch_size": 64,
        "epochs": 10,
        "schedule.name": "cosine",
        "tricks.label_smoothing": 0.0,
        "tricks.mixup_alpha": 0.0,
        "tricks.kd.teacher": None,
    }
    assert by_key["h"]["teacher"] == "T-LS" and by_key["h"]["reported_top1"] == 82.09
    # The report's g-i2 leave the student unsmoothed: label smoothing comes through T-LS.
    assert by_key["h"]["values"]["tricks.label_smoothing"] == 0.0


def test_teachers_endpoint_without_finished_runs(api):
    answer = api.get("/api/v1/presets/teachers", params={"label_smoothing": 0.1}).json()
    assert answer == {
        "data": [],
        "count": 0,
        "suggested_id": None,
        "hint": "No finished run yet: train a teacher first (preset T-LS, trained with label smoothing).",
    }
    named = api.get("/api/v1/presets/teachers", params={"label_smoothing": 0, "teacher": "T-LS"}).json()
    assert named["hint"] == answer["hint"]
    bad = api.get("/api/v1/presets/teachers", params={"teacher": "T-XL"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "teacher"]
