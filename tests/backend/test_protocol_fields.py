"""The database and the public schema carry exactly the fields of the trainer's events."""

from backend.models import EpochMetric, Run
from backend.schemas.metrics import EpochMetricPublic
from trainer.protocol import EPOCH_FIELDS, RESULT_FIELDS

EPOCH_METRIC_KEYS = {"id", "run_id", "epoch", "attempt", "created_at"}
EPOCH_PUBLIC_KEYS = {"run_id", "epoch", "attempt"}
RUN_OWN_COLUMNS = {
    "id",
    "name",
    "kind",
    "sweep",
    "study_id",
    "status",
    "priority",
    "config",
    "config_hash",
    "configuration_hash",
    "depends_on",
    "created_by",
    "notes",
    "archived_at",
    "updated_by",
    "updated_at",
    "attempt",
    "max_attempts",
    "training_failures",
    "infrastructure_failures",
    "worker",
    "cancel_requested",
    "failure_kind",
    "error",
    "start_epoch",
    "start_step",
    "world_size",
    "devices",
    "device_fallback",
    "software",
    "created_at",
    "started_at",
    "finished_at",
    "heartbeat_at",
    "disk_bytes",  # the worker measures the folder; the trainer reports nothing of it
    # The Slurm job of a run handed to Slurm, as the dispatcher reads it from squeue.
    "slurm_job_id",
    "slurm_nodes",
    "slurm_restarts",
    "slurm_state",
    "slurm_reason",
    "pruned",  # a sweep's controller writes why it stopped the run
}


def test_epoch_metric_columns_are_the_epoch_fields():
    columns = {column.name for column in EpochMetric.__table__.columns}
    assert columns == set(EPOCH_FIELDS) | EPOCH_METRIC_KEYS


def test_public_epoch_schema_has_the_epoch_fields():
    fields = set(EpochMetricPublic.model_fields)
    assert fields == set(EPOCH_FIELDS) | EPOCH_PUBLIC_KEYS


def test_run_result_columns_are_the_result_fields():
    columns = {column.name for column in Run.__table__.columns}
    assert columns == set(RESULT_FIELDS) | RUN_OWN_COLUMNS
