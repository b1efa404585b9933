"""The queue's rules, on SQLite and PostgreSQL, through the functions the worker calls."""

from datetime import timedelta

import pytest
from sqlalchemy import select

from backend.models import EpochMetric, FailureKind, Run, RunStatus, StepMetric, utcnow
from backend.services import queue as jobs

CONFIG = {"epochs": 3, "tricks": {"kd": {"teacher": None}}}


@pytest.fixture
def db(database_url, make_settings, make_database):
    return make_database(make_settings(database_url))


def add_run(db, *, priority=0, depends_on=None, status=RunStatus.queued, max_attempts=1, name="r"):
    with db.session(write=True) as session:
        run = Run(
            name=name,
            priority=priority,
            config=CONFIG,
            config_hash="h",
            depends_on=depends_on,
            status=status,
            max_attempts=max_attempts,
        )
        session.add(run)
        session.commit()
        return run.id


def claim(db, worker="w", stale_after=60.0, now=None):
    with db.session(write=True) as session:
        return jobs.claim_run(session=session, worker=worker, stale_after_seconds=stale_after, now=now)


def call(db, function, **kwargs):
    with db.session(write=True) as session:
        return function(session=session, **kwargs)


def get(db, run_id):
    with db.session() as session:
        return session.get(Run, run_id)


def test_claims_highest_priority_then_oldest_and_counts_attempts(db):
    low, high_old, high_new, middle = (add_run(db, priority=p) for p in (0, 5, 5, 1))
    claims = [claim(db) for _ in range(4)]
    assert [c.run_id for c in claims] == [high_old, high_new, middle, low]
    assert all(c.attempt == 1 for c in claims)
    assert claim(db) is None
    run = get(db, high_old)
    assert run.status == RunStatus.running and run.worker == "w" and run.heartbeat_at is not None


def test_a_student_waits_for_its_teacher_and_fails_naming_a_failed_teacher(db):
    teacher = add_run(db, name="teacher")
    student = add_run(db, priority=10, depends_on=teacher)
    other_teacher = add_run(db, name="t2")
    orphan = add_run(db, priority=10, depends_on=other_teacher)
    first = claim(db)
    assert first.run_id == teacher  # the student outranks it but cannot start yet
    assert call(db, jobs.succeed, run_id=teacher, attempt=1, result={"test_top1": 1.0})
    assert claim(db).run_id == student

    t2 = claim(db)
    assert t2.run_id == other_teacher
    assert (
        call(db, jobs.fail, run_id=other_teacher, attempt=1, error="boom", kind=FailureKind.training)
        == RunStatus.failed
    )
    assert claim(db) is None
    run = get(db, orphan)
    assert run.status == RunStatus.failed
    assert f"teacher run {other_teacher} (t2) failed" in run.error


def test_stale_heartbeat_requeues_as_infrastructure_and_fences_the_old_attempt(db):
    run_id = add_run(db)
    old = claim(db, worker="dead")
    assert call(db, jobs.store_epoch, run_id=run_id, attempt=1, row={"epoch": 1, "train_loss": 2.0})
    assert claim(db, stale_after=60) is None  # heartbeat fresh: nothing to take over

    later = utcnow() + timedelta(seconds=61)
    new = claim(db, worker="alive", stale_after=60, now=later)
    assert (new.run_id, new.attempt) == (run_id, 2)
    run = get(db, run_id)
    assert run.failure_kind == FailureKind.infrastructure and run.infrastructure_failures == 1
    assert "worker dead stopped responding" in run.error

    # Every write of the old attempt is refused now.
    assert call(db, jobs.store_epoch, run_id=run_id, attempt=old.attempt, row={"epoch": 2}) is None
    assert call(db, jobs.heartbeat, run_id=run_id, attempt=old.attempt) is None
    assert call(db, jobs.succeed, run_id=run_id, attempt=old.attempt, result={}) is None
    assert call(db, jobs.fail, run_id=run_id, attempt=old.attempt, error="x", kind=FailureKind.training) is None
    assert call(db, jobs.heartbeat, run_id=run_id, attempt=2) is False  # alive, no cancel asked


def test_a_stale_run_with_a_cancel_request_ends_cancelled(db):
    run_id = add_run(db)
    claim(db)
    with db.session(write=True) as session:
        session.get(Run, run_id).cancel_requested = True
        session.commit()
    assert claim(db, now=utcnow() + timedelta(seconds=120)) is None
    assert get(db, run_id).status == RunStatus.cancelled


