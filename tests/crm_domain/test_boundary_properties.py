"""Whatever text or time reaches a command, the store and every read model survive it.

Hypothesis feeds every public command of :class:`CRM` generated text (any Unicode, NUL,
lone surrogates, control characters, lengths around every bound and far beyond) and
datetimes (naive or with any offset, any year), in its arguments and in the command
context (actor, ids, ``occurred_at``). Each run ends one of two ways:

- a typed :class:`CRMError`, and the notification log's head is where it was; or
- the events are stored, every read model builds from the log, and every value the read
  models hold fits the PostgreSQL column it goes to (no NUL, no more characters than the
  ``varchar``): so what passes here on SQLite also passes on PostgreSQL.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import String, select

from crm_domain.application import CRM
from crm_domain.errors import CRMError
from crm_domain.values import Money
from projections.readmodel import LoggedEvent
from projections.registry import all_read_models
from projections.runner import open_view

T0 = datetime(2030, 3, 4, 10, 0, tzinfo=UTC)


def public_commands() -> list[str]:
    """Every command, by the name of its typed method on ``CRM`` (``crm.log_contact``...)."""
    from crm_domain.commands.base import all_commands

    names = sorted(command.command_name for command in all_commands())
    assert all(callable(getattr(CRM, name, None)) for name in names)
    return names


# ----- strategies ----------------------------------------------------------------------
SPECIALS = ["\x00", "\ud800", "\udfff", "\x07", "\x1b", "\x7f", "\n", "\t", "\r", "\u2028"]
LENGTHS = [0, 1, 20, 64, 99, 100, 101, 199, 200, 201, 499, 500, 501, 3999, 4000, 4001, 100_000]

any_char = st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=())
texts = st.one_of(
    st.sampled_from(["Li Wei", "ok", "Ünïcødé 客户"]),
    st.text(any_char, max_size=12),
    st.builds(
        lambda c, n: c * n,
        st.sampled_from(["a", "中", "😀", "\x00", "\ud83d"]),
        st.sampled_from(LENGTHS),
    ),
    st.builds(
        lambda a, s, b: a + s + b,
        st.text(max_size=4),
        st.sampled_from(SPECIALS),
        st.text(max_size=4),
    ),
)
offsets = st.builds(
    timezone,
    st.timedeltas(
        min_value=-timedelta(hours=23, minutes=59), max_value=timedelta(hours=23, minutes=59)
    ),
)
datetimes = st.one_of(
    st.just(T0),
    st.datetimes(timezones=st.one_of(st.none(), st.just(UTC), offsets)),
    st.builds(
        lambda d, tz: d.replace(tzinfo=tz),
        st.sampled_from(
            [datetime.min, datetime.max, datetime(1, 1, 1, 0, 30), datetime(9999, 12, 31, 23)]
        ),
        offsets,
    ),
)
dates = st.one_of(st.just(date(2030, 6, 30)), st.dates())


# ----- a small world every command can act on ------------------------------------------
@dataclass
class World:
    customer: UUID
    person: UUID
    other: UUID
    inactive: UUID
    ticket: UUID
    resolved: UUID
    contact: UUID
    account: UUID
    opportunity: UUID
    fresh_opportunity: UUID
    quote: UUID
    placed: UUID
    requested: UUID
    confirmed: UUID
    shipped: UUID
    invoice: UUID
    registration: UUID
    #: An invoice for no order, paid, half credited: credit notes and refunds apply.
    fee: UUID


def eur(amount: int) -> Money:
    return Money.of(amount, "EUR")


def line() -> dict[str, Any]:
    return {"sku": "S-1", "quantity": 1, "unit_price": {"amount": "10", "currency": "EUR"}}


def build_world(app: CRM) -> World:
    with app.context(occurred_at=T0):
        c = app.register_customer(kind="enterprise", name="Acme", code="ACME")
        p = app.register_customer(kind="individual", name="Li", code="LI")
        other = app.register_customer(kind="individual", name="Wang", code="WANG")
        inactive = app.register_customer(kind="individual", name="Zhao", code="ZHAO")
        app.deactivate_customer(inactive, reason="moved away")
        ticket = app.open_ticket(c, kind="inquiry", subject="price?", channel="phone")
        resolved = app.open_ticket(c, kind="request", subject="manual", channel="email")
        app.resolve_ticket(c, resolved, answer="sent")
        contact = app.log_contact(
            c,
            channel="visit",
            direction="outbound",
            summary="kick-off",
            commitments=[{"description": "send offer", "owner": "li.wei"}],
            logged_by="li.wei",
        )
        a = app.open_account(customer_id=c, name="Acme Trading")
        app.add_account_contact(a, customer_id=p, role="buyer")
        o = app.open_opportunity(
            a, name="Fleet", expected_close=date(2030, 6, 30), owner="li.wei", amount=eur(100)
        )
        fresh = app.open_opportunity(
            a, name="Spare parts", expected_close=date(2030, 7, 1), owner="li.wei"
        )
        q = app.issue_quote(a, o, amount=eur(100), valid_until=date(2030, 6, 1))
        orders = [app.place_order(a, lines=[line()]) for _ in range(4)]
        placed, requested, confirmed, shipped = orders
        for order in (requested, confirmed, shipped):
            app.request_order_confirmation(a, order)
        with app.context(source_system="erp"):
            for order in (confirmed, shipped):
                app.confirm_order(a, order)
        app.ship_order(a, shipped)
        invoice = app.issue_invoice(a, amount=eur(10), order_id=placed)
        registration = app.register_for_seminar(
            c, campaign_id="expo-2030", seminar="Warehouse automation", channel="email"
        )
        fee = app.issue_invoice(a, amount=eur(10))
        app.receive_payment(a, amount=eur(10), invoice_id=fee)
        app.issue_credit_note(a, fee, amount=eur(5), reason="fee reduced")
    return World(
        c, p, other, inactive, ticket, resolved, contact, a, o, fresh, q, placed, requested,
        confirmed, shipped, invoice, registration, fee,
    )  # fmt: skip


#: Which world id each command's id parameters name, when it is not the obvious one.
ID_CHOICE: dict[tuple[str, str], str] = {
    ("reactivate_customer", "customer_id"): "inactive",
    ("set_parent_organisation", "parent_id"): "person",
    ("add_account_contact", "customer_id"): "other",
    ("remove_account_contact", "customer_id"): "person",
    ("reopen_ticket", "ticket_id"): "resolved",
    ("close_ticket", "ticket_id"): "resolved",
    ("record_satisfaction", "ticket_id"): "resolved",
    ("issue_quote", "opportunity_id"): "fresh_opportunity",
    ("confirm_order", "order_id"): "requested",
    ("reject_order", "order_id"): "requested",
    ("ship_order", "order_id"): "confirmed",
    ("deliver_order", "order_id"): "shipped",
    ("return_order", "order_id"): "shipped",
    ("issue_invoice", "order_id"): "placed",
    ("cancel_order", "order_id"): "confirmed",
    ("issue_credit_note", "invoice_id"): "fee",
    ("issue_refund", "invoice_id"): "fee",
}
ID_DEFAULT = {
    "customer_id": "customer",
    "account_id": "account",
    "ticket_id": "ticket",
    "opportunity_id": "opportunity",
    "quote_id": "quote",
    "order_id": "placed",
    "contact_id": "contact",
    "invoice_id": "invoice",
    "parent_id": "person",
    "registration_id": "registration",
    "credit_note_id": "quote",  # an id of ERP's choosing: any UUID
}
ENUMS = {
    "kind": ["enterprise", "inquiry", "complaint"],
    "channel": ["phone", "email", "visit"],
    "direction": ["inbound", "outbound"],
    "priority": ["low", "urgent"],
    "size": ["small", "large"],
    "tier": ["gold"],
    "criterion": ["size"],
    "reason": ["credit"],  # reject_order's reason is an enum
    "stage": ["qualify", "propose", "negotiate"],
    "to_stage": ["prospect", "customer", "engaged"],
}


def draw_argument(draw: Any, command: str, param: inspect.Parameter, world: World) -> Any:
    name, annotation = param.name, str(param.annotation)
    if "UUID" in annotation:
        if annotation.endswith("| None") and draw(st.booleans()):
            return None
        return getattr(world, ID_CHOICE.get((command, name), ID_DEFAULT[name]))
    if name in ENUMS and not (command != "reject_order" and name == "reason"):
        return draw(st.one_of(st.sampled_from(ENUMS[name]), texts))
    if name == "lines":
        return [
            {**line(), "description": draw(texts), "customisation": draw(texts), "sku": draw(texts)}
            for _ in range(draw(st.sampled_from([1, 2, 1000, 1001, 100_000])))
        ]
    if name == "participants":
        return draw(st.lists(texts, max_size=3) | st.builds(lambda n: ["p"] * n, st.just(51)))
    if name == "commitments":
        return [
            {"description": draw(texts), "owner": draw(texts), "due": draw(datetimes | st.none())}
            for _ in range(draw(st.sampled_from([0, 1, 51])))
        ]
    if name == "contact":
        return {"address": {f: draw(texts) for f in ("line1", "city", "postcode", "country")}}
    if name in ("amount", "limit"):
        return eur(5)
    if name == "credit_override":
        return draw(st.none() | st.fixed_dictionaries({"supervisor": texts, "reason": texts}))
    if name in ("score", "index"):
        return draw(st.integers(min_value=0, max_value=5))
    if name == "discount_pct":
        return Decimal(5)
    if name == "decision_maker" or name == "registered":
        return draw(st.booleans())
    if "datetime" in annotation:
        return draw(datetimes)
    if "date" in annotation:
        return draw(dates)
    if "str" in annotation:
        if annotation.endswith("| None") and draw(st.booleans()):
            return None
        return draw(texts)
    raise AssertionError(f"no strategy for {command}({name}: {annotation})")


def draw_context(draw: Any) -> dict[str, Any]:
    context: dict[str, Any] = {"occurred_at": draw(st.one_of(st.just(T0), datetimes))}
    for key in ("actor", "source_system", "correlation_id", "command_id"):
        if draw(st.booleans()):
            context[key] = draw(texts)
    return context


# ----- the property ---------------------------------------------------------------------
def project_all(app: CRM) -> dict[str, list[Any]]:
    """Every read model built from the whole log; rows by table."""
    view = open_view("memory://")
    try:
        start = 1
        while page := app.app.recorder.select_notifications(start=start, limit=500):
            view.record(app.app.name, [LoggedEvent(n, mapper=app.app.mapper) for n in page])
            start = page[-1].id + 1
        rows: dict[str, list[Any]] = {}
        with view.engine.connect() as conn:
            for model in all_read_models().values():
                for table in model.tables:
                    rows[table.name] = list(conn.execute(select(table)).mappings())
                    check_columns(table, rows[table.name])
        return rows
    finally:
        view.engine.dispose()


def check_columns(table: Any, rows: list[Any]) -> None:
    """What PostgreSQL would refuse: NUL in text, more characters than a varchar takes."""
    for row in rows:
        for column in table.columns:
            value = row[column.name]
            if not isinstance(value, str):
                continue
            where = f"{table.name}.{column.name}"
            assert "\x00" not in value, f"NUL in {where}"
            value.encode("utf-8")  # no lone surrogates
            if isinstance(column.type, String) and column.type.length is not None:
                assert len(value) <= column.type.length, f"{len(value)} characters in {where}"


def run_command(app: CRM, world: World, command: str, data: Any) -> None:
    method: Callable[..., Any] = getattr(app, command)
    arguments: dict[str, Any] = {}
    positional: list[Any] = []
    for param in inspect.signature(method).parameters.values():
        if param.default is not inspect.Parameter.empty and data.draw(st.booleans()):
            continue  # leave an optional argument out
        value = draw_argument(data.draw, command, param, world)
        if param.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD:
            positional.append(value)
        else:
            arguments[param.name] = value
    context = draw_context(data.draw)
    head = app.app.recorder.max_notification_id()
    try:
        with app.context(**context):
            method(*positional, **arguments)
    except CRMError:
        assert app.app.recorder.max_notification_id() == head, f"{command} failed but stored events"
        return
    project_all(app)


COMMANDS = public_commands()


def test_every_command_is_covered() -> None:
    """The list follows the API: a new command is fed generated input too."""
    assert len(COMMANDS) >= 50
    world_fields = set(World.__dataclass_fields__)
    for command in COMMANDS:
        for param in inspect.signature(getattr(CRM, command)).parameters.values():
            if "UUID" in str(param.annotation):
                assert ID_CHOICE.get((command, param.name), ID_DEFAULT[param.name]) in world_fields


@pytest.mark.parametrize("command", COMMANDS)
@settings(
    max_examples=4,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)
@given(data=st.data())
def test_command_refuses_or_every_read_model_builds(command: str, data: Any) -> None:
    app = CRM("memory://", snapshot_interval=0)
    run_command(app, build_world(app), command, data)


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)
@given(command=st.sampled_from(COMMANDS), data=st.data())
def test_on_sqlite_too(tmp_path_factory: pytest.TempPathFactory, command: str, data: Any) -> None:
    path = tmp_path_factory.mktemp("boundary") / "crm.sqlite"
    app = CRM(f"sqlite:///{path}", snapshot_interval=0)
    try:
        run_command(app, build_world(app), command, data)
    finally:
        app.close()
