"""Creating studies through the service, and reading back what they queued, for the study tests."""

from sqlalchemy import func, select

from backend.models import Run
from backend.schemas.studies import StudyCreate
from backend.services import studies, study_views

# The report's experiments: arch, schedule, label smoothing, mixup alpha, teacher group.
SEED_STUDY = {
    "T": ("resnet152", "onecycle", 0.0, 0.0, None),
    "T-LS": ("resnet152", "onecycle", 0.1, 0.0, None),
    "base": ("resnet50", "onecycle", 0.0, 0.0, None),
    "a": ("resnet50", "cosine", 0.0, 0.0, None),
    "b": ("resnet50", "onecycle", 0.1, 0.0, None),
    "c": ("resnet50", "onecycle", 0.0, 0.0, "T"),
    "d1": ("resnet50", "onecycle", 0.0, 1.0, None),
    "d2": ("resnet50", "onecycle", 0.0, 0.2, None),
    "d3": ("resnet50", "onecycle", 0.0, 0.1, None),
    "d4": ("resnet50", "onecycle", 0.0, 0.01, None),
    "e": ("resnet50", "cosine", 0.1, 0.0, None),
    "f": ("resnet50", "cosine", 0.0, 0.0, "T"),
    # "+ LS + KD" in the report's words: an unsmoothed student learning from T-LS.
    "g": ("resnet50", "onecycle", 0.0, 0.0, "T-LS"),
    "h": ("resnet50", "cosine", 0.0, 0.0, "T-LS"),
    "i1": ("resnet50", "cosine", 0.0, 0.2, "T-LS"),
    "i2": ("resnet50", "cosine", 0.0, 0.01, "T-LS"),
}
TINY = {"model.arch": "resnet18", "model.pretrained": False, "data.image_size": 32, "epochs": 1, "batch_size": 16}
# Without it the teachers would be resnet18 too, and T the very base run (shared).
TEACHER = {"teacher.model.arch": "resnet34"}


def study_request(*, name="s", preset=None, switches=None, overrides, seeds=1):
    grid = None if switches is None else {"switches": switches}
    return StudyCreate.model_validate(
        {"name": name, "preset": preset, "grid": grid, "overrides": overrides, "seeds": seeds}
    )


def create(store, *, seeds=1, preset=None, switches=None, **overrides):
    overrides.setdefault("data.root", str(store.data_root))
    with store.db.session(write=True) as session:
        study = studies.create_study(
            session=session,
            settings=store.settings,
            request=study_request(preset=preset, switches=switches, overrides=overrides, seeds=seeds),
        )
        return study_views.study_public(session=session, study=study)


def runs_of(store, public):
    ids = [run.run_id for group in public.groups for run in group.runs]
    with store.db.session() as session:
        return {run.id: run for run in session.scalars(select(Run).where(Run.id.in_(ids)))}


def run_count(store):
    with store.db.session() as session:
        return session.scalar(select(func.count()).select_from(Run))
