"""Where the events live: one store URL, turned into eventsourcing's settings.

``memory://`` (tests), ``sqlite:///path/to/crm.db`` (the embedded default) and
``postgresql://user@host:port/dbname`` (production). The same URL is accepted by the
projections and the Kafka relay, so one setting wires the whole library.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlparse

from eventsourcing.utils import get_topic

from crm_domain.errors import (
    ConfigurationError,
    MissingDependencyError,
    StoreNotFoundError,
    StoreUnavailableError,
)
from crm_domain.infrastructure.sqlite_subscription import SubscribableSQLiteApplicationRecorder


@dataclass(frozen=True)
class StoreURL:
    """A parsed store URL; :meth:`eventsourcing_env` gives the application's settings."""

    url: str
    backend: str  # "memory", "sqlite" or "postgres"
    sqlite_path: str = ""
    pg_host: str = ""
    pg_port: str = ""
    pg_user: str = ""
    pg_password: str = ""
    pg_dbname: str = ""
    pg_schema: str = ""
    #: Seconds to wait for a PostgreSQL connection (``?connect_timeout=N``; default 10).
    pg_connect_timeout: str = "10"

    @classmethod
    def parse(cls, url: str) -> StoreURL:
        """Read a store URL; a :class:`~crm_domain.errors.ConfigurationError` says what is wrong."""
        if url in ("memory://", "memory:", "popo://"):
            return cls(url=url, backend="memory")
        parsed = urlparse(url)
        if parsed.scheme == "sqlite":
            # sqlite:///relative.db, sqlite:////abs/path.db, sqlite:///:memory:
            path = unquote(parsed.path[1:] if parsed.path.startswith("/") else parsed.path)
            if not path:
                raise ConfigurationError(f"store URL {url!r} names no SQLite file")
            return cls(url=url, backend="sqlite", sqlite_path=path)
        if parsed.scheme in ("postgres", "postgresql", "postgresql+psycopg"):
            query = parse_qs(parsed.query)
            dbname = parsed.path.lstrip("/")
            if not dbname:
                raise ConfigurationError(f"store URL {url!r} names no database")
            return cls(
                url=url,
                backend="postgres",
                pg_host=parsed.hostname or "127.0.0.1",
                pg_port=str(parsed.port or 5432),
                pg_user=unquote(parsed.username or "postgres"),
                pg_password=unquote(parsed.password or ""),
                pg_dbname=dbname,
                pg_schema=query.get("schema", [""])[0],
                pg_connect_timeout=query.get("connect_timeout", ["10"])[0],
            )
        raise ConfigurationError(
            f"unsupported store URL {url!r}: use memory://, sqlite:///FILE or postgresql://..."
        )

    @property
    def in_memory(self) -> bool:
        """True for a store that lives only as long as this process (``memory://``, or an
        SQLite ``:memory:`` database): nothing else can follow it or read it later."""
        return self.backend == "memory" or (
            self.backend == "sqlite"
            and (self.sqlite_path == ":memory:" or "mode=memory" in self.sqlite_path)
        )

    @property
    def display(self) -> str:
        """The URL with its password masked, fit to print or log."""
        if self.backend == "postgres" and self.pg_password:
            return self.url.replace(":" + quote(self.pg_password, safe="") + "@", ":***@").replace(
                ":" + self.pg_password + "@", ":***@"
            )
        return self.url

    @property
    def sqlalchemy_url(self) -> str:
        """The same database as a SQLAlchemy URL (for read models and tracking)."""
        if self.backend == "sqlite":
            return f"sqlite:///{self.sqlite_path}"
        if self.backend == "postgres":
            _require_psycopg()
            auth = quote(self.pg_user, safe="")
            if self.pg_password:
                auth += ":" + quote(self.pg_password, safe="")
            return f"postgresql+psycopg://{auth}@{self.pg_host}:{self.pg_port}/{self.pg_dbname}"
        return "sqlite:///:memory:"

    def eventsourcing_env(self) -> dict[str, str]:
        """eventsourcing's persistence settings (module, database, recorder) for this store."""
        if self.backend == "memory":
            return {"PERSISTENCE_MODULE": "eventsourcing.popo"}
        if self.backend == "sqlite":
            return {
                "PERSISTENCE_MODULE": "eventsourcing.sqlite",
                "SQLITE_DBNAME": self.sqlite_path,
                "SQLITE_LOCK_TIMEOUT": "10",
                "APPLICATION_RECORDER_TOPIC": get_topic(SubscribableSQLiteApplicationRecorder),
            }
        _require_psycopg()
        env = {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": self.pg_dbname,
            "POSTGRES_HOST": self.pg_host,
            "POSTGRES_PORT": self.pg_port,
            "POSTGRES_USER": self.pg_user,
            "POSTGRES_PASSWORD": self.pg_password,
            # Sends each event in full before waiting for replies (a large event could
            # otherwise hang while holding the table lock): see
            # crm_domain.infrastructure.postgres_recorder.
            "APPLICATION_RECORDER_TOPIC": "crm_domain.infrastructure.postgres_recorder:"
            "FlushingPostgresApplicationRecorder",
        }
        if self.pg_schema:
            env["POSTGRES_SCHEMA"] = self.pg_schema
        env["POSTGRES_CONNECT_TIMEOUT"] = self.pg_connect_timeout
        return env

    def check(self, *, must_exist: bool = False, events_table: str = "crm_events") -> None:
        """Fail at once, with the real cause, when the store cannot be opened.

        ``must_exist`` is for commands that only read (reports, status): they refuse a
        store that is not there rather than create an empty one, so a mistyped path is an
        error (:class:`StoreNotFoundError`), not empty tables. An SQLite file in a missing
        directory, a PostgreSQL database or role that does not exist, or a wrong password
        is a :class:`ConfigurationError` or :class:`StoreNotFoundError` straight away;
        only a server that cannot be reached is :class:`StoreUnavailableError`.
        """
        if self.backend == "sqlite" and not self.in_memory:
            path = Path(self.sqlite_path)
            if must_exist and not path.is_file():
                raise StoreNotFoundError(
                    f"no store at {self.url} (no file {path.resolve()}): check --store or "
                    "CRM_STORE_URL; `crm demo` or `crm import` create a store"
                )
            if not path.parent.resolve().is_dir():
                raise ConfigurationError(
                    f"cannot create the store {self.url}: directory {path.parent.resolve()} "
                    "does not exist"
                )
        elif self.backend == "postgres":
            self._check_postgres(must_exist=must_exist, events_table=events_table)

    def _check_postgres(self, *, must_exist: bool, events_table: str) -> None:
        _require_psycopg()
        import psycopg

        where = f"PostgreSQL {self.pg_host}:{self.pg_port}"
        try:
            timeout = max(1, int(float(self.pg_connect_timeout)))
        except ValueError:
            raise ConfigurationError(
                f"store URL {self.display!r}: connect_timeout must be a number of seconds"
            ) from None
        try:
            connection = psycopg.connect(
                host=self.pg_host,
                port=int(self.pg_port),
                user=self.pg_user,
                password=self.pg_password or None,
                dbname=self.pg_dbname,
                connect_timeout=timeout,
            )
        except psycopg.OperationalError as exc:
            cause = _server_says(exc)
            if "database" in cause and "does not exist" in cause:
                raise StoreNotFoundError(
                    f"database {self.pg_dbname!r} does not exist on {where}: create it "
                    f"(createdb {self.pg_dbname}) or check --store / CRM_STORE_URL"
                ) from None
            if any(word in cause for word in ("role", "authentication", "password")):
                refused = f"{where} refused user {self.pg_user!r}: {cause}"
                raise ConfigurationError(refused) from None
            raise StoreUnavailableError(f"the store is unreachable ({where}): {cause}") from None
        with connection:
            if must_exist:
                table = f"{self.pg_schema}.{events_table}" if self.pg_schema else events_table
                row = connection.execute("SELECT to_regclass(%s)", (table,)).fetchone()
                if row is None or row[0] is None:
                    raise StoreNotFoundError(
                        f"database {self.pg_dbname!r} on {where} holds no CRM events "
                        f"(no table {table}): check --store or CRM_STORE_URL"
                    )


def _server_says(exc: BaseException) -> str:
    """The useful part of a driver's message: what the server said (after ``FATAL:``),
    else the last line."""
    text = str(exc).strip()
    if "FATAL:" in text:
        return text.rsplit("FATAL:", 1)[1].strip().splitlines()[0]
    return text.splitlines()[-1].strip() if text else type(exc).__name__


def _require_psycopg() -> Any:
    """psycopg, or a :class:`MissingDependencyError` naming the extra that installs it."""
    try:
        import psycopg
    except ImportError:
        raise MissingDependencyError("a PostgreSQL store", "postgres", "psycopg") from None
    return psycopg
