"""`tricklab gc` on real run folders, on SQLite and PostgreSQL: the checkpoints of finished runs nobody
keeps go, and nothing else; live runs, their teachers (by id or by folder), recent runs and runs tagged
``keep`` keep theirs."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update
from testlib.finished import Finished, add_finished_runs, write_run_folder
from testlib.processes import tricklab

from backend.models import Run, RunStatus, RunTag, utcnow

CHECKPOINT_BYTES = 5000


def tree(folder) -> dict[str, int]:
    return {path.relative_to(folder).as_posix(): path.stat().st_size for path in folder.rglob("*") if path.is_file()}


def test_gc_removes_only_the_checkpoints_nobody_keeps(database_url, make_settings, make_database):
    settings = make_settings(database_url)
    db = make_database(settings)
    ids = add_finished_runs(settings.database_url, [Finished(f"run {index}", {}, [(50, 80)]) for index in range(7)])
    old, by_id, by_folder, recent, student, distiller, tagged = ids
    folders = {run_id: write_run_folder(settings.runs_dir, run_id, checkpoint_bytes=CHECKPOINT_BYTES) for run_id in ids}
    month_ago = utcnow() - timedelta(days=30)
    with db.session(write=True) as session:
        session.execute(update(Run).where(Run.id.in_([old, by_id, by_folder, tagged])).values(finished_at=month_ago))
        session.add_all([RunTag(run_id=tagged, tag="keep"), RunTag(run_id=old, tag="draft")])
        session.execute(update(Run).where(Run.id == student).values(status=RunStatus.queued, depends_on=by_id))
        config = session.get(Run, distiller).config
        config["tricks"]["kd"]["teacher"] = str(settings.run_dir(by_folder))
        session.execute(update(Run).where(Run.id == distiller).values(status=RunStatus.running, config=config))
        session.commit()
    before = {run_id: tree(folder) for run_id, folder in folders.items()}
    env = settings.environ()

    dry = tricklab("gc", "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert f"run {old} (run 0): would remove 9.8 KiB of checkpoints" in dry.stdout
    assert f"run {by_id}: kept (teacher of a queued or running run)" in dry.stdout
    assert f"run {by_folder}: kept (teacher of a queued or running run)" in dry.stdout
    assert f"run {recent}: kept (finished less than 7 days ago)" in dry.stdout
    assert f"run {tagged}: kept (marked to keep)" in dry.stdout
    assert "would free 9.8 KiB from 1 runs" in dry.stderr
    assert {run_id: tree(folder) for run_id, folder in folders.items()} == before

    done = tricklab("gc", env=env)
    assert done.returncode == 0, done.stderr
    assert "freed 9.8 KiB from 1 runs" in done.stderr
    after = {run_id: tree(folder) for run_id, folder in folders.items()}
    kept_files = {path: size for path, size in before[old].items() if not path.startswith("checkpoints/")}
    assert after[old] == kept_files and not (folders[old] / "checkpoints").exists()
    assert {run_id: files for run_id, files in after.items() if run_id != old} == {
        run_id: files for run_id, files in before.items() if run_id != old
    }
    with db.session() as session:
        assert session.get(Run, old).disk_bytes == sum(kept_files.values())

    everything = tricklab("gc", "--keep-days", "0", env=env)
    assert everything.returncode == 0, everything.stderr
    assert f"run {recent} (run 3): removed" in everything.stdout and "from 1 runs" in everything.stderr
    assert (folders[student] / "checkpoints").is_dir() and (folders[distiller] / "checkpoints").is_dir()
    assert (folders[by_id] / "checkpoints").is_dir() and (folders[by_folder] / "checkpoints").is_dir()
    assert (folders[tagged] / "checkpoints").is_dir()


def test_gc_refuses_a_bad_setting(make_settings, sqlite_url):
    env = {**make_settings(sqlite_url).environ(), "TRICKLAB_GC_KEEP_DAYS": "-1"}
    refused = tricklab("gc", env=env)
    assert refused.returncode != 0 and "TRICKLAB_GC_KEEP_DAYS" in refused.stderr
