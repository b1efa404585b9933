"""The study service on a real database: the seed preset's runs, grids, seeds, reuse, table, cancel."""

from datetime import timedelta

import pytest
from study_helpers import SEED_STUDY, TEACHER, TINY, create, run_count, runs_of, study_request

from backend.models import Run, RunStatus, utcnow
from backend.reports import study as study_report
from backend.schemas.study_spec import SEED_RUNS, StudySpec
from backend.services import queue, studies, study_views
from backend.services.errors import Conflict, InvalidStudy
from trainer.config import RunConfig
from trainer.models.weights import cached_weights

pytestmark = pytest.mark.usefixtures("imagenet_cache")


def test_the_seed_preset_queues_the_reports_runs_with_their_settings_and_teachers(make_store, database_url):
    store = make_store(database_url)
    study = create(store, preset="seed")
    assert [group.key for group in study.groups] == list(SEED_STUDY)  # the report's table order
    assert run_count(store) == len(SEED_STUDY) == SEED_RUNS == study.progress["total"] == 16
    runs = runs_of(store, study)
    ids = {group.key: group.runs[0].run_id for group in study.groups}
    defaults = RunConfig().model_dump(mode="json")
    for key, (arch, schedule, smoothing, mixup, teacher) in SEED_STUDY.items():
        run = runs[ids[key]]
        config = RunConfig.model_validate(run.config)
        assert (config.model.arch, config.schedule.name, config.tricks.label_smoothing, config.tricks.mixup_alpha) == (
            arch,
            schedule,
            smoothing,
            mixup,
        ), key
        assert config.tricks.kd.teacher == (ids[teacher] if teacher else None), key
        assert run.depends_on == (ids[teacher] if teacher else None), key
        assert run.study_id == study.id and run.status == RunStatus.queued
        # Everything else is the report's base: pretrained, Adam 1e-3 with its layer rates, batch 64,
        # 10 epochs, KD alpha 0.1 and T 10.
        values = config.model_dump(mode="json")
        for section in ("optim", "runtime"):
            assert values[section] == defaults[section], key
        assert (config.epochs, config.batch_size, config.model.pretrained, config.seed) == (10, 64, True, 1234)
        assert (config.tricks.kd.alpha, config.tricks.kd.temperature) == (0.1, 10.0)
        assert config.data.image_size == 224 and config.data.split == "seed"
    assert study.baseline == "base" and study.baseline_run_id == ids["base"]
    assert {group.key: group.role for group in study.groups if group.role == "teacher"} == {
        "T": "teacher",
        "T-LS": "teacher",
    }
    tricks = {group.key: group.tricks for group in study.groups}
    assert tricks["h"] == "+Cosine +KD from T-LS" and tricks["T"] == "ResNet152" and tricks["base"] == "base"
    titles = {group.key: group.title for group in study.groups}
    assert (titles["T"], titles["base"], titles["g"]) == (
        "Teacher: ResNet152",
        "ResNet50 base (OneCycle)",
        "g: + LS + KD",
    )
    # Students are queued after their teachers, so a single worker never waits on a later run.
    assert all(ids[teacher] < ids[key] for key, (*_, teacher) in SEED_STUDY.items() if teacher)


def test_overrides_reach_every_run_and_teacher_keys_only_the_teachers(store):
    study = create(store, preset="seed", seeds=2, **{**TINY, "teacher.model.arch": "resnet34", "epochs": 2})
    assert study.seeds == [1234, 1235] and study.progress["total"] == 32
    runs = runs_of(store, study)
    by_key = {group.key: group for group in study.groups}
    for group in study.groups:
        for member in group.runs:
            config = RunConfig.model_validate(runs[member.run_id].config)
            assert config.model.arch == ("resnet34" if group.role == "teacher" else "resnet18")
            assert (config.data.image_size, config.epochs, config.seed) == (32, 2, member.seed)
            assert runs[member.run_id].name == f"s · {group.key} · seed {member.seed}"
            if group.teacher:
                # Each replicate learns from the teacher of its own seed.
                teacher = next(run for run in by_key[group.teacher].runs if run.seed == member.seed)
                assert runs[member.run_id].depends_on == teacher.run_id


