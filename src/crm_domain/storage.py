"""Where the events live: one store URL, turned into eventsourcing's settings.

``memory://`` (tests), ``sqlite:///path/to/crm.db`` (the embedded default) and
``postgresql://user@host:port/dbname`` (production). The same URL is accepted by the
projections and the Kafka relay, so one setting wires the whole library.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, quote, unquote, urlparse

from eventsourcing.utils import get_topic

from crm_domain.errors import ConfigurationError
from crm_domain.sqlite_subscription import SubscribableSQLiteApplicationRecorder


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
    def sqlalchemy_url(self) -> str:
        """The same database as a SQLAlchemy URL (for read models and tracking)."""
        if self.backend == "sqlite":
            return f"sqlite:///{self.sqlite_path}"
        if self.backend == "postgres":
            auth = quote(self.pg_user, safe="")
            if self.pg_password:
                auth += ":" + quote(self.pg_password, safe="")
            return f"postgresql+psycopg://{auth}@{self.pg_host}:{self.pg_port}/{self.pg_dbname}"
        return "sqlite:///:memory:"

    def eventsourcing_env(self) -> dict[str, str]:
        if self.backend == "memory":
            return {"PERSISTENCE_MODULE": "eventsourcing.popo"}
        if self.backend == "sqlite":
            return {
                "PERSISTENCE_MODULE": "eventsourcing.sqlite",
                "SQLITE_DBNAME": self.sqlite_path,
                "SQLITE_LOCK_TIMEOUT": "10",
                "APPLICATION_RECORDER_TOPIC": get_topic(SubscribableSQLiteApplicationRecorder),
            }
        env = {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": self.pg_dbname,
            "POSTGRES_HOST": self.pg_host,
            "POSTGRES_PORT": self.pg_port,
            "POSTGRES_USER": self.pg_user,
            "POSTGRES_PASSWORD": self.pg_password,
            # Sends each event in full before waiting for replies (a large event could
            # otherwise hang while holding the table lock): see crm_domain.postgres_recorder.
            "APPLICATION_RECORDER_TOPIC": "crm_domain.postgres_recorder:"
            "FlushingPostgresApplicationRecorder",
        }
        if self.pg_schema:
            env["POSTGRES_SCHEMA"] = self.pg_schema
        env["POSTGRES_CONNECT_TIMEOUT"] = self.pg_connect_timeout
        return env
