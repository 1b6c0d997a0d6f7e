"""The options every ``crm`` command shares: one name, one help text, one way to read them.

Settings are never read here: each option is passed to
:meth:`crm_domain.settings.CRMSettings.load` (see :func:`load_settings`), where the
environment (``CRM_*``) and ``crm.toml`` fill in what the command line leaves out.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from crm_domain.infrastructure.storage import StoreURL
from crm_domain.settings import CRMSettings

if TYPE_CHECKING:
    from crm_domain.application import CRM

STORE_HELP = (
    "Event store URL: sqlite:///FILE, postgresql://USER@HOST/DB or memory:// "
    "[default: $CRM_STORE_URL, else crm.toml, else sqlite:///crm.sqlite]"
)
VIEWS_HELP = "Database for the read models, as a store URL [default: the store's database]"

Store = Annotated[
    str | None, typer.Option("--store", metavar="URL", help=STORE_HELP, show_default=False)
]
Views = Annotated[
    str | None, typer.Option("--views", metavar="URL", help=VIEWS_HELP, show_default=False)
]


class OutputFormat(StrEnum):
    """How a report is printed: tables for people, JSON or CSV for other programs."""

    TABLE = "table"
    JSON = "json"
    CSV = "csv"


Format = Annotated[
    OutputFormat,
    typer.Option(
        "--format", "-f", help="table for people; json or csv for other programs", metavar="FORMAT"
    ),
]

# ----- Kafka: connection and security (CRMSettings.kafka) --------------------------------
KAFKA = "Kafka connection"

Bootstrap = Annotated[
    str | None,
    typer.Option(
        "--bootstrap",
        metavar="HOST:PORT",
        help="Kafka bootstrap servers, comma-separated [default: $CRM_KAFKA__BOOTSTRAP]",
        show_default=False,
        rich_help_panel=KAFKA,
    ),
]
SecurityProtocol = Annotated[
    str | None,
    typer.Option(
        "--security-protocol",
        metavar="PROTOCOL",
        help="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL [default: $CRM_KAFKA__SECURITY_PROTOCOL, "
        "else PLAINTEXT]",
        show_default=False,
        rich_help_panel=KAFKA,
    ),
]
SaslMechanism = Annotated[
    str | None,
    typer.Option(
        "--sasl-mechanism",
        metavar="MECHANISM",
        help="PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER [default: "
        "$CRM_KAFKA__SASL_MECHANISM]",
        show_default=False,
        rich_help_panel=KAFKA,
    ),
]
SaslUsername = Annotated[
    str | None,
    typer.Option(
        "--sasl-username",
        metavar="NAME",
        help="SASL user [default: $CRM_KAFKA__SASL_USERNAME]",
        show_default=False,
        rich_help_panel=KAFKA,
    ),
]
SaslPasswordFile = Annotated[
    Path | None,
    typer.Option(
        "--sasl-password-file",
        metavar="FILE",
        help="read the SASL password from FILE (never give it on the command line) "
        "[default: $CRM_KAFKA__SASL_PASSWORD]",
        show_default=False,
        exists=True,
        dir_okay=False,
        readable=True,
        rich_help_panel=KAFKA,
    ),
]
SslCafile = Annotated[
    Path | None,
    typer.Option(
        "--ssl-cafile",
        metavar="FILE",
        help="CA certificates to trust (PEM) [default: $CRM_KAFKA__SSL_CAFILE]",
        show_default=False,
        exists=True,
        dir_okay=False,
        rich_help_panel=KAFKA,
    ),
]
SslCertfile = Annotated[
    Path | None,
    typer.Option(
        "--ssl-certfile",
        metavar="FILE",
        help="client certificate (PEM) [default: $CRM_KAFKA__SSL_CERTFILE]",
        show_default=False,
        exists=True,
        dir_okay=False,
        rich_help_panel=KAFKA,
    ),
]
SslKeyfile = Annotated[
    Path | None,
    typer.Option(
        "--ssl-keyfile",
        metavar="FILE",
        help="client key (PEM) [default: $CRM_KAFKA__SSL_KEYFILE]",
        show_default=False,
        exists=True,
        dir_okay=False,
        rich_help_panel=KAFKA,
    ),
]
ClientId = Annotated[
    str | None,
    typer.Option(
        "--client-id",
        metavar="ID",
        help="Kafka client id [default: $CRM_KAFKA__CLIENT_ID]",
        show_default=False,
        rich_help_panel=KAFKA,
    ),
]


def load_settings(store: str | None = None, **kafka: Any) -> CRMSettings:
    """The effective settings: these options over the environment over ``crm.toml``.

    A ``--store`` URL is parsed first, so its error names the URL as typed rather than
    an environment variable.
    """
    if store is not None:
        StoreURL.parse(store)
    overrides: dict[str, Any] = {"store_url": store}
    given = {k: v for k, v in kafka.items() if v is not None}
    if given:
        overrides["kafka"] = given
    return CRMSettings.load(**overrides)


@contextmanager
def existing_crm(store: str | None) -> Iterator[CRM]:
    """The CRM on the store ``--store`` (or the settings) names, closed afterwards. The store
    must exist: a command that works on what is there refuses a mistyped path
    (:class:`~crm_domain.errors.StoreNotFoundError`) instead of creating an empty store."""
    from crm_domain.application import CRM

    settings = load_settings(store)
    settings.store.check(must_exist=True)
    crm = CRM(settings=settings)
    try:
        yield crm
    finally:
        crm.close()


def read_secret(path: Path | None) -> str | None:
    """A secret from a file (first line, without the newline), so it never shows in ``ps``."""
    if path is None:
        return None
    return path.read_text(encoding="utf-8").splitlines()[0] if path.stat().st_size else ""
