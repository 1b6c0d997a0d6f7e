"""Seminar registrations: recorded, and confirmed to the customer exactly once ("I registered
for a seminar and never got a confirmation")."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from uuid import UUID, uuid4

from crm_domain import CRM
from crm_domain.customer import Customer
from crm_domain.errors import EntityNotFoundError, InactiveCustomerError, RuleViolationError

Rejects = Callable[..., BaseException]
HELD = datetime(2031, 3, 5, 9, tzinfo=UTC)


def _register(app: CRM, customer_id: UUID) -> UUID:
    return app.register_for_seminar(
        customer_id,
        campaign_id="expo-2031",
        seminar="Warehouse automation day",
        channel="email",
        held_at=HELD,
    )


def test_a_registration_is_recorded_unconfirmed(app: CRM, customer_id: UUID) -> None:
    registration = _register(app, customer_id)
    customer = app.customer(customer_id)
    [open_one] = customer.unconfirmed_seminar_registrations
    assert (open_one.registration_id, open_one.seminar, open_one.held_at) == (
        registration,
        "Warehouse automation day",
        HELD,
    )
    [event] = [e for e in app.history(customer_id) if isinstance(e, Customer.SeminarRegistered)]
    assert (event.campaign_id, event.channel.value) == ("expo-2031", "email")


def test_a_registration_is_confirmed_once(app: CRM, customer_id: UUID, rejects: Rejects) -> None:
    registration = _register(app, customer_id)
    app.confirm_seminar_registration(customer_id, registration_id=registration, channel="sms")
    customer = app.customer(customer_id)
    assert customer.unconfirmed_seminar_registrations == []
    assert customer.seminar_registrations[registration].confirmed_at is not None
    rejects(
        RuleViolationError,
        app.confirm_seminar_registration,
        customer_id,
        registration_id=registration,
        channel="sms",
        match="already confirmed",
    )


def test_only_a_known_registration_is_confirmed(
    app: CRM, customer_id: UUID, rejects: Rejects
) -> None:
    rejects(
        EntityNotFoundError,
        app.confirm_seminar_registration,
        customer_id,
        registration_id=uuid4(),
        channel="email",
    )


def test_a_deactivated_customer_cannot_register(
    app: CRM, customer_id: UUID, rejects: Rejects
) -> None:
    app.deactivate_customer(customer_id, reason="moved away")
    rejects(InactiveCustomerError, _register, app, customer_id)


def test_registrations_survive_a_snapshot() -> None:
    app = CRM("memory://", snapshot_interval=2)
    cid = app.register_customer(kind="individual", name="Li", code="LI-1")
    registration = _register(app, cid)
    app.confirm_seminar_registration(cid, registration_id=registration, channel="email")
    _register(app, cid)
    customer = app.customer(cid)
    assert len(customer.seminar_registrations) == 2
    assert len(customer.unconfirmed_seminar_registrations) == 1