def test_a_grid_is_the_product_of_its_switches_with_shared_teachers(store):
    study = create(
        store, switches={"cosine": True, "label_smoothing": [0, 0.1], "kd": True}, seeds=2, **TINY, **TEACHER
    )
    keys = [group.key for group in study.groups]
    assert keys == [
        "T",
        "T-LS",
        "base",
        "+KD",
        "+LS",
        "+LS +KD",
        "+Cosine",
        "+Cosine +KD",
        "+Cosine +LS",
        "+Cosine +LS +KD",
    ]
    assert study.progress["total"] == 10 * 2  # 8 cells and 2 teachers, per seed
    teachers = {group.key: group.teacher for group in study.groups}
    assert teachers["+Cosine +LS +KD"] == teachers["+LS +KD"] == "T-LS" and teachers["+KD"] == "T"
    runs = runs_of(store, study)
    t_ls = {run.seed: run.run_id for run in study.groups[1].runs}
    students = [run for group in study.groups if group.teacher == "T-LS" for run in group.runs]
    assert {runs[run.run_id].depends_on for run in students} == set(t_ls.values())
    assert RunConfig.model_validate(runs[t_ls[1234]].config).tricks.label_smoothing == 0.1


def test_invalid_combinations_are_skipped_and_listed(store):
    study = create(store, switches={"cosine": True, "warmup_epochs": [0, 1]}, **{**TINY, "epochs": 3})
    assert [group.key for group in study.groups] == ["base", "+Cosine", "+Cosine +Warmup 1ep"]
    assert study.skipped == [
        {
            "cell": {"cosine": False, "warmup_epochs": 1},
            "reason": "schedule.warmup_epochs: OneCycle has its own warmup; set it to 0 or use cosine/constant",
        }
    ]


def test_groups_that_come_out_identical_share_their_runs(store):
    # LS for every run makes b the base run, e the a run, and so on: one run each, not two.
    study = create(store, preset="seed", **TINY, **{"tricks.label_smoothing": 0.1})
    ids = {group.key: group.runs[0].run_id for group in study.groups}
    assert ids["b"] == ids["base"] and ids["e"] == ids["a"] and ids["T"] == ids["T-LS"]
    assert study.progress["total"] == run_count(store) == 16 - 6


def test_finished_identical_runs_are_reused_not_rerun(store):
    first = create(store, switches={"cosine": True, "kd": True}, seeds=2, **TINY, **TEACHER)
    first_runs = runs_of(store, first)
    store.finish(list(first_runs), valid=(50.0, 80.0))
    before = run_count(store)

    again = create(store, switches={"cosine": True, "kd": True}, seeds=2, **TINY, **TEACHER)
    assert run_count(store) == before  # nothing new queued
    assert again.progress["reused"] == again.progress["total"] == again.progress["succeeded"] == len(first_runs)
    assert again.finished
    assert [[run.run_id for run in group.runs] for group in again.groups] == [
        [run.run_id for run in group.runs] for group in first.groups
    ]

    # A third seed: only its runs are new, and its students learn from its new teacher.
    more = create(store, switches={"cosine": True, "kd": True}, seeds=3, **TINY, **TEACHER)
    assert run_count(store) == before + 5
    new = {run.run_id for group in more.groups for run in group.runs if not run.reused}
    assert {run.seed for group in more.groups for run in group.runs if run.run_id in new} == {1236}


def test_a_finished_teacher_is_reused_and_its_new_students_depend_on_it(store):
    first = create(store, switches={"kd": True}, **TINY, **TEACHER)
    teacher_id = first.groups[0].runs[0].run_id
    store.finish([teacher_id])
    again = create(store, switches={"kd": True, "cosine": True}, **TINY, **TEACHER)
    assert again.groups[0].runs[0].run_id == teacher_id and again.groups[0].runs[0].reused
    students = [run.run_id for group in again.groups if group.teacher for run in group.runs]
    assert {store.run(run_id).depends_on for run_id in students} == {teacher_id}
    # The first study's KD student had not finished: the second study queued its own.
    assert first.groups[2].runs[0].run_id not in students


def test_runs_are_not_reused_when_anything_that_changes_the_result_differs(store):
    first = create(store, switches={"cosine": True}, **TINY)
    store.finish([run.run_id for group in first.groups for run in group.runs])
    other = create(store, switches={"cosine": True}, **{**TINY, "optim.lr": 0.002})
    assert other.progress["reused"] == 0 and other.progress["queued"] == 2


