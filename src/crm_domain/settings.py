"""One settings object for the whole library: store, office calendar, limits and Kafka.

:class:`CRMSettings` is read in one place, with the usual precedence (highest first):

1. arguments given in code (``CRMSettings(store_url=...)``, ``CRM(store=...)``) or on
   the command line (``crm ... --store URL``);
2. the environment: ``CRM_STORE_URL``, ``CRM_SNAPSHOT_INTERVAL``, ``CRM_MAX_EVENT_BYTES``,
   ``CRM_CALENDAR__TIMEZONE``, ``CRM_KAFKA__BOOTSTRAP``, ``CRM_KAFKA__SASL_PASSWORD``...
   (nested settings join their names with a double underscore);
3. a TOML file: the path in ``CRM_CONFIG``, else ``./crm.toml`` if it exists (see
   ``docs/configuration.md``);
4. the defaults below: an SQLite file ``crm.sqlite`` in the working directory.

``CRM(...)``, every ``crm`` command and the Kafka adapters take their settings from here,
so one environment wires a whole deployment.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from crm_domain.credit import DEFAULT_ERP_SOURCES
from crm_domain.errors import ConfigurationError
from crm_domain.infrastructure.storage import StoreURL
from crm_domain.lifecycle import LifecyclePolicySettings
from crm_domain.quoting import QuoteSettings
from crm_domain.sla import CalendarSettings

#: The environment variable naming a TOML settings file.
CONFIG_ENV = "CRM_CONFIG"
#: The settings file read when ``CRM_CONFIG`` is not set, if it exists.
DEFAULT_CONFIG_FILE = Path("crm.toml")
#: The highest ``max_event_bytes`` a deployment may set (16 MiB).
MAX_EVENT_BYTES_CEILING = 16 * 1024 * 1024
#: The store used when nothing names one: an SQLite file in the working directory.
DEFAULT_STORE_URL = "sqlite:///crm.sqlite"
#: A source system's name, as the command context holds it.
ErpSource = Annotated[str, Field(min_length=1, max_length=100)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ErasureSettings(_Section):
    """Personal data encrypted per customer, erasable by destroying the key (docs/audit.md)."""

    #: Encrypt customers' personal fields with their own keys (off: stored in clear, and
    #: ``crm forget`` can only redact the aggregate and the read models).
    encrypt: bool = True
    #: Seconds a process keeps a customer's key in memory (the write path's cost).
    cache_seconds: float = Field(default=60.0, ge=0)


class KafkaSettings(_Section):
    """How the relay and the consumer reach the brokers, including security."""

    #: ``host:port[,host:port...]``; the Kafka commands need it.
    bootstrap: str | None = None
    client_id: str | None = None
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    ssl_check_hostname: bool = True
    #: A TOML or JSON routing file replacing the default event-type-to-topic routing.
    routing_file: Path | None = None
    #: Topic names, keyed by the role they play (see ``adapters.kafka.topics``).
    topics: dict[str, str] = Field(default_factory=dict)

    def client_options(self) -> dict[str, Any]:
        """kafka-python connection keyword arguments (security and client id) for these settings."""
        options: dict[str, Any] = {"security_protocol": self.security_protocol}
        if self.client_id:
            options["client_id"] = self.client_id
        if self.sasl_mechanism:
            options["sasl_mechanism"] = self.sasl_mechanism
        if self.sasl_username is not None:
            options["sasl_plain_username"] = self.sasl_username
        if self.sasl_password is not None:
            options["sasl_plain_password"] = self.sasl_password.get_secret_value()
        if self.ssl_cafile:
            options["ssl_cafile"] = str(self.ssl_cafile)
        if self.ssl_certfile:
            options["ssl_certfile"] = str(self.ssl_certfile)
        if self.ssl_keyfile:
            options["ssl_keyfile"] = str(self.ssl_keyfile)
        if self.security_protocol in ("SSL", "SASL_SSL"):
            options["ssl_check_hostname"] = self.ssl_check_hostname
        return options


class AccessSettings(_Section):
    """Least privilege: the access policy in force (see :mod:`crm_domain.access`)."""

    #: A TOML file of grants (``docs/access-policy.toml`` shows one); none: everyone may
    #: run every command (``CRM(policy=...)`` sets one in code).
    policy_file: Path | None = None

    @field_validator("policy_file")
    @classmethod
    def _is_file(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"no access policy file {value}")
        return value


class CRMSettings(BaseSettings):
    """Everything a deployment configures, validated once (see the module docstring)."""

    model_config = SettingsConfigDict(
        env_prefix="CRM_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        validate_default=True,
    )

    #: ``memory://``, ``sqlite:///FILE`` or ``postgresql://user@host:port/db``.
    store_url: str = DEFAULT_STORE_URL
    #: Take a snapshot of an aggregate every N events (0 turns snapshots off).
    snapshot_interval: int = Field(default=50, ge=0)
    #: The largest event a command may store, in bytes of its JSON (checked before saving;
    #: a larger one is an InvalidCommandError and nothing is stored). The default stays
    #: under Kafka's default message size (1 MiB) with room for the CloudEvents envelope;
    #: at most 16 MiB, so one write holds the event store's write lock only briefly.
    #: Every bound is listed in docs/limits.md.
    max_event_bytes: int = Field(default=1_000_000, gt=0, le=MAX_EVENT_BYTES_CEILING)
    #: ``source_system`` recorded on events when the caller's context names none.
    source_system: str = Field(default="crm-core", min_length=1, max_length=100)
    #: The office's calendar for service levels (crm_domain.sla.CalendarSettings).
    calendar: CalendarSettings = Field(default_factory=CalendarSettings)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    access: AccessSettings = Field(default_factory=AccessSettings)
    lifecycle: LifecyclePolicySettings = Field(default_factory=LifecyclePolicySettings)
    quotes: QuoteSettings = Field(default_factory=QuoteSettings)
    #: Source systems that count as ERP: only they confirm or reject orders (see
    #: ``crm_domain.credit``). ``CRM_ERP_SOURCES='["erp", "sap-prod"]'``.
    erp_sources: list[ErpSource] = Field(
        default_factory=lambda: list(DEFAULT_ERP_SOURCES), min_length=1
    )
    erasure: ErasureSettings = Field(default_factory=ErasureSettings)

    @field_validator("store_url")
    @classmethod
    def _parseable_store(cls, value: str) -> str:
        StoreURL.parse(value)  # ConfigurationError names what is wrong
        return value

    @property
    def erp_source(self) -> str:
        """The source system ERP's commands run under (the first of ``erp_sources``): the
        Kafka consumer and the ERP history imports use it."""
        return self.erp_sources[0]

    @property
    def store(self) -> StoreURL:
        """The parsed store URL."""
        return StoreURL.parse(self.store_url)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config = config_file()
        if config is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config))
        return tuple(sources)

    @classmethod
    def load(cls, **overrides: Any) -> CRMSettings:
        """Settings from the environment and the TOML file, with ``overrides`` on top.

        Overrides that are ``None`` are ignored, so a command line can pass its options
        as they are. Any problem is a :class:`~crm_domain.errors.ConfigurationError`
        naming the setting and where it came from.
        """
        given = {k: v for k, v in overrides.items() if v is not None}
        try:
            return cls(**given)
        except ConfigurationError:
            raise
        except ValidationError as exc:
            raise settings_error(exc) from None
        except (OSError, ValueError) as exc:  # an unreadable or malformed TOML file
            raise ConfigurationError(f"cannot read settings file {config_file()}: {exc}") from None


def config_file() -> Path | None:
    """The TOML settings file in force: ``$CRM_CONFIG``, else ``./crm.toml`` if present."""
    named = os.environ.get(CONFIG_ENV)
    if named:
        path = Path(named)
        if not path.is_file():
            raise ConfigurationError(f"{CONFIG_ENV} names {named!r}, which is not a file")
        return path
    return DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.is_file() else None


def settings_error(exc: ValidationError) -> ConfigurationError:
    """A :class:`ConfigurationError` naming each bad setting as the environment spells it."""
    problems = []
    for err in exc.errors(include_url=False):
        name = "__".join(str(p) for p in err["loc"]) or "settings"
        problems.append(f"{name} (CRM_{name.upper()}): {err['msg']}")
    return ConfigurationError("invalid settings: " + "; ".join(problems))
