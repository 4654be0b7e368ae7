"""Shared fixtures: settings on a temporary data folder, SQLite and PostgreSQL stores."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import sqlalchemy as sa

from postroom.runtime.settings import Settings, from_mapping

IN_CI = os.environ.get("CI", "").lower() == "true"
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

BASE_CONFIG = {
    "queues": [{"name": "support"}, {"name": "billing"}, {"name": "vip"}],
    "routes": [
        {
            "address": "support@example.com",
            "queue": "support",
            "reply_from": "support@example.com",
            "auto_ack": "We got it: {reference}",
        },
        {"address": "*@billing.example.com", "queue": "billing", "priority": 2},
    ],
    "rules": [
        {
            "name": "vip customers",
            "when": [{"field": "sender", "op": "domain", "value": "vip.example"}],
            "then": {"queue": "vip", "priority": 5, "tags": ["vip"]},
        },
        {
            "name": "drop spam",
            "when": [{"field": "subject", "op": "contains", "value": "casino"}],
            "then": {"discard": "spam subject"},
        },
    ],
}


def service_missing(reason: str) -> None:
    """Skip on a laptop without the service; fail in CI, where it must run."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: this service must be available)")
    pytest.skip(reason)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    s = from_mapping(BASE_CONFIG)
    return replace(s, data_dir=tmp_path / "data")


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    url = os.environ.get("POSTROOM_TEST_POSTGRES_URL", DEFAULT_PG)
    try:
        eng = sa.create_engine(url)
        with eng.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        eng.dispose()
    except Exception as exc:
        service_missing(f"PostgreSQL not reachable at {url}: {type(exc).__name__}")
    return url


@pytest.fixture(scope="session")
def pg_database(pg_admin_url: str) -> Iterator[str]:
    """A fresh database for this test session, migrated once, dropped at the end."""
    name = f"postroom_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(pg_admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.make_url(pg_admin_url).set(database=name).render_as_string(hide_password=False)
    from postroom.store.db import create_engine, migrate

    eng = create_engine(url)
    migrate(eng)
    eng.dispose()
    yield url
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def pg_url(pg_database: str) -> str:
    """The session database, emptied before each test."""
    from postroom.store.schema import metadata

    eng = sa.create_engine(pg_database)
    with eng.begin() as conn:
        names = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
        conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    eng.dispose()
    return pg_database


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_settings(request: pytest.FixtureRequest, settings: Settings) -> Settings:
    """Settings on SQLite, then on PostgreSQL: storage tests run against both."""
    if request.param == "postgres":
        return replace(settings, database_url=request.getfixturevalue("pg_url"))
    return settings
