"""Store URLs: parsing, the settings they give, and the typed errors of bad ones."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from crm_domain import CRM
from crm_domain.errors import ConfigurationError
from crm_domain.infrastructure.storage import StoreURL


@pytest.mark.parametrize("url", ["memory://", "memory:", "popo://"])
def test_memory(url: str) -> None:
    store = StoreURL.parse(url)
    assert store.backend == "memory"
    assert store.eventsourcing_env() == {"PERSISTENCE_MODULE": "eventsourcing.popo"}


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///crm.sqlite", "crm.sqlite"),
        ("sqlite:///data/crm.db", "data/crm.db"),
        ("sqlite:////var/lib/crm/crm.db", "/var/lib/crm/crm.db"),
        ("sqlite:///my%20crm.db", "my crm.db"),
    ],
)
def test_sqlite(url: str, path: str) -> None:
    store = StoreURL.parse(url)
    assert (store.backend, store.sqlite_path) == ("sqlite", path)
    env = store.eventsourcing_env()
    assert env["PERSISTENCE_MODULE"] == "eventsourcing.sqlite"
    assert env["SQLITE_DBNAME"] == path
    assert store.sqlalchemy_url == f"sqlite:///{path}"


def test_postgres_with_everything() -> None:
    store = StoreURL.parse("postgresql://crm:s%40cret@db.internal:6543/crm_prod?schema=sales")
    assert store.backend == "postgres"
    assert (store.pg_host, store.pg_port, store.pg_dbname) == ("db.internal", "6543", "crm_prod")
    assert (store.pg_user, store.pg_password, store.pg_schema) == ("crm", "s@cret", "sales")
    env = store.eventsourcing_env()
    assert env["PERSISTENCE_MODULE"] == "eventsourcing.postgres"
    assert env["POSTGRES_PASSWORD"] == "s@cret"
    assert env["POSTGRES_SCHEMA"] == "sales"
    parsed = make_url(store.sqlalchemy_url)  # a password with "@" survives the round trip
    assert (parsed.username, parsed.password, parsed.host) == ("crm", "s@cret", "db.internal")
    assert (parsed.port, parsed.database, parsed.drivername) == (
        6543,
        "crm_prod",
        "postgresql+psycopg",
    )


@pytest.mark.parametrize("scheme", ["postgres", "postgresql", "postgresql+psycopg"])
def test_postgres_defaults(scheme: str) -> None:
    store = StoreURL.parse(f"{scheme}:///crm")
    assert (store.pg_host, store.pg_port, store.pg_user) == ("127.0.0.1", "5432", "postgres")
    assert store.pg_password == ""
    assert "POSTGRES_SCHEMA" not in store.eventsourcing_env()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite://", "no SQLite file"),
        ("postgresql://localhost:5432", "no database"),
        ("postgresql://localhost:5432/", "no database"),
        ("mysql://localhost/crm", "unsupported"),
        ("crm.sqlite", "unsupported"),
        ("", "unsupported"),
    ],
)
def test_bad_urls_raise_typed_errors(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        StoreURL.parse(url)


def test_crm_refuses_a_bad_store_url() -> None:
    with pytest.raises(ConfigurationError, match="unsupported"):
        CRM("oracle://scott:tiger@db/crm")


def test_crm_store_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "from-env.sqlite"
    monkeypatch.setenv("CRM_STORE_URL", f"sqlite:///{path}")
    app = CRM()
    app.register_customer(kind="individual", name="Chen", code="P-1")
    assert app.store.backend == "sqlite"
    assert path.exists()
    app.close()


def test_default_store_is_an_sqlite_file_in_the_working_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("CRM_STORE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    app = CRM()
    app.register_customer(kind="individual", name="Chen", code="P-1")
    app.close()
    assert (tmp_path / "crm.sqlite").exists()
