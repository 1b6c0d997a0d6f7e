"""Activity timeline: every interaction and change per customer and per account.

The whole communication history in one place, newest first, so nothing a rep learned
leaves with the rep. Account activity also appears on the timeline of the account's
customer.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any
from uuid import UUID

from eventsourcing.utils import get_topic
from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    Uuid,
    or_,
    select,
)

from crm_domain.account import Account
from crm_domain.customer import Customer
from crm_domain.errors import InvalidCommandError
from crm_domain.eventmodel import ENVELOPE_FIELDS
from crm_domain.personal import payload_personal_fields
from projections.erasure import REDACTED, erase_rows
from projections.events import ACCOUNT_EVENTS, BOOKKEEPING_EVENTS, CUSTOMER_EVENTS
from projections.lazyevent import json_state
from projections.query import Answer, Page, paged
from projections.readmodel import LoggedEvent, ReadModel, handles
from projections.rows import execute_many

metadata = MetaData()

entries = Table(
    "timeline_entries",
    metadata,
    Column("position", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True),
    Column("subject_kind", String(10), nullable=False),
    Column("customer_id", Uuid, nullable=False),
    Column("account_id", Uuid),
    Column("occurred_at", String(32), nullable=False),
    Column("recorded_at", String(32), nullable=False),
    Column("event_type", String(60), nullable=False),
    Column("summary", Text, nullable=False),
    Column("actor", String(100), nullable=False),
    Column("channel", String(20)),
)
Index("timeline_customer_idx", entries.c.customer_id, entries.c.occurred_at, entries.c.position)
Index("timeline_account_idx", entries.c.account_id, entries.c.occurred_at, entries.c.position)

accounts = Table(
    "timeline_accounts",
    metadata,
    Column("account_id", Uuid, primary_key=True),
    Column("customer_id", Uuid, nullable=False),
)

_SUMMARY_LIMIT = 1000
#: Customer events whose summary shows personal data (dropped when the customer is erased).
_PERSONAL_EVENTS = tuple(c for c in CUSTOMER_EVENTS if payload_personal_fields(c, ENVELOPE_FIELDS))
_ACCOUNT_TOPICS = frozenset(get_topic(c) for c in ACCOUNT_EVENTS)


#: JSON types whose empty value a summary leaves out.
_EMPTY_SHOWN = (str, list, dict)


def _iso(moment: datetime) -> str:
    """Sortable text of a UTC time: same order on every database, to the microsecond."""
    if moment.tzinfo is None:
        raise InvalidCommandError(f"naive datetime {moment!r}: give a time zone")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _iso_text(stored: str) -> str:
    """:func:`_iso` of a time as stored in an event's JSON (pydantic writes UTC times with
    microseconds in exactly that form, so most need no parsing)."""
    if len(stored) == 27 and stored[26] == "Z" and stored[19] == "." and stored[10] == "T":
        return stored
    return _iso(datetime.fromisoformat(stored))


def describe(event: Any) -> str:
    """One line a person reads on the timeline."""
    return _describe(event.__class__, json_state(event))


def _describe(event_class: type[Any], state: dict[str, Any]) -> str:
    """:func:`describe` from the event's JSON state (what is stored), without decoding it."""
    if event_class is Customer.ContactLogged:
        text = f"{state['direction']} {state['channel']}: {state['summary']}"
        if state["commitments"]:
            text += " | promised: " + "; ".join(
                f"{c['description']} ({c['owner']})" for c in state["commitments"]
            )
        if state["next_step"]:
            text += f" | next: {state['next_step']}"
        return text[:_SUMMARY_LIMIT]
    if event_class is Customer.Registered:
        return f"registered {state['kind']} {state['name']!r} as {state['code']}"
    if event_class is Customer.TicketOpened:
        return f"{state['priority']} {state['kind']} opened: {state['subject']}"
    if event_class is Account.OpportunityStaged:
        return (
            f"opportunity {state['opportunity_id']} moved "
            f"{state['from_stage']} -> {state['to_stage']}"
        )
    # Every field but the envelope, leaving out None, "" and empty lists and objects (a
    # falsy value of another type, 0 or false, is shown).
    parts = [
        f"{k}={v}"
        for k, v in state.items()
        if (v or (v is not None and type(v) not in _EMPTY_SHOWN)) and k not in ENVELOPE_FIELDS
    ]
    return (_words(event_class.__name__) + (": " + ", ".join(parts) if parts else ""))[
        :_SUMMARY_LIMIT
    ]


@cache
def _words(name: str) -> str:
    out = "".join(f" {ch.lower()}" if ch.isupper() else ch for ch in name).strip()
    return out


