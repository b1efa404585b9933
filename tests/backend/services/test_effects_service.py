"""A grid study's effects from its runs in a real database: cells, teachers, missing and skipped cells, presets."""

import itertools

import pytest

from backend.reports.effects import Cell, Factor, factorial_effects
from backend.schemas.studies import Metric, StudyCreate, StudyGrid
from backend.services import effects, studies, study_views
from backend.services.errors import NotFound

TINY = {"model.arch": "resnet18", "model.pretrained": False, "data.image_size": 32, "epochs": 1, "batch_size": 16}


def create(store, *, switches=None, preset=None, seeds=2, **overrides):
    overrides = {**TINY, "data.root": str(store.data_root), **overrides}
    with store.db.session(write=True) as session:
        study = studies.create_study(
            session=session,
            settings=store.settings,
            request=StudyCreate(
                name="s",
                preset=preset,
                grid=None if switches is None else StudyGrid(switches=switches),
                overrides=overrides,
                seeds=seeds,
            ),
        )
        return study_views.study_public(session=session, study=study)


def effects_of(store, study_id, metric="valid"):
    with store.db.session() as session:
        return effects.study_effects(session=session, study_id=study_id, metric=metric)


def finish(store, study, value_of):
    """Every run succeeds with valid top-1 ``value_of(group key, seed)`` and test top-1 half of it."""
    for group in study.groups:
        for run in group.runs:
            value = value_of(group.key, run.seed)
            store.finish([run.run_id], peak_valid_top1=value, test_top1=value / 2)


PLANTED = {"base": 60.0, "+Cosine": 61.0, "+KD": 63.0, "+Cosine +KD": 62.0, "T": 80.0}


def test_the_effects_come_from_the_cells_runs_and_leave_the_teachers_out(make_store, database_url):
    store = make_store(database_url)
    study = create(store, switches={"cosine": True, "kd": True}, seeds=3)
    assert [group.key for group in study.groups] == ["T", "base", "+KD", "+Cosine", "+Cosine +KD"]
    finish(store, study, lambda key, seed: PLANTED[key] + (seed - study.seeds[1]))
    metrics: list[tuple[Metric, float]] = [("valid", 1.0), ("test", 0.5)]
    for metric, scale in metrics:
        result = effects_of(store, study.id, metric)
        factors = [Factor("cosine", (False, True), "cosine"), Factor("kd", (False, True), "KD")]
        cells = [
            Cell({"cosine": c, "kd": k}, [scale * (PLANTED[key] + offset) for offset in (-1, 0, 1)])
            for (c, k), key in zip(
                itertools.product((False, True), repeat=2), ["base", "+KD", "+Cosine", "+Cosine +KD"], strict=True
            )
        ]
        expected = factorial_effects(factors, cells, seeds=3, study_id=study.id, metric=metric)
        assert result == expected
        assert [row.estimate for row in result.data] == pytest.approx([0.0, scale * 2.0, scale * -1.0], abs=1e-9)
        assert result.residual_df == 12 - 4 and result.metric == metric
        assert [f.label for f in result.switches] == ["cosine", "KD"]


def test_cells_still_running_are_missing_and_said_so(store):
    study = create(store, switches={"cosine": True, "label_smoothing": True})
    ids = {group.key: [run.run_id for run in group.runs] for group in study.groups}
    for key in ("base", "+LS", "+Cosine"):
        store.finish(ids[key][:1], peak_valid_top1=50.0)
        store.finish(ids[key][1:], peak_valid_top1=52.0)
    result = effects_of(store, study.id)
    assert [row.effect for row in result.data] == ["cosine", "label_smoothing"]
    (missing,) = result.missing_cells
    assert (missing.group, missing.reason) == ("+Cosine +LS", "runs queued: 2")
    assert [item.effect for item in result.not_estimable] == ["cosine × label_smoothing"]
    assert "2 runs are still queued or running: these numbers will move" in result.notes


def test_a_skipped_combination_is_a_missing_cell(store):
    # Warmup with OneCycle is invalid: that cell is skipped when the study is planned.
    study = create(store, switches={"cosine": True, "warmup_epochs": True}, epochs=2)
    finish(store, study, lambda key, seed: 50.0 + seed % 2 + (key == "+Cosine"))
    result = effects_of(store, study.id)
    (missing,) = result.missing_cells
    assert missing.group is None and missing.cell == {"cosine": False, "warmup_epochs": 1.0}
    assert missing.reason.startswith("skipped as invalid: schedule.warmup_epochs: OneCycle")
    assert [row.effect for row in result.data] == ["cosine", "warmup_epochs"]
    assert result.not_estimable[0].effect == "cosine × warmup_epochs"


def test_what_is_not_a_two_level_grid_is_not_estimated(store):
    three = create(store, switches={"mixup_alpha": [0, 0.1, 0.2], "cosine": True})
    finish(store, three, lambda key, seed: 40.0 + seed % 2)
    result = effects_of(store, three.id)
    assert result.data == [] and "mixup 0→0.1→0.2 has 3 levels" in result.not_estimable[0].reason
    one_seed = create(store, switches={"cosine": True}, seeds=1)
    assert effects_of(store, one_seed.id).not_estimable[0].reason.startswith("1 seed per cell")
    preset = create(store, preset="seed", seeds=1, **{"teacher.model.arch": "resnet34"})
    assert effects_of(store, preset.id).not_estimable[0].reason == "the seed preset is not a factorial grid"


def test_an_unknown_study_is_not_found(store):
    with pytest.raises(NotFound):
        effects_of(store, 999)
