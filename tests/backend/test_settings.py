import json
import sys

import pytest
from pydantic import ValidationError

from backend.settings import Settings


def test_defaults_are_local_and_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    assert settings.database_url == f"sqlite:///{tmp_path}/tricklab.db"
    assert settings.runs_dir == tmp_path / "runs"
    assert settings.data_roots == [tmp_path / "data"]
    assert settings.trainer_command == [sys.executable, "-m", "trainer", "run"]
    assert settings.max_attempts == 1


def test_environment_names_and_json_values(tmp_path, monkeypatch):
    monkeypatch.setenv("TRICKLAB_DATABASE_URL", "postgresql://u:p@db:5432/tricklab")
    monkeypatch.setenv("TRICKLAB_RUNS_DIR", str(tmp_path / "r"))
    monkeypatch.setenv("TRICKLAB_DATA_ROOTS", json.dumps([str(tmp_path / "a"), str(tmp_path / "b")]))
    monkeypatch.setenv("TRICKLAB_TRAINER_COMMAND", '["python", "fake.py"]')
    settings = Settings()
    assert settings.database_url == "postgresql+psycopg://u:p@db:5432/tricklab"  # psycopg by URL alone
    assert settings.data_roots == [tmp_path / "a", tmp_path / "b"]
    assert settings.trainer_command == ["python", "fake.py"]
    # What a server hands to the workers it starts reads back as the same settings.
    monkeypatch.setattr("os.environ", {**settings.environ()})
    assert Settings() == settings


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"database_url": "sqlite:///:memory:"}, "not an in-memory database"),
        ({"database_url": "mysql://x/y"}, "unsupported database"),
        ({"heartbeat_seconds": 10, "stale_after_seconds": 15}, "at least twice"),
        ({"max_attempts": 0}, "greater than or equal to 1"),
        ({"data_roots": []}, "at least one data root"),
        ({"trainer_command": []}, "at least 1 item"),
    ],
)
def test_unsafe_values_are_refused(values, message):
    with pytest.raises(ValidationError, match=message):
        Settings(**values)