class ActivityTimeline(ReadModel):
    """The activity timeline read model: one line per event, per customer and account."""

    name = "timeline"
    description = "every interaction and change per customer and account, newest first"
    rebuild_weight = 2.5
    tables = (entries, accounts)
    ignores = BOOKKEEPING_EVENTS

    def __init__(self, session: Any) -> None:
        super().__init__(session)
        self.accounts = self.cache(accounts)
        self._new: list[dict[str, Any]] = []

    def prepare(self, events: Sequence[LoggedEvent]) -> None:
        self.accounts.prefetch(
            e.originator_id for e in events if e.topic in _ACCOUNT_TOPICS and e.originator_id
        )

    def _add(
        self, e: Any, position: int, kind: str, customer_id: UUID, account_id: UUID | None
    ) -> None:
        # Everything comes from the stored JSON: the timeline shows what was recorded.
        state = json_state(e)
        event_class = e.__class__
        if kind == "customer":  # a contact may be about one of the customer's accounts
            about = state.get("account_id")
            account_id = UUID(about) if about else None
        channel = state.get("channel")
        self._new.append(
            {
                "position": position,
                "subject_kind": kind,
                "customer_id": customer_id,
                "account_id": account_id,
                "occurred_at": _iso_text(state["occurred_at"]),
                "recorded_at": _iso_text(state["timestamp"]),
                "event_type": event_class.__name__,
                "summary": _describe(event_class, state),
                "actor": state["metadata"].get("actor", "") or "",
                "channel": channel if isinstance(channel, str) else None,
            }
        )

    @handles(*CUSTOMER_EVENTS)
    def customer_event(self, e: Any, position: int) -> None:
        if isinstance(e, Customer.PersonalDataErased):
            self._erase(e.originator_id)
        self._add(e, position, "customer", e.originator_id, None)

    @handles(*ACCOUNT_EVENTS)
    def account_event(self, e: Any, position: int) -> None:
        if isinstance(e, Account.Opened):
            self.accounts.put(
                new=True, row={"account_id": e.originator_id, "customer_id": e.customer_id}
            )
        account = self.accounts.get(e.originator_id)
        if account is None:
            raise LookupError(f"no account {e.originator_id}")
        self._add(e, position, "account", account["customer_id"], e.originator_id)

    def _erase(self, customer_id: UUID) -> None:
        """Drop the summaries of an erased customer's events that held personal data (the
        event type, time and actor stay)."""
        for event_class in _PERSONAL_EVENTS:
            erase_rows(
                self,
                entries,
                customer_id,
                {"summary": f"{_words(event_class.__name__)}: {REDACTED}"},
                entries.c.subject_kind == "customer",
                entries.c.event_type == event_class.__name__,
            )

    def finish(self) -> None:
        super().finish()
        if self._new:
            execute_many(self.session, entries, "insert", self._new)
            self._new = []


# -- queries ---------------------------------------------------------------------------


class TimelineEntry(Answer):
    """One line of a timeline: when, which event, by whom, and a summary."""

    position: int
    subject_kind: str
    customer_id: UUID
    account_id: UUID | None
    occurred_at: datetime
    recorded_at: datetime
    event_type: str
    summary: str
    actor: str
    channel: str | None

    @classmethod
    def from_row(cls, row: Any) -> TimelineEntry:
        """The answer for one ``timeline`` row."""
        data = dict(row)
        for key in ("occurred_at", "recorded_at"):
            data[key] = datetime.fromisoformat(data[key].replace("Z", "+00:00"))
        return cls.model_validate(data)


class TimelineQueries:
    """A customer's or an account's history, newest first, a page at a time."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def for_customer(
        self,
        customer_id: UUID,
        *,
        include_accounts: bool = True,
        event_types: Sequence[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        page: int = 1,
        page_size: int = 50,
    ) -> Page[TimelineEntry]:
        """What happened with a customer (and, by default, their accounts)."""
        cond = entries.c.customer_id == customer_id
        if not include_accounts:
            cond = cond & (entries.c.subject_kind == "customer")
        return self._page(cond, event_types, since, until, page, page_size)

    def for_account(
        self,
        account_id: UUID,
        *,
        event_types: Sequence[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        page: int = 1,
        page_size: int = 50,
    ) -> Page[TimelineEntry]:
        """What happened on an account, including contacts logged about it."""
        return self._page(
            entries.c.account_id == account_id, event_types, since, until, page, page_size
        )

    def _page(
        self,
        cond: Any,
        event_types: Sequence[str] | None,
        since: datetime | None,
        until: datetime | None,
        page: int,
        page_size: int,
    ) -> Page[TimelineEntry]:
        stmt = select(entries).where(cond)
        if event_types:
            stmt = stmt.where(or_(*(entries.c.event_type == t for t in event_types)))
        if since is not None:
            stmt = stmt.where(entries.c.occurred_at >= _iso(since))
        if until is not None:
            stmt = stmt.where(entries.c.occurred_at < _iso(until))
        stmt = stmt.order_by(entries.c.occurred_at.desc(), entries.c.position.desc())
        return paged(self.engine, stmt, TimelineEntry.from_row, page, page_size)
