"""Each reported way to store what a store or read model cannot hold, refused with a typed
error before anything is written (docs/limits.md lists every bound)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from eventsourcing.persistence import StoredEvent

from conftest import Rejects
from crm_domain import CRM
from crm_domain.customer import Customer
from crm_domain.errors import ConfigurationError, InvalidCommandError
from crm_domain.settings import CRMSettings
from crm_domain.sla import DEFAULT_SLA, BusinessCalendar
from crm_domain.values import Priority, TicketKind


def customer(app: CRM) -> Any:
    return app.register_customer(kind="enterprise", name="Acme", code="ACME")


def line(**extra: Any) -> dict[str, Any]:
    return {"sku": "S-1", "quantity": 1, "unit_price": {"amount": "10", "currency": "EUR"}} | extra


def test_nul_in_a_name_is_refused(app: CRM, rejects: Rejects) -> None:
    # Was stored, then fatal to every read model on PostgreSQL (text takes no NUL).
    rejects(InvalidCommandError, app.register_customer, kind="individual", name="Li\x00Wei",
            code="LI", match=r"name.*NUL")  # fmt: skip
    cid = customer(app)
    rejects(InvalidCommandError, app.log_contact, cid, channel="phone", direction="inbound",
            summary="called\x00", logged_by="li", match=r"summary.*NUL")  # fmt: skip
    rejects(InvalidCommandError, app.grant_consent, cid, purpose="news\x00", channel="email",
            match=r"purpose.*NUL")  # fmt: skip


def test_nul_in_the_actor_is_refused(app: CRM) -> None:
    cid = customer(app)
    head = app.app.recorder.max_notification_id()
    with pytest.raises(InvalidCommandError, match=r"actor.*NUL"), app.context(actor="li\x00"):
        app.assign_segment(cid, segment="smb")
    assert app.app.recorder.max_notification_id() == head


def test_a_business_time_whose_utc_value_leaves_the_calendar_is_refused(app: CRM) -> None:
    # 0001-01-01T00:30+14:00 is 0000-12-31 in UTC: the timeline raised OverflowError.
    cid = customer(app)
    head = app.app.recorder.max_notification_id()
    early = datetime(1, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=14)))
    with (
        pytest.raises(InvalidCommandError, match=r"occurred_at.*out of range"),
        app.context(occurred_at=early),
    ):
        app.assign_segment(cid, segment="smb")
    assert app.app.recorder.max_notification_id() == head
    ticket = app.open_ticket(cid, kind="incident", subject="broken", channel="phone")
    head = app.app.recorder.max_notification_id()
    with pytest.raises(InvalidCommandError, match=r"visit_at.*out of range"):
        app.schedule_field_visit(cid, ticket, visit_at=early, engineer="zhang")
    assert app.app.recorder.max_notification_id() == head


def test_an_actor_longer_than_the_timeline_column_is_refused(app: CRM) -> None:
    # The timeline keeps the actor in varchar(100): PostgreSQL refused the row, forever.
    cid = customer(app)
    head = app.app.recorder.max_notification_id()
    with (
        pytest.raises(InvalidCommandError, match=r"actor.*at most 100"),
        app.context(actor="a" * 150),
    ):
        app.assign_segment(cid, segment="smb")
    assert app.app.recorder.max_notification_id() == head
    with app.context(actor="a" * 100):
        app.assign_segment(cid, segment="smb")


def test_a_lone_surrogate_is_refused(app: CRM, rejects: Rejects) -> None:
    # Was a TypeError from orjson when saving.
    cid = customer(app)
    rejects(InvalidCommandError, app.open_ticket, cid, kind="inquiry", subject="help",
            channel="web", description="half an emoji \ud83d", match="surrogate")  # fmt: skip


def test_a_ten_megabyte_description_is_refused(app: CRM, rejects: Rejects) -> None:
    cid = customer(app)
    rejects(InvalidCommandError, app.open_ticket, cid, kind="inquiry", subject="help",
            channel="web", description="x" * 10_000_000, match="at most 4000")  # fmt: skip


def test_a_hundred_thousand_order_lines_are_refused_quickly(app: CRM, rejects: Rejects) -> None:
    cid = customer(app)
    account = app.open_account(customer_id=cid, name="Acme")
    started = time.monotonic()
    rejects(InvalidCommandError, app.place_order, account, lines=[line()] * 100_000,
            match="at most 1000 order lines")  # fmt: skip
    assert time.monotonic() - started < 30


def test_a_naive_occurred_at_is_a_typed_error(app: CRM) -> None:
    cid = customer(app)
    with (
        pytest.raises(InvalidCommandError, match=r"occurred_at.*timezone"),
        app.context(occurred_at=datetime(2030, 1, 1)),
    ):
        app.assign_segment(cid, segment="smb")


def test_a_naive_now_is_a_typed_error(app: CRM) -> None:
    # Was a TypeError comparing it with the ticket's aware due time.
    cid = customer(app)
    app.open_ticket(cid, kind="inquiry", subject="help", channel="web")
    with pytest.raises(InvalidCommandError, match=r"now.*timezone"):
        app.record_sla_breaches(cid, now=datetime(2100, 1, 1))


def test_sla_deadline_past_the_calendar_is_a_typed_error() -> None:
    # Was OverflowError from the calendar's date arithmetic.
    late = datetime.max.replace(tzinfo=UTC) - timedelta(hours=1)
    with pytest.raises(InvalidCommandError, match="outside years 1-9999"):
        DEFAULT_SLA.due(TicketKind.COMPLAINT, Priority.NORMAL, late)
    with pytest.raises(InvalidCommandError, match="timezone-aware"):
        BusinessCalendar().add(datetime(2030, 1, 1), timedelta(hours=1))
    with pytest.raises(ConfigurationError, match="unknown time zone"):
        BusinessCalendar(timezone="Mars/Olympus")


def test_an_event_over_max_event_bytes_is_refused_naming_the_event() -> None:
    app = CRM(settings=CRMSettings(store_url="memory://", max_event_bytes=10_000))
    cid = customer(app)
    head = app.app.recorder.max_notification_id()
    with pytest.raises(
        InvalidCommandError, match=r"TicketOpened .* is 1[0-9],[0-9]{3} bytes.*10,000"
    ):
        app.open_ticket(cid, kind="inquiry", subject="help", channel="web", description="中" * 4000)
    assert app.app.recorder.max_notification_id() == head
    app.open_ticket(cid, kind="inquiry", subject="help", channel="web", description="中" * 3000)


def test_max_event_bytes_is_bounded() -> None:
    with pytest.raises(ConfigurationError, match="max_event_bytes"):
        CRMSettings.load(store_url="memory://", max_event_bytes=1 << 30)


def test_snapshots_are_not_held_to_the_event_limit() -> None:
    # A snapshot holds the aggregate's whole state: refusing it would refuse every later
    # command on a customer whose history is long.
    app = CRM(
        settings=CRMSettings(store_url="memory://", max_event_bytes=20_000, snapshot_interval=5)
    )
    cid = customer(app)
    for _ in range(12):
        app.open_ticket(
            cid, kind="inquiry", subject="s" * 400, channel="web", description="d" * 3000
        )
    assert len(app.customer(cid).tickets) == 12


def test_history_is_read_as_it_was_written(app: CRM) -> None:
    """An event stored before a bound was tightened still loads (and is not rewritten)."""
    cid = customer(app)
    current = app.customer(cid)
    event = Customer.SatisfactionRecorded(
        originator_id=cid, originator_version=current.version + 1, score=5,
        classification="loyal", comment="ok",
    )  # fmt: skip
    mapper = app.app.mapper
    sealer, mapper.sealer = mapper.sealer, None  # type: ignore[attr-defined]
    stored = mapper.to_stored_event(event)  # as an older release stored it: in clear
    mapper.sealer = sealer  # type: ignore[attr-defined]
    old_state = stored.state.replace(b'"comment":"ok"', b'"comment":"' + b"\\u0000" * 5000 + b'"')
    app.app.recorder.insert_events(
        [StoredEvent(stored.originator_id, stored.originator_version, stored.topic, old_state)]
    )
    assert app.customer(cid).satisfaction == 5
    assert app.history(cid)[-1].comment == "\x00" * 5000  # type: ignore[attr-defined]


@pytest.mark.postgres
def test_the_largest_accepted_event_does_not_block_other_writers(postgres_url: str) -> None:
    """An event of many megabytes on PostgreSQL used to hang inside psycopg's pipeline sync
    while holding the events table lock, and every other writer with it (docs/limits.md).

    The largest event the settings accept is written while another writer keeps writing:
    both finish, the other writer waiting at most for the big write itself. (Before the
    fix both threads were still waiting when the deadline passed.)
    """
    settings = CRMSettings(store_url=postgres_url, max_event_bytes=16 * 1024 * 1024)
    app, other = CRM(settings=settings), CRM(settings=settings)
    cid = customer(app)
    account = app.open_account(customer_id=cid, name="Acme")
    someone = other.register_customer(kind="individual", name="Li", code="LI")
    # 1000 lines with 4000 three-byte characters each: about 12 MB of JSON.
    lines = [line(sku=f"S-{i}", customisation="中" * 4000) for i in range(1000)]
    outcome: dict[str, Any] = {"small writes": 0}
    big_done = threading.Event()

    def big_write() -> None:
        try:
            app.place_order(account, lines=lines)
        except Exception as exc:  # reported below
            outcome["big error"] = exc
        finally:
            big_done.set()

    def small_writes() -> None:
        try:
            while not big_done.is_set() or outcome["small writes"] < 3:
                other.assign_segment(someone, segment=f"s{outcome['small writes']}")
                outcome["small writes"] += 1
        except Exception as exc:  # reported below
            outcome["small error"] = exc

    writers = [threading.Thread(target=f, daemon=True) for f in (big_write, small_writes)]
    for writer in writers:
        writer.start()
    deadline = time.monotonic() + 90
    for writer in writers:
        writer.join(timeout=max(0.0, deadline - time.monotonic()))
    hung = [w for w in writers if w.is_alive()]
    # A hung writer keeps its connection: leave it to the database's drop.
    assert not hung, f"writers still waiting after 90 s (the events table lock): {outcome}"
    assert "big error" not in outcome, outcome
    assert "small error" not in outcome, outcome
    (order,) = app.account(account).orders.values()
    assert len(order.lines) == 1000
    app.close()
    other.close()


def test_snapshots_of_history_written_before_a_bound_still_load() -> None:
    """A customer registered when address lines were unbounded: its snapshots load."""
    app = CRM(settings=CRMSettings(store_url="memory://", snapshot_interval=2))
    cid = customer(app)
    registered = app.history(cid)[0]
    mapper = app.app.mapper
    sealer, mapper.sealer = mapper.sealer, None  # type: ignore[attr-defined]
    stored = mapper.to_stored_event(registered)  # as an older release stored it: in clear
    mapper.sealer = sealer  # type: ignore[attr-defined]
    long_line = b'"line1":"' + b"x" * 300 + b'"'
    old_state = stored.state.replace(b'"address":null', b'"address":{' + long_line + b"}")
    assert old_state != stored.state
    other = CRM(settings=CRMSettings(store_url="memory://", snapshot_interval=2))
    other.app.recorder.insert_events(
        [StoredEvent(stored.originator_id, 1, stored.topic, old_state)]
    )
    for segment in ("a", "b", "c", "d"):  # takes snapshots on the way
        other.assign_segment(cid, segment=segment)
    assert other.app.snapshots is not None
    assert list(other.app.snapshots.get(cid))
    loaded = other.customer(cid)
    assert loaded.contact.address is not None
    assert len(loaded.contact.address.line1) == 300
