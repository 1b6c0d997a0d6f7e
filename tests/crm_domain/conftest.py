"""Fixtures for the domain suite: an in-memory CRM and a helper that proves a rejected
command stored nothing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any
from uuid import UUID

import pytest

from crm_domain import CRM, Money

Rejects = Callable[..., BaseException]


@pytest.fixture
def app() -> CRM:
    return CRM("memory://")


@pytest.fixture
def rejects(app: CRM) -> Rejects:
    """``rejects(ErrorType, command, *args, match=..., **kwargs)``: the command raises that
    error and the store holds exactly what it held before (no event, no bookkeeping)."""

    def check(
        error: type[BaseException],
        command: Callable[..., Any],
        *args: Any,
        match: str | None = None,
        **kwargs: Any,
    ) -> BaseException:
        before = app.app.recorder.max_notification_id()
        with pytest.raises(error, match=match) as info:
            command(*args, **kwargs)
        assert app.app.recorder.max_notification_id() == before, "a rejected command stored events"
        return info.value

    return check


@pytest.fixture
def customer_id(app: CRM) -> UUID:
    return app.register_customer(
        kind="enterprise",
        name="Guangzhou Baiyun Trading",
        code="GZBY-001",
        contact={"email": "info@gzby.example.cn", "phone": "+86 20 8888 0000"},
        source_channel="trade-fair",
    )


@pytest.fixture
def account_id(app: CRM, customer_id: UUID) -> UUID:
    return app.open_account(
        customer_id=customer_id, name="Baiyun Trading B2B", industry="logistics", size="large"
    )


@pytest.fixture
def opportunity_id(app: CRM, account_id: UUID) -> UUID:
    return app.open_opportunity(
        account_id,
        name="Warehouse scanners",
        expected_close=date(2031, 6, 30),
        owner="zhang.min",
        amount=Money.of("120000", "CNY"),
    )
