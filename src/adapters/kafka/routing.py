"""Which event types go to which topics: a declarative routing table.

Platform teams own their topic names and what each downstream system may see, so routing
is data, not code: a list of routes, each a topic and the event type patterns it takes
(shell-style globs on the unversioned type, e.g. ``crm.account.order_*``). A route can
demand consent for a purpose (see :mod:`adapters.kafka.consent`). The table is built in
code, or loaded from TOML (``tomllib``) or, when PyYAML is installed, YAML.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from enum import StrEnum
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from adapters.kafka.eventtypes import EventType, EventTypeRegistry
from crm_domain.errors import ConfigurationError, problems

TopicName = Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,249}$")]


class WithoutConsent(StrEnum):
    """What a consent-guarded route does with personal data of a customer without consent."""

    STRIP = "strip"  # publish the event with its personal fields removed (``redacted`` lists them)
    DROP = "drop"  # do not publish the event on that route at all


class Route(BaseModel):
    """One topic and the event types it receives."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    topic: TopicName
    types: tuple[str, ...] = Field(min_length=1)
    #: If set, personal data reaches this topic only for customers who granted this purpose.
    consent_purpose: str | None = None
    without_consent: WithoutConsent = WithoutConsent.STRIP
    partitions: int = Field(default=6, ge=1)
    replication_factor: int = Field(default=1, ge=1)
    #: The topic is log-compacted and keyed by aggregate (customer) id: when a customer's
    #: personal data is erased the relay sends it a tombstone (the customer's key, a null
    #: value), so compaction drops every earlier record of that customer.
    compacted: bool = False

    def matches(self, event_type: EventType) -> bool:
        """True if one of the route's patterns matches the event type (versioned or not)."""
        return any(
            fnmatchcase(event_type.name, pattern) or fnmatchcase(event_type.type, pattern)
            for pattern in self.types
        )


class RoutingTable(BaseModel):
    """An ordered list of routes; an event goes to every route that matches it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    routes: tuple[Route, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_route_per_topic(self) -> RoutingTable:
        topics = [r.topic for r in self.routes]
        duplicates = sorted({t for t in topics if topics.count(t) > 1})
        if duplicates:
            raise ValueError(f"topic(s) {duplicates} appear in more than one route; merge them")
        return self

    @property
    def topics(self) -> list[str]:
        """Every topic of the table, in route order."""
        return [r.topic for r in self.routes]

    def routes_for(self, event_type: EventType) -> list[Route]:
        """The routes an event of this type is published on (possibly none)."""
        return [r for r in self.routes if r.matches(event_type)]

    def check_against(self, registry: EventTypeRegistry) -> None:
        """Fail if a pattern matches no known event type (a typo would route nothing)."""
        known = list(registry)
        for route in self.routes:
            for pattern in route.types:
                if not any(
                    fnmatchcase(et.name, pattern) or fnmatchcase(et.type, pattern) for et in known
                ):
                    raise ConfigurationError(
                        f"route to {route.topic!r}: pattern {pattern!r} matches no event type; "
                        f"known types look like {known[0].type!r}"
                    )

    # ----- loading ------------------------------------------------------------------
    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any], origin: str = "routing table") -> RoutingTable:
        """A table from parsed TOML/YAML; ``ConfigurationError`` naming each problem."""
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            raise ConfigurationError(f"invalid {origin}: {problems(exc)}") from exc

    @classmethod
    def load(cls, path: str | Path) -> RoutingTable:
        """Load a routing table from a ``.toml``, ``.yaml`` or ``.yml`` file."""
        path = Path(path)
        try:
            text = path.read_bytes()
        except OSError as exc:
            raise ConfigurationError(f"cannot read routing table {path}: {exc}") from exc
        suffix = path.suffix.lower()
        if suffix == ".toml":
            try:
                raw: Any = tomllib.loads(text.decode("utf-8"))
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
                raise ConfigurationError(f"routing table {path} is not valid TOML: {exc}") from exc
        elif suffix in (".yaml", ".yml"):
            raw = _load_yaml(text, path)
        else:
            raise ConfigurationError(
                f"routing table {path}: unknown file type {suffix!r} (use .toml, .yaml or .yml)"
            )
        if not isinstance(raw, Mapping):
            raise ConfigurationError(f"routing table {path} must be a mapping with 'routes'")
        return cls.from_mapping(raw, origin=f"routing table {path}")


def _load_yaml(text: bytes, path: Path) -> Any:
    try:
        import yaml  # type: ignore[import-untyped]
    except ImportError as exc:
        raise ConfigurationError(
            f"routing table {path} is YAML but PyYAML is not installed (pip install pyyaml), "
            "or use TOML"
        ) from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"routing table {path} is not valid YAML: {exc}") from exc


# ----- the default table -------------------------------------------------------------
#: What ERP needs: accounts and their contact persons, orders (with cancellations),
#: invoices, payments, credit notes and refunds, credit limits, and won opportunities (a
#: forecastable order).
ERP_TYPES: tuple[str, ...] = (
    "crm.account.opened",
    "crm.account.classification_changed",
    "crm.account.closed",
    "crm.account.key_account_*",
    "crm.account.manager_assigned",
    "crm.account.contact_*",
    "crm.account.order_*",
    "crm.account.invoice_*",
    "crm.account.payment_*",
    "crm.account.credit_*",
    "crm.account.refund_*",
    "crm.account.opportunity_won",
)

#: What marketing needs: lifecycle stage, segment, consent, the contact history, and seminar
#: registrations (so the marketing system sends, and sees, each confirmation).
MARKETING_TYPES: tuple[str, ...] = (
    "crm.customer.lifecycle_stage_changed",
    "crm.customer.segment_assigned",
    "crm.customer.consent_*",
    "crm.customer.contact_logged",
    "crm.customer.seminar_*",
    "crm.customer.personal_data_erased",
)

DEFAULT_ERP_TOPIC = "crm.erp.events"
DEFAULT_MARKETING_TOPIC = "crm.marketing.events"
DEFAULT_MARKETING_PURPOSE = "marketing"


def default_routing(
    erp_topic: str = DEFAULT_ERP_TOPIC,
    marketing_topic: str = DEFAULT_MARKETING_TOPIC,
    *,
    marketing_purpose: str = DEFAULT_MARKETING_PURPOSE,
    without_consent: WithoutConsent = WithoutConsent.STRIP,
    partitions: int = 6,
    replication_factor: int = 1,
) -> RoutingTable:
    """The routing the issue asks for, with the topic names a deployment chooses."""
    return RoutingTable(
        routes=(
            Route(
                topic=erp_topic,
                types=ERP_TYPES,
                partitions=partitions,
                replication_factor=replication_factor,
            ),
            Route(
                topic=marketing_topic,
                types=MARKETING_TYPES,
                consent_purpose=marketing_purpose,
                without_consent=without_consent,
                partitions=partitions,
                replication_factor=replication_factor,
            ),
        )
    )
