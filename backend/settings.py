"""Settings read from the environment (prefix ``TRICKLAB_``); unsafe values are refused at start."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

from backend.hosts import bare_name


def default_trainer_command() -> list[str]:
    return [sys.executable, "-m", "trainer", "run"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TRICKLAB_", extra="ignore")

    database_url: str = Field("sqlite:///./tricklab.db", description="SQLite file or PostgreSQL URL")
    runs_dir: Path = Field(Path("./runs"), description="one folder per run, shared by all workers")
    data_roots: list[Path] = Field(
        default_factory=lambda: [Path("./data")],
        description="folders a run may read datasets and teachers from (JSON list)",
    )
    heartbeat_seconds: float = Field(5.0, gt=0, description="how often a worker marks its run alive")
    stale_after_seconds: float = Field(60.0, gt=0, description="a running run silent this long is requeued")
    poll_seconds: float = Field(1.0, gt=0, le=2, description="worker queue poll and cancel check interval")
    max_attempts: int = Field(1, ge=1, le=100, description="tries per run for training errors (1 = no retry)")
    trainer_command: list[str] = Field(
        default_factory=default_trainer_command,
        min_length=1,
        description="the command a worker runs as `<command> RUN_DIR --attempt N` (JSON list)",
    )
    sqlite_busy_timeout_seconds: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="how long a SQLite statement waits for another process's lock before giving up: a request "
        "then answers 503 with Retry-After, a worker tries again later",
    )
    kill_grace_seconds: float = Field(3.0, gt=0, description="SIGTERM to SIGKILL delay when stopping a trainer")
    fork_server: str = Field(
        "auto",
        min_length=1,
        description="how a worker starts its trainers: `auto` forks each from a process of its own that has "
        "imported PyTorch once (`tricklab serve` shares one among its workers), `off` starts each as a new "
        "`python -m trainer run`, or the socket of a running `python -m trainer.fork_server SOCKET`",
    )
    sweep_poll_seconds: float = Field(
        1.0, gt=0, le=60, description="how often the server's sweep controller reads new epochs and finished runs"
    )
    sweep_controller: bool = Field(
        True, description="run the sweep controller in the server process (off: a test drives it by hand)"
    )
    sse_poll_seconds: float = Field(0.5, gt=0, le=5, description="how often an event stream reads the database")
    sse_keepalive_seconds: float = Field(
        15.0, gt=0, description="interval of the keep-alive comment on an event stream"
    )
    bind_host: str = Field(
        "127.0.0.1",
        min_length=1,
        description="the address the server listens on (`tricklab serve --host` sets it): it decides the "
        "default allowed hosts, and whether the server may run without a token",
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Host names the server answers besides its defaults, e.g. a reverse proxy's (JSON list)",
    )
    insecure_no_auth: bool = Field(
        False, description="serve beyond loopback while no token exists (`tricklab serve --insecure-no-auth`)"
    )
    session_days: float = Field(7.0, gt=0, le=366, description="how long a browser stays logged in")
    gc_keep_days: float = Field(
        7.0,
        ge=0,
        le=36500,
        description="`tricklab gc` keeps the checkpoints of runs finished less than this many days ago "
        "(besides those of live runs, their teachers and runs marked to keep)",
    )

    @field_validator("database_url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        scheme, sep, rest = url.partition("://")
        if not sep:
            raise ValueError(f"not a database URL: {url!r}")
        # "PostgreSQL by URL alone": plain postgres URLs use the psycopg (v3) driver we ship.
        if scheme in ("postgres", "postgresql"):
            return f"postgresql+psycopg://{rest}"
        if scheme not in ("sqlite", "sqlite+pysqlite", "postgresql+psycopg"):
            raise ValueError(f"unsupported database {scheme!r}: use sqlite:///FILE or postgresql://...")
        if scheme.startswith("sqlite") and (rest in ("", "/") or ":memory:" in rest or "mode=memory" in rest):
            # The server and its workers are separate processes: they must share one file.
            raise ValueError("SQLite needs a file (sqlite:///path/to/tricklab.db), not an in-memory database")
        if scheme.startswith("sqlite"):
            # Absolute, so processes started from another folder open the same file.
            parsed = make_url(url)
            if parsed.database is None:  # sqlite://HOST: a host and no file
                raise ValueError("SQLite needs a file (sqlite:///path/to/tricklab.db), not a host")
            return parsed.set(database=str(Path(parsed.database).expanduser().resolve())).render_as_string()
        return url

    @field_validator("fork_server")
    @classmethod
    def _check_fork_server(cls, value: str) -> str:
        if value in ("auto", "off"):
            return value
        if not Path(value).is_absolute():
            raise ValueError(f"{value!r}: use auto, off, or the absolute path of a fork server's socket")
        return value

    @field_validator("runs_dir")
    @classmethod
    def _absolute_dir(cls, path: Path) -> Path:
        return path.expanduser().resolve()

    @field_validator("data_roots")
    @classmethod
    def _absolute_roots(cls, roots: list[Path]) -> list[Path]:
        if not roots:
            raise ValueError("at least one data root is needed")
        return [root.expanduser().resolve() for root in roots]

    @field_validator("bind_host")
    @classmethod
    def _check_bind_host(cls, host: str) -> str:
        if bare_name(host) is None:
            raise ValueError(f"{host!r} is not an address or host name to listen on")
        return host

    @field_validator("allowed_hosts")
    @classmethod
    def _check_allowed_hosts(cls, hosts: list[str]) -> list[str]:
        names = {host: bare_name(host) for host in hosts}
        for host, name in names.items():
            if name is None:
                raise ValueError(
                    f"{host!r} is not a host name: give the name alone, as in gpu-box.lab (no scheme or port)"
                )
        return [name for name in names.values() if name is not None]

    @model_validator(mode="after")
    def _check_timeouts(self) -> Settings:
        if self.stale_after_seconds < 2 * self.heartbeat_seconds:
            raise ValueError(
                f"stale_after_seconds ({self.stale_after_seconds}) must be at least twice "
                f"heartbeat_seconds ({self.heartbeat_seconds}), or live runs would be requeued"
            )
        return self

    def run_dir(self, run_id: int) -> Path:
        return self.runs_dir / str(run_id)

    def environ(self) -> dict[str, str]:
        """These settings as TRICKLAB_* variables, for the processes a server or test starts."""
        values = self.model_dump(mode="json")
        return {
            f"TRICKLAB_{key.upper()}": value if isinstance(value, str) else json.dumps(value)
            for key, value in values.items()
        }