def test_the_paper_preset_queues_its_rows_behind_its_resnet_d_teacher(make_store, database_url):
    store = make_store(database_url)
    study = create(store, preset="paper", seeds=2, **TINY, **TEACHER, **{"schedule.warmup_epochs": 0.5})
    keys = [group.key for group in study.groups]
    assert keys[:2] == ["T", "base"] and len(keys) == 10 and study.progress["total"] == run_count(store) == 20
    runs = runs_of(store, study)
    configs = {
        group.key: [RunConfig.model_validate(runs[run.run_id].config) for run in group.runs] for group in study.groups
    }
    # Each seed's KD student learns from the teacher run of its own seed.
    teacher_ids = [run.run_id for run in study.groups[0].runs]
    assert [config.tricks.kd.teacher for config in configs["kd"]] == teacher_ids
    assert [config.seed for config in configs["kd"]] == [config.seed for config in configs["T"]] == [1234, 1235]
    assert {config.model.arch for key in keys[1:5] for config in configs[key]} == {"resnet18"}
    assert {config.model.arch for key in keys[5:] for config in configs[key]} == {"resnet18d"}
    assert configs["T"][0].model.arch == "resnet34d" and configs["T"][0].tricks.mixup_alpha == 0.2
    with store.db.session() as session:
        table = study_views.study_table(session=session, study=studies.get_study(session=session, study_id=study.id))
    assert table.reference_column == "Paper, ImageNet (top-1)"
    assert [row.report for row in table.data] == [None, "75.30", *[None] * 7, "79.29 (+3.99p)"]


def test_cancel_stops_the_pending_runs_it_created_and_leaves_the_rest(store):
    shared = create(store, switches={"cosine": True}, **TINY)
    shared_base = shared.groups[0].runs[0].run_id
    store.finish([shared_base])
    study = create(store, switches={"cosine": True, "label_smoothing": [0, 0.1]}, **TINY)
    ids = {group.key: group.runs[0].run_id for group in study.groups}
    assert ids["base"] == shared_base  # reused
    with store.db.transaction(write=True) as session:
        session.get(Run, ids["+LS"]).status = RunStatus.running
    store.finish([ids["+Cosine"]])
    with store.db.session(write=True) as session:
        cancelled = study_views.study_public(
            session=session, study=studies.cancel_study(session=session, study_id=study.id)
        )
    assert store.run(ids["+Cosine +LS"]).status == RunStatus.cancelled
    assert store.run(ids["+LS"]).status == RunStatus.running and store.run(ids["+LS"]).cancel_requested
    assert store.run(ids["+Cosine"]).status == store.run(shared_base).status == RunStatus.succeeded
    assert cancelled.progress["cancelled"] == 1 and not cancelled.finished  # the running one still stops
    with store.db.session(write=True) as session, pytest.raises(Conflict, match="no queued or running run"):
        studies.cancel_study(session=session, study_id=study.id)


def test_a_missing_dataset_creates_nothing(store, tmp_path):
    (tmp_path / "data" / "empty").mkdir()
    with pytest.raises(InvalidStudy) as caught:
        create(store, preset="seed", **{"data.root": str(tmp_path / "data" / "empty")})
    assert list(caught.value.errors) == [("overrides", "data.root")]
    assert "no CUB_200_2011/" in caught.value.errors[("overrides", "data.root")]
    with store.db.session() as session:
        assert studies.list_studies(session=session) == ([], 0)
    assert run_count(store) == 0


def test_pretrained_runs_whose_weights_cannot_be_had_are_refused_before_anything_is_queued(store):
    cached_weights("resnet152").unlink()
    with pytest.raises(InvalidStudy) as caught:
        create(store, preset="seed")
    (location, message), *_ = caught.value.errors.items()
    # The trainer's own words (trainer.models.weights), said before 48 runs fail with them one by one.
    assert location == ("overrides", "model.pretrained")
    assert message.startswith("ImageNet weights for resnet152 (resnet152-394f9c45.pth)")
    assert message.endswith("Or train from scratch: model.pretrained = false.") and run_count(store) == 0
    with pytest.raises(InvalidStudy) as caught:
        create(store, preset="seed", **{"model.weights_path": "/nowhere/resnet.pth"})
    assert caught.value.errors == {("overrides", "model.weights_path"): "no such file /nowhere/resnet.pth"}
    # From scratch, or with a small teacher whose weights are cached, nothing is missing.
    assert create(store, preset="seed", **TINY, **TEACHER).progress["total"] == 16


def test_a_preset_run_of_the_old_ls_plus_kd_config_is_not_reused(store):
    """Runs made by the preset before g-i2 dropped student smoothing keep their config; a new study
    makes its own, because the fingerprint differs."""
    first = create(store, preset="seed", **TINY, **TEACHER)
    ids = {group.key: group.runs[0].run_id for group in first.groups}
    old_g = RunConfig.model_validate(store.run(ids["g"]).config).model_copy(deep=True)
    old_g.tricks.label_smoothing = 0.1
    with store.db.transaction(write=True) as session:
        session.get_one(Run, ids["g"]).config = old_g.model_dump(mode="json")
        session.get_one(Run, ids["g"]).config_hash = old_g.fingerprint()
    store.finish(list(ids.values()))
    again = create(store, preset="seed", **TINY, **TEACHER)
    reused = {group.key: group.runs[0].reused for group in again.groups}
    assert not reused["g"] and all(flag for key, flag in reused.items() if key != "g")
    assert RunConfig.model_validate(store.run(again.groups[-4].runs[0].run_id).config).tricks.label_smoothing == 0.0


