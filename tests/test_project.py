"""Project-wide checks: migrations match the models, settings refuse nonsense."""

import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from sharedcare.env import ImproperlyConfiguredEnv, env_bool, env_int

ROOT = Path(__file__).resolve().parents[1]


def test_migrations_match_the_models(db):
    out = StringIO()
    call_command("makemigrations", "--check", "--dry-run", stdout=out)


def _settings_import(
    env: dict[str, str], code: str = "import django; django.setup()"
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        env={"DJANGO_SETTINGS_MODULE": "sharedcare.settings", "PATH": "/usr/bin:/bin", **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


def test_no_secret_key_outside_debug_refuses_to_start():
    result = _settings_import(
        {"DATABASE_URL": "postgres://u@127.0.0.1/db", "REDIS_URL": "redis://127.0.0.1:1/0"}
    )
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_a_database_other_than_postgresql_is_refused():
    result = _settings_import(
        {"SECRET_KEY": "x" * 50, "DATABASE_URL": "sqlite:///db.sqlite3", "REDIS_URL": "redis://127.0.0.1:1/0"}
    )
    assert result.returncode != 0
    assert "PostgreSQL only" in result.stderr


def test_debug_is_off_by_default():
    # In a fresh process: pytest-django sets DEBUG to False in the test process whatever the settings say.
    result = _settings_import(
        {
            "SECRET_KEY": "x" * 50,
            "DATABASE_URL": "postgres://u@127.0.0.1/db",
            "REDIS_URL": "redis://127.0.0.1:1/0",
        },
        "from django.conf import settings; print(repr(settings.DEBUG))",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_passwords_are_hashed_with_argon2():
    # The module itself, not django.conf.settings, which the test cast overrides for speed.
    import sharedcare.settings as configured

    assert configured.PASSWORD_HASHERS[0].endswith("Argon2PasswordHasher")


@pytest.mark.parametrize("value", ["maybe", "2", "enabled"])
def test_boolean_settings_refuse_nonsense(monkeypatch, value):
    monkeypatch.setenv("SOME_FLAG", value)
    with pytest.raises(ImproperlyConfiguredEnv):
        env_bool("SOME_FLAG")


def test_number_settings_refuse_nonsense(monkeypatch):
    monkeypatch.setenv("SOME_NUMBER", "ten")
    with pytest.raises(ImproperlyConfiguredEnv):
        env_int("SOME_NUMBER", 1)
    monkeypatch.setenv("SOME_NUMBER", "0")
    with pytest.raises(ImproperlyConfiguredEnv):
        env_int("SOME_NUMBER", 1, minimum=1)


def test_env_example_names_every_variable_the_settings_read():
    settings_text = (ROOT / "sharedcare" / "settings.py").read_text()
    import re

    read = set(re.findall(r'env_(?:str|bool|int|list)\("([A-Z_]+)"', settings_text))
    example = (ROOT / ".env.example").read_text()
    missing = sorted(name for name in read if f"{name}=" not in example)
    assert missing == []