def has_work(db, stale_after=60.0, now=None):
    with db.session() as session:
        return jobs.has_work(session=session, stale_after_seconds=stale_after, now=now)


def test_an_idle_poll_finds_work_exactly_where_a_claim_would_change_something(db):
    assert not has_work(db)
    assert jobs.claim_if_any(database=db, worker="w", stale_after_seconds=60) is None
    teacher = add_run(db, name="teacher")
    student = add_run(db, depends_on=teacher)
    assert has_work(db)  # the teacher, to claim
    assert claim(db).run_id == teacher
    assert not has_work(db)  # the student waits for its running teacher, whose heartbeat is fresh
    assert has_work(db, now=utcnow() + timedelta(seconds=61))  # the teacher, to requeue

    assert call(db, jobs.fail, run_id=teacher, attempt=1, error="boom", kind=FailureKind.training)
    assert has_work(db)  # the student, to fail: its teacher failed
    assert jobs.claim_if_any(database=db, worker="w", stale_after_seconds=60) is None
    assert get(db, student).status == RunStatus.failed
    assert not has_work(db)

    # A run in Slurm's hands sends no heartbeat: never stale.
    in_slurm = add_run(db, name="in slurm")
    handed = jobs.claim_if_any(database=db, worker=f"{jobs.SLURM_WORKER_PREFIX}host", stale_after_seconds=60)
    assert handed is not None and handed.run_id == in_slurm
    assert not has_work(db, now=utcnow() + timedelta(hours=1))


def test_epoch_upserts_are_idempotent_and_a_resume_supersedes_later_epochs(db):
    run_id = add_run(db)
    claim(db)
    for epoch in (1, 2, 3):
        assert call(db, jobs.store_epoch, run_id=run_id, attempt=1, row={"epoch": epoch, "train_loss": float(epoch)})
    assert call(db, jobs.store_epoch, run_id=run_id, attempt=1, row={"epoch": 3, "train_loss": 30.0})
    assert call(
        db,
        jobs.store_steps,
        run_id=run_id,
        attempt=1,
        steps=[
            {"step": 5, "epoch": 1, "loss": 1.0, "lr": 0.1},
            {"step": 25, "epoch": 3, "loss": 1.0, "lr": 0.1},
            {"step": 5, "epoch": 1, "loss": 0.5, "lr": 0.1},
        ],
    )
    requeued = claim(db, now=utcnow() + timedelta(seconds=120))
    assert requeued.attempt == 2
    # The new attempt resumes after epoch 1: rows 2 and 3 were written past its checkpoint.
    assert call(db, jobs.record_start, run_id=run_id, attempt=2, start_epoch=1)
    # It reports epoch 1 again from its checkpoint: stored only if missing, never rewritten.
    assert call(db, jobs.store_epoch, run_id=run_id, attempt=2, row={"epoch": 1, "train_loss": 99.0}, replay=True)
    assert call(db, jobs.store_epoch, run_id=run_id, attempt=2, row={"epoch": 2, "train_loss": 2.5})
    with db.session() as session:
        rows = session.scalars(
            select(EpochMetric).where(EpochMetric.run_id == run_id).order_by(EpochMetric.epoch)
        ).all()
        steps = session.scalars(select(StepMetric).where(StepMetric.run_id == run_id)).all()
    assert [(r.epoch, r.train_loss, r.attempt) for r in rows] == [(1, 1.0, 1), (2, 2.5, 2)]
    assert [(s.step, s.loss) for s in steps] == [(5, 0.5)]


def test_training_failures_retry_up_to_max_attempts(db):
    run_id = add_run(db, max_attempts=2)
    claim(db)
    assert call(db, jobs.fail, run_id=run_id, attempt=1, error="e1", kind=FailureKind.training) == RunStatus.queued
    assert claim(db).attempt == 2
    assert call(db, jobs.fail, run_id=run_id, attempt=2, error="e2", kind=FailureKind.training) == RunStatus.failed
    run = get(db, run_id)
    assert (run.training_failures, run.error, run.failure_kind) == (2, "e2", FailureKind.training)
    assert run.finished_at is not None


def test_infrastructure_failures_are_always_requeued(db):
    run_id = add_run(db, max_attempts=1)
    for attempt in (1, 2, 3):
        assert claim(db).attempt == attempt
        assert (
            call(db, jobs.fail, run_id=run_id, attempt=attempt, error="stopped", kind=FailureKind.infrastructure)
            == RunStatus.queued
        )
    assert get(db, run_id).infrastructure_failures == 3
