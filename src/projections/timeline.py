"""Activity timeline: every interaction and change per customer and per account.

The whole communication history in one place, newest first, so nothing a rep learned
leaves with the rep. Account activity also appears on the timeline of the account's
customer.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

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
from projections.events import ACCOUNT_EVENTS, BOOKKEEPING_EVENTS, CUSTOMER_EVENTS, event_name
from projections.query import Answer, Page, paged
from projections.readmodel import ReadModel, handles

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

#: Fields every event has; left out of generic summaries.
_BASE_FIELDS = frozenset(
    {
        "originator_id",
        "originator_version",
        "timestamp",
        "metadata",
        "event_id",
        "occurred_at",
        "originator_topic",
    }
)
_SUMMARY_LIMIT = 1000


def _iso(moment: datetime) -> str:
    """Sortable text of a UTC time: same order on every database, to the microsecond."""
    if moment.tzinfo is None:
        raise InvalidCommandError(f"naive datetime {moment!r}: give a time zone")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def describe(event: Any) -> str:
    """One line a person reads on the timeline."""
    if isinstance(event, Customer.ContactLogged):
        text = f"{event.direction.value} {event.channel.value}: {event.summary}"
        if event.commitments:
            text += " | promised: " + "; ".join(
                f"{c.description} ({c.owner})" for c in event.commitments
            )
        if event.next_step:
            text += f" | next: {event.next_step}"
        return text[:_SUMMARY_LIMIT]
    if isinstance(event, Customer.Registered):
        return f"registered {event.kind.value} {event.name!r} as {event.code}"
    if isinstance(event, Customer.TicketOpened):
        return f"{event.priority.value} {event.kind.value} opened: {event.subject}"
    if isinstance(event, Account.OpportunityStaged):
        return f"opportunity {event.opportunity_id} moved {event.from_stage} -> {event.to_stage}"
    fields = event.model_dump(mode="json", exclude=set(_BASE_FIELDS))
    parts = [f"{k}={v}" for k, v in fields.items() if v not in (None, "", [], {})]
    return (_words(event_name(event)) + (": " + ", ".join(parts) if parts else ""))[:_SUMMARY_LIMIT]


def _words(name: str) -> str:
    out = "".join(f" {ch.lower()}" if ch.isupper() else ch for ch in name).strip()
    return out


class ActivityTimeline(ReadModel):
    name = "timeline"
    description = "every interaction and change per customer and account, newest first"
    tables = (entries, accounts)
    ignores = BOOKKEEPING_EVENTS

    def __init__(self, session: Any) -> None:
        super().__init__(session)
        self.accounts = self.cache(accounts)
        self._new: list[dict[str, Any]] = []

    def _add(
        self, e: Any, position: int, kind: str, customer_id: UUID, account_id: UUID | None
    ) -> None:
        self._new.append(
            {
                "position": position,
                "subject_kind": kind,
                "customer_id": customer_id,
                "account_id": account_id,
                "occurred_at": _iso(e.occurred_at),
                "recorded_at": _iso(e.timestamp),
                "event_type": event_name(e),
                "summary": describe(e),
                "actor": e.metadata.get("actor", "") or "",
                "channel": getattr(getattr(e, "channel", None), "value", None),
            }
        )

    @handles(*CUSTOMER_EVENTS)
    def customer_event(self, e: Any, position: int) -> None:
        self._add(e, position, "customer", e.originator_id, getattr(e, "account_id", None))

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

    def finish(self) -> None:
        super().finish()
        if self._new:
            self.session.execute(entries.insert(), self._new)
            self._new = []


# -- queries ---------------------------------------------------------------------------


class TimelineEntry(Answer):
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
