"""Marketing never receives a customer's personal data without consent for that purpose.

How the relay knows consent: the event log is the truth, and the relay reads it in order.
:class:`ConsentLedger` folds ``ConsentGranted``/``ConsentWithdrawn`` into "customer -> purpose
-> channels" as the relay passes them (with :func:`crm_domain.consent.apply`, the fold the
``Customer`` aggregate and the customer 360 read model use), so every event is judged by the
consent in force *at that event's position in the log* (not by today's state, which would leak
an event logged before a withdrawal, or hide one logged after a grant). Nothing extra is
stored: on start the ledger is rebuilt from the consent events up to the relay's tracked
position, so it can never disagree with the log. Reading the ``Customer`` aggregate instead
would cost a repository read per event and give the state at read time, not at the event.

:class:`ConsentRule` decides per route and event: publish whole, publish with the personal
fields removed (``strip``; the CloudEvent's ``redacted`` extension names them), or drop.
Which fields are personal is declared on the event classes
(:func:`crm_domain.personal.personal_data`); an event type routed to a guarded topic whose
class declares nothing is treated as wholly personal and dropped without consent, so a new
event type cannot leak by default.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsourcing.application import Application

from adapters.kafka.eventtypes import EventType, EventTypeRegistry
from adapters.kafka.routing import Route, WithoutConsent
from crm_domain import consent
from crm_domain.eventmodel import DomainEvent
from crm_domain.personal import personal_fields
from crm_domain.values import Channel

CONSENT_GRANTED = "crm.customer.consent_granted"
CONSENT_WITHDRAWN = "crm.customer.consent_withdrawn"


class ConsentLedger:
    """Consent per customer, purpose and channel, as of the last event applied."""

    def __init__(self) -> None:
        self._consents: dict[UUID, consent.Consents] = {}

    def apply(self, event: DomainEvent) -> None:
        """Fold one event in; events other than consent changes are ignored."""
        if not consent.is_consent_change(event):
            return
        customer_id = event.originator_id
        state = consent.apply(self._consents.get(customer_id, {}), event)
        if state:
            self._consents[customer_id] = state
        else:
            self._consents.pop(customer_id, None)

    def has_consent(
        self, customer_id: UUID, purpose: str, channel: Channel | str | None = None
    ) -> bool:
        """True if the customer consents to ``purpose`` (on ``channel``, or on any channel)."""
        consents = self._consents.get(customer_id, {})
        if channel is None:  # what consent.allows answers, without a Channel per call
            return bool(consents.get(purpose))
        return consent.allows(consents, purpose, channel)

    def consents(self, customer_id: UUID) -> consent.Consents:
        """The customer's consents as of the last event applied (purpose -> channels)."""
        return {p: list(c) for p, c in self._consents.get(customer_id, {}).items()}

    def __len__(self) -> int:
        """How many customers consent to anything."""
        return len(self._consents)

    @classmethod
    def rebuild(
        cls,
        app: Application[UUID],
        registry: EventTypeRegistry,
        upto: int | None,
        page_size: int = 1000,
    ) -> ConsentLedger:
        """The ledger as of notification ``upto`` (inclusive), from the stored consent events."""
        ledger = cls()
        if not upto:
            return ledger
        for event in _consent_events(app, registry, upto, page_size):
            ledger.apply(event)
        return ledger


def _consent_events(
    app: Application[UUID], registry: EventTypeRegistry, upto: int, page_size: int
) -> Iterator[DomainEvent]:
    topics = [et.topic for et in registry if et.name in (CONSENT_GRANTED, CONSENT_WITHDRAWN)]
    start = 0
    while True:
        page = app.recorder.select_notifications(
            start=start, limit=page_size, stop=upto, topics=topics, inclusive_of_start=False
        )
        for notification in page:
            event = app.mapper.to_domain_event(notification)
            if isinstance(event, DomainEvent):
                yield event
        if len(page) < page_size:
            return
        start = page[-1].id


@dataclass(frozen=True)
class Decision:
    """What to do with one event on one route."""

    publish: bool
    redact: tuple[str, ...] = ()
    reason: str = ""


PUBLISH = Decision(publish=True)


class ConsentRule:
    """Applies a route's consent requirement to an event, using the ledger and the personal
    fields the event's class declares."""

    def __init__(self) -> None:
        # Per event class: its personal fields, sorted (None: it declares nothing). Classes
        # declare them once, when they are defined, so this is looked up once per class.
        self._personal: dict[type[Any], tuple[str, ...] | None] = {}
        # The decisions that depend only on (purpose, what to do without consent, the
        # personal fields present): immutable, so made once and handed out again.
        self._decisions: dict[tuple[str, WithoutConsent, tuple[str, ...]], Decision] = {}

    def decide(
        self, route: Route, event: DomainEvent, event_type: EventType, ledger: ConsentLedger
    ) -> Decision:
        """Whether (and how redacted) ``event`` goes out on ``route``."""
        return self._decide(route, event.originator_id, event_type, ledger, event, _has_value)

    def decide_stored(
        self,
        route: Route,
        aggregate_id: UUID,
        event_type: EventType,
        ledger: ConsentLedger,
        state: Mapping[str, Any],
    ) -> Decision:
        """:meth:`decide` for an event given as its stored JSON state (the relay's fast path).

        The same rule, reading the personal fields from the JSON values instead of the model's
        attributes (their emptiness is the same: ``None``, ``""``, ``[]`` or ``{}``).
        """
        if route.consent_purpose is None:
            return PUBLISH
        return self._decide(route, aggregate_id, event_type, ledger, state, _has_item)

    def _decide(
        self,
        route: Route,
        aggregate_id: UUID,
        event_type: EventType,
        ledger: ConsentLedger,
        source: Any,
        has_value: Callable[[Any, str], bool],
    ) -> Decision:
        purpose = route.consent_purpose
        if purpose is None:
            return PUBLISH
        if event_type.aggregate == "customer" and ledger.has_consent(aggregate_id, purpose):
            return PUBLISH
        cls = event_type.cls
        try:
            personal = self._personal[cls]
        except KeyError:
            declared = personal_fields(cls)
            personal = self._personal[cls] = None if declared is None else tuple(sorted(declared))
        if personal is None:
            return Decision(
                publish=False,
                reason=f"{event_type.name} has no personal-data declaration; "
                f"not published to {route.topic} without {purpose!r} consent",
            )
        present = tuple(f for f in personal if has_value(source, f))  # sorted, as personal
        if not present:
            return PUBLISH
        key = (purpose, route.without_consent, present)
        decision = self._decisions.get(key)
        if decision is None:
            if route.without_consent is WithoutConsent.DROP:
                decision = Decision(
                    publish=False, reason=f"no {purpose!r} consent: personal data in {present}"
                )
            else:
                decision = Decision(publish=True, redact=present, reason=f"no {purpose!r} consent")
            self._decisions[key] = decision
        return decision


_EMPTY: tuple[object, ...] = (None, "", [], {}, ())


def _has_value(event: DomainEvent, field: str) -> bool:
    return getattr(event, field, None) not in _EMPTY


def _has_item(state: Mapping[str, Any], field: str) -> bool:
    return state.get(field) not in _EMPTY
