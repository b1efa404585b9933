"""Database tables (SQLAlchemy 2.0 typed models). Alembic revisions in migrations/ mirror these.

One module per concern; each imports only the ones below it (base <- runs <- config_keys; access and
sweeps on base). Importing the package registers every table and index on ``Base.metadata``.
"""

from backend.models.access import IdempotencyKey, LoginSession, Token
from backend.models.base import MAX_ID, NAMING_CONVENTION, Base, UTCDateTime, enum_type, utcnow
from backend.models.config_keys import CONFIG_INDEXES, INDEXED_CONFIG_KEYS, ConfigKey
from backend.models.runs import (
    FINAL_STATUSES,
    SORT_KEYS,
    EpochMetric,
    FailureKind,
    Run,
    RunKind,
    RunStatus,
    RunTag,
    StepMetric,
    Study,
    Worker,
)
from backend.models.sweeps import ACTIVE_SWEEP_STATUSES, Sweep, SweepRun, SweepStatus, SweepTrial, TrialState

__all__ = [
    "ACTIVE_SWEEP_STATUSES",
    "CONFIG_INDEXES",
    "FINAL_STATUSES",
    "INDEXED_CONFIG_KEYS",
    "MAX_ID",
    "NAMING_CONVENTION",
    "SORT_KEYS",
    "Base",
    "ConfigKey",
    "EpochMetric",
    "FailureKind",
    "IdempotencyKey",
    "LoginSession",
    "Run",
    "RunKind",
    "RunStatus",
    "RunTag",
    "StepMetric",
    "Study",
    "Sweep",
    "SweepRun",
    "SweepStatus",
    "SweepTrial",
    "Token",
    "TrialState",
    "UTCDateTime",
    "Worker",
    "enum_type",
    "utcnow",
]
