"""Idempotency keys as payment APIs use them: one key names one request. Repeating the
request returns the first result; the same key with another request is refused."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

import pytest

from crm_domain import CRM
from crm_domain.bookkeeping import CommandProcessed, encode_result
from crm_domain.errors import IdempotencyKeyReusedError

Call = dict[str, object]


def count(app: CRM) -> int:
    return app.app.recorder.max_notification_id() or 0


@pytest.fixture
def other_customer(app: CRM) -> UUID:
    return app.register_customer(kind="individual", name="Zhao Lei", code="ZL-1")


def _log(app: CRM, customer: UUID, key: str, **changes: object) -> UUID:
    fields: Call = {"channel": "phone", "direction": "inbound", "summary": "price?"}
    with app.context(command_id=key):
        return app.log_contact(customer, **(fields | changes))  # type: ignore[arg-type]


def test_same_key_same_request_returns_the_first_result(app: CRM, customer_id: UUID) -> None:
    first = _log(app, customer_id, "k-1")
    stored = count(app)
    assert _log(app, customer_id, "k-1") == first
    assert count(app) == stored


@pytest.mark.parametrize("bulk", [False, True])
def test_same_key_for_another_customer_is_refused(
    app: CRM, customer_id: UUID, other_customer: UUID, bulk: bool
) -> None:
    _log(app, customer_id, "k-2")
    stored = count(app)

    def again() -> None:
        if bulk:
            with app.bulk():
                _log(app, other_customer, "k-2")
        else:
            _log(app, other_customer, "k-2")

    with pytest.raises(IdempotencyKeyReusedError, match="k-2") as info:
        again()
    assert "log_contact" in str(info.value)
    assert count(app) == stored
    assert app.customer(other_customer).contacts_logged == 0


def test_same_key_with_other_fields_is_refused(app: CRM, customer_id: UUID) -> None:
    _log(app, customer_id, "k-3")
    stored = count(app)
    with pytest.raises(IdempotencyKeyReusedError):
        _log(app, customer_id, "k-3", summary="something else")
    assert count(app) == stored


def test_same_key_twice_in_one_bulk_with_other_fields_is_refused(
    app: CRM, customer_id: UUID
) -> None:
    stored = count(app)

    def both() -> None:
        with app.bulk():
            _log(app, customer_id, "k-4")
            _log(app, customer_id, "k-4", summary="changed")

    with pytest.raises(IdempotencyKeyReusedError):
        both()
    assert count(app) == stored


def test_records_stored_before_request_hashes_still_answer_repeats(
    app: CRM, customer_id: UUID
) -> None:
    """A CommandProcessed recorded by an older version has no request hash: trust it."""
    old = CommandProcessed(command_id="k-old", command="assign_grade", result=encode_result(None))
    app.app.save(old)
    loaded: CommandProcessed = app.app.repository.get(old.id)
    assert loaded.request_hash == ""
    stored = count(app)
    with app.context(command_id="k-old"):
        assert app.assign_grade(customer_id, grade="B") is None
    assert count(app) == stored


def test_a_command_returning_a_list_can_be_repeated(app: CRM, customer_id: UUID) -> None:
    """record_sla_breaches returns the breached tickets: its record keeps the list."""
    ticket = app.open_ticket(customer_id, kind="complaint", subject="late", channel="phone")
    later = datetime(2100, 1, 1, tzinfo=UTC)
    with app.context(command_id="sla-1"):
        first = app.record_sla_breaches(customer_id, now=later)
    with app.context(command_id="sla-1"):
        assert app.record_sla_breaches(customer_id, now=later) == first == [ticket]