def test_titles_name_the_models_the_runs_really_have(store):
    study = create(store, preset="seed", **TINY, **TEACHER)
    titles = {group.key: group.title for group in study.groups}
    assert (titles["T"], titles["T-LS"]) == ("Teacher: ResNet34", "Teacher: ResNet34 + label smoothing")
    assert titles["base"] == "ResNet18 base (OneCycle)"
    tricks = {group.key: group.tricks for group in study.groups}
    assert tricks["T"] == "ResNet34 from scratch" and tricks["g"] == "ResNet18 from scratch +KD from T-LS"


def test_a_preview_counts_the_runs_and_estimates_the_time_without_writing(store):
    first = create(store, switches={"cosine": True}, seeds=2, **TINY)
    store.finish([first.groups[0].runs[0].run_id])
    with store.db.session() as session:
        plan = studies.preview_study(
            session=session,
            settings=store.settings,
            request=study_request(
                name="p",
                switches={"cosine": True, "label_smoothing": [0, 0.1]},
                overrides={**TINY, "data.root": str(store.data_root)},
                seeds=2,
            ),
        )
    assert (plan.groups, plan.seeds, plan.runs) == (4, [1234, 1235], 8)
    assert (plan.reused_runs, plan.new_runs, plan.epochs) == (1, 7, 7)
    assert plan.device == "cpu" and plan.workers == 0 and plan.seconds > 0
    assert plan.basis == "rough: from the FLOPs table, nothing measured yet on the CPU"
    assert run_count(store) == 4  # the first study's: the preview wrote nothing


def test_the_estimate_made_at_creation_is_kept_and_shown_beside_the_time_the_study_took(store):
    request = study_request(
        name="timed", switches={"cosine": True}, overrides={**TINY, "data.root": str(store.data_root)}
    )
    with store.db.session(write=True) as session:
        plan = studies.preview_study(session=session, settings=store.settings, request=request)
        study = study_views.study_public(
            session=session, study=studies.create_study(session=session, settings=store.settings, request=request)
        )
    assert (study.estimated_seconds, study.estimate_basis) == (plan.seconds, plan.basis)
    assert study.took_seconds is None and not study.finished
    # Its two runs trained as a worker records them: the first claimed two minutes ago, both succeeded now.
    started = utcnow() - timedelta(minutes=2)
    with store.db.session(write=True) as session:
        for now in (started, started + timedelta(minutes=1)):
            claim = queue.claim_run(session=session, worker="w", stale_after_seconds=3600, now=now)
            assert claim is not None
            assert queue.succeed(session=session, run_id=claim.run_id, attempt=claim.attempt, result={})
        finished = study_views.study_public(
            session=session, study=studies.get_study(session=session, study_id=study.id)
        )
    assert finished.finished and finished.estimated_seconds == plan.seconds
    assert finished.took_seconds == pytest.approx(120, abs=5)


def test_notes_say_how_label_smoothing_meets_distillation(store):
    preset = create(store, preset="seed", **TINY, **TEACHER)
    assert preset.notes == [study_report.PRESET_COMBINATION]
    grid = create(store, switches={"label_smoothing": [0, 0.1], "kd": True}, **TINY, **TEACHER)
    assert grid.notes == [study_report.GRID_COMBINATION]
    assert create(store, switches={"cosine": True}, **TINY).notes == []


def test_the_stored_spec_has_the_keys_every_earlier_version_wrote(store):
    # Rows written before StudySpec held a plain dict of these keys; they must still load.
    study = create(store, switches={"cosine": True, "warmup_epochs": [0, 1]}, **{**TINY, "epochs": 3})
    with store.db.session() as session:
        stored = studies.get_study(session=session, study_id=study.id).spec
    assert list(stored) == ["kind", "preset", "grid", "overrides", "seeds", "priority", "baseline", "groups", "skipped"]
    group_keys = ["key", "title", "role", "teacher", "tricks", "reported_top1", "reported_top5", "runs"]
    assert all(list(group) == group_keys for group in stored["groups"])
    assert all(list(run) == ["run_id", "seed", "reused"] for group in stored["groups"] for run in group["runs"])
    assert list(stored["skipped"][0]) == ["cell", "reason"]
    assert StudySpec.model_validate(stored).model_dump(mode="json") == stored
