"""A logged contact may name the account it was about: only an account of that customer
(or one the person is a contact of). Anything else is refused, storing nothing."""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID, uuid4

import pytest

from crm_domain import CRM
from crm_domain.errors import AccountNotFoundError, EntityNotFoundError, NotFoundError

Rejects = Callable[..., BaseException]


def _log(app: CRM, customer: UUID, account: UUID) -> UUID:
    return app.log_contact(
        customer, channel="visit", direction="outbound", summary="demo", account_id=account
    )


def test_the_customers_own_account_is_accepted(
    app: CRM, customer_id: UUID, account_id: UUID
) -> None:
    _log(app, customer_id, account_id)
    assert app.customer(customer_id).contacts_logged == 1


def test_a_contact_person_of_the_account_may_name_it(
    app: CRM, customer_id: UUID, account_id: UUID
) -> None:
    buyer = app.register_customer(kind="individual", name="Buyer", code="BUY-1")
    app.add_account_contact(account_id, customer_id=buyer, role="buyer")
    _log(app, buyer, account_id)
    assert app.customer(buyer).contacts_logged == 1


@pytest.mark.parametrize("bulk", [False, True])
def test_an_unknown_account_is_refused(
    app: CRM, rejects: Rejects, customer_id: UUID, bulk: bool
) -> None:
    missing = uuid4()

    def run() -> None:
        if bulk:
            with app.bulk():
                _log(app, customer_id, missing)
        else:
            _log(app, customer_id, missing)

    error = rejects(AccountNotFoundError, run)
    assert str(missing) in str(error)


def test_a_customer_id_is_not_an_account(app: CRM, rejects: Rejects, customer_id: UUID) -> None:
    rejects(AccountNotFoundError, _log, app, customer_id, customer_id)


def test_another_customers_account_is_refused(
    app: CRM, rejects: Rejects, customer_id: UUID, account_id: UUID
) -> None:
    other = app.register_customer(kind="individual", name="Other", code="OTH-1")
    error = rejects(EntityNotFoundError, _log, app, other, account_id)
    assert isinstance(error, NotFoundError)
    assert str(account_id) in str(error)
    assert app.customer(other).contacts_logged == 0
