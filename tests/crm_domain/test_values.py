"""Value objects: money and currency, e-mail, phone numbers, order lines, vocabularies."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from crm_domain import ContactDetails, Money, OrderLine
from crm_domain.errors import CRMError, InvalidCommandError, UnknownValueError
from crm_domain.values import Channel, SatisfactionClass, parse_enum, to_decimal


def test_money_normalises_currency_and_keeps_decimals() -> None:
    m = Money.of("1234.50", " cny ")
    assert m.currency == "CNY"
    assert m.amount == Decimal("1234.50")
    assert str(m) == "1234.50 CNY"
    assert Money.of(0, "EUR").amount == 0


@pytest.mark.parametrize("currency", ["RMB", "XXX", "EURO", "", "12"])
def test_unknown_currency(currency: str) -> None:
    with pytest.raises(InvalidCommandError, match="currency"):
        Money.of(1, currency)


@pytest.mark.parametrize("amount", ["-0.01", -1, "-1000000"])
def test_negative_amounts(amount: str | int) -> None:
    with pytest.raises(InvalidCommandError, match="amount"):
        Money.of(amount, "CNY")


@pytest.mark.parametrize("amount", ["abc", "", "1,000", "NaN"])
def test_amount_that_is_not_a_number(amount: str) -> None:
    with pytest.raises(InvalidCommandError):
        Money.of(amount, "CNY")


def test_amount_precision_is_bounded() -> None:
    with pytest.raises(InvalidCommandError):
        Money.of("0.00001", "CNY")
    assert Money.of("0.0001", "CNY").amount == Decimal("0.0001")


def test_money_is_immutable_and_rejects_negative_on_direct_construction() -> None:
    m = Money.of(5, "USD")
    with pytest.raises(ValidationError):
        m.amount = Decimal(6)  # type: ignore[misc]
    with pytest.raises(ValueError, match="greater than or equal"):
        Money(amount=Decimal(-1), currency="USD")


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("+86 20 8888 0000", "+862088880000"),
        ("(020) 3456-7890", "02034567890"),
        ("138.0013.8000", "13800138000"),
    ],
)
def test_phone_numbers_are_normalised(raw: str, stored: str) -> None:
    assert ContactDetails(phone=raw).phone == stored
    assert ContactDetails(mobile=raw).mobile == stored


@pytest.mark.parametrize("raw", ["12345", "call me", "+86 20 8888 0000 0000 00", "++8612345678"])
def test_bad_phone_numbers(raw: str) -> None:
    with pytest.raises(ValidationError, match="phone"):
        ContactDetails(phone=raw)


@pytest.mark.parametrize("email", ["no-at-sign", "a@", "@b.cn", "a b@c.cn"])
def test_bad_email(email: str) -> None:
    with pytest.raises(ValidationError, match="email"):
        ContactDetails(email=email)


def test_contact_details_forbid_unknown_fields() -> None:
    with pytest.raises(ValidationError, match="fax"):
        ContactDetails.model_validate({"fax": "+8620123456"})


def test_order_line_total_and_validation() -> None:
    assert OrderLine(sku="A", quantity=3, unit_price=Money.of("9.99", "USD")).total == Decimal(
        "29.97"
    )
    with pytest.raises(ValidationError):
        OrderLine(sku="", quantity=1, unit_price=Money.of(1, "USD"))
    with pytest.raises(ValidationError):
        OrderLine(sku="A", quantity=0, unit_price=Money.of(1, "USD"))


@pytest.mark.parametrize(
    ("score", "cls"),
    [
        (5, SatisfactionClass.LOYAL),
        (4, SatisfactionClass.AT_RISK),
        (3, SatisfactionClass.AT_RISK),
        (2, SatisfactionClass.DISSATISFIED),
        (1, SatisfactionClass.DISSATISFIED),
    ],
)
def test_satisfaction_class(score: int, cls: SatisfactionClass) -> None:
    assert SatisfactionClass.of(score) is cls


def test_parse_enum_and_to_decimal() -> None:
    assert parse_enum(Channel, "call_centre") is Channel.CALL_CENTRE
    with pytest.raises(UnknownValueError, match=r"'fax'.*phone, email"):
        parse_enum(Channel, "fax")
    assert to_decimal("12.5") == Decimal("12.5")
    with pytest.raises(InvalidCommandError, match="discount"):
        to_decimal("lots", "discount")
    assert issubclass(UnknownValueError, CRMError)
