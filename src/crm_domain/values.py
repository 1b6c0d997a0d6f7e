"""Value objects and closed vocabularies of the CRM domain.

Unknown values are rejected at the edge: a channel, a ticket kind or a currency that is
not listed here fails validation with an error naming the allowed values.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Annotated, TypeVar

from pydantic import AfterValidator, EmailStr, Field, ValidationError

from crm_domain.errors import InvalidCommandError, UnknownValueError, invalid
from crm_domain.eventmodel import Immutable

E = TypeVar("E", bound=StrEnum)


def parse_enum(cls: type[E], value: E | str) -> E:
    """``cls(value)``, or :class:`UnknownValueError` naming the allowed values."""
    try:
        return cls(value)
    except ValueError:
        allowed = ", ".join(m.value for m in cls)
        raise UnknownValueError(f"unknown {cls.__name__} {value!r}; allowed: {allowed}") from None


def to_decimal(value: Decimal | int | str, what: str = "amount") -> Decimal:
    """A Decimal from a Decimal, int or numeric string, or :class:`InvalidCommandError`."""
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise InvalidCommandError(f"{what} must be a number, got {value!r}") from None


class CustomerKind(StrEnum):
    INDIVIDUAL = "individual"
    ENTERPRISE = "enterprise"
    GOVERNMENT = "government"


class Channel(StrEnum):
    """Channels through which a customer and the company interact."""

    PHONE = "phone"
    EMAIL = "email"
    VISIT = "visit"
    WEB = "web"
    SMS = "sms"
    MOBILE_APP = "mobile_app"
    CALL_CENTRE = "call_centre"
    LETTER = "letter"


class Direction(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class TicketKind(StrEnum):
    INQUIRY = "inquiry"
    REQUEST = "request"
    COMPLAINT = "complaint"
    INCIDENT = "incident"


class Priority(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


class TicketStatus(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"
    CLOSED = "closed"


class CompanySize(StrEnum):
    MICRO = "micro"
    SMALL = "small"
    MEDIUM = "medium"
    LARGE = "large"
    ENTERPRISE = "enterprise"


class AccountTier(StrEnum):
    STANDARD = "standard"
    SILVER = "silver"
    GOLD = "gold"
    PLATINUM = "platinum"


class KeyAccountCriterion(StrEnum):
    """Why an account is a key account: by size (first-line criterion) or by sector."""

    SIZE = "size"
    SECTOR = "sector"
    REVENUE = "revenue"
    STRATEGIC = "strategic"


class QuoteStatus(StrEnum):
    ACTIVE = "active"
    SUPERSEDED = "superseded"
    ACCEPTED = "accepted"
    EXPIRED = "expired"


class OrderStatus(StrEnum):
    PLACED = "placed"
    CONFIRMATION_REQUESTED = "confirmation_requested"
    CONFIRMED = "confirmed"
    REJECTED = "rejected"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    RETURNED = "returned"


class OrderRejectionReason(StrEnum):
    CREDIT = "credit"
    MARGIN = "margin"
    AVAILABILITY = "availability"


class SatisfactionClass(StrEnum):
    """Derived from the 1-5 score: 5 is loyal; 3 and 4 are at risk of switching."""

    LOYAL = "loyal"
    AT_RISK = "at_risk"
    DISSATISFIED = "dissatisfied"

    @classmethod
    def of(cls, score: int) -> SatisfactionClass:
        if score >= 5:
            return cls.LOYAL
        if score >= 3:
            return cls.AT_RISK
        return cls.DISSATISFIED


#: Active ISO 4217 currency codes.
ISO_CURRENCIES = frozenset(
    {
        "AED",
        "AFN",
        "ALL",
        "AMD",
        "ANG",
        "AOA",
        "ARS",
        "AUD",
        "AWG",
        "AZN",
        "BAM",
        "BBD",
        "BDT",
        "BGN",
        "BHD",
        "BIF",
        "BMD",
        "BND",
        "BOB",
        "BRL",
        "BSD",
        "BTN",
        "BWP",
        "BYN",
        "BZD",
        "CAD",
        "CDF",
        "CHF",
        "CLP",
        "CNY",
        "COP",
        "CRC",
        "CUP",
        "CVE",
        "CZK",
        "DJF",
        "DKK",
        "DOP",
        "DZD",
        "EGP",
        "ERN",
        "ETB",
        "EUR",
        "FJD",
        "FKP",
        "GBP",
        "GEL",
        "GHS",
        "GIP",
        "GMD",
        "GNF",
        "GTQ",
        "GYD",
        "HKD",
        "HNL",
        "HTG",
        "HUF",
        "IDR",
        "ILS",
        "INR",
        "IQD",
        "IRR",
        "ISK",
        "JMD",
        "JOD",
        "JPY",
        "KES",
        "KGS",
        "KHR",
        "KMF",
        "KPW",
        "KRW",
        "KWD",
        "KYD",
        "KZT",
        "LAK",
        "LBP",
        "LKR",
        "LRD",
        "LSL",
        "LYD",
        "MAD",
        "MDL",
        "MGA",
        "MKD",
        "MMK",
        "MNT",
        "MOP",
        "MRU",
        "MUR",
        "MVR",
        "MWK",
        "MXN",
        "MYR",
        "MZN",
        "NAD",
        "NGN",
        "NIO",
        "NOK",
        "NPR",
        "NZD",
        "OMR",
        "PAB",
        "PEN",
        "PGK",
        "PHP",
        "PKR",
        "PLN",
        "PYG",
        "QAR",
        "RON",
        "RSD",
        "RUB",
        "RWF",
        "SAR",
        "SBD",
        "SCR",
        "SDG",
        "SEK",
        "SGD",
        "SHP",
        "SLE",
        "SOS",
        "SRD",
        "SSP",
        "STN",
        "SVC",
        "SYP",
        "SZL",
        "THB",
        "TJS",
        "TMT",
        "TND",
        "TOP",
        "TRY",
        "TTD",
        "TWD",
        "TZS",
        "UAH",
        "UGX",
        "USD",
        "UYU",
        "UZS",
        "VES",
        "VND",
        "VUV",
        "WST",
        "XAF",
        "XCD",
        "XOF",
        "XPF",
        "YER",
        "ZAR",
        "ZMW",
        "ZWG",
    }
)


def _iso_currency(code: str) -> str:
    code = code.strip().upper()
    if code not in ISO_CURRENCIES:
        raise ValueError(f"unknown ISO 4217 currency {code!r}")
    return code


CurrencyCode = Annotated[str, AfterValidator(_iso_currency)]

_PHONE = re.compile(r"^\+?[0-9]{6,15}$")


def _phone(value: str) -> str:
    compact = re.sub(r"[\s().-]", "", value)
    if not _PHONE.match(compact):
        raise ValueError(f"not a phone number: {value!r} (6-15 digits, optional leading +)")
    return compact


PhoneNumber = Annotated[str, AfterValidator(_phone)]

#: An amount of money is never negative; refunds and returns are their own events.
NonNegativeAmount = Annotated[Decimal, Field(ge=0, max_digits=18, decimal_places=4)]

NonEmptyStr = Annotated[str, Field(min_length=1, max_length=500)]


class Money(Immutable):
    """A non-negative amount in an ISO 4217 currency."""

    amount: NonNegativeAmount
    currency: CurrencyCode

    @classmethod
    def of(cls, amount: Decimal | int | str, currency: str) -> Money:
        """Money from loose input; a negative amount or unknown currency is an
        :class:`~crm_domain.errors.InvalidCommandError`."""
        try:
            return cls(amount=to_decimal(amount), currency=currency)
        except ValidationError as exc:
            raise invalid(exc) from exc

    @classmethod
    def coerce(cls, value: object) -> Money:
        """``value`` if it is Money, else Money validated from a mapping such as
        ``{"amount": "10", "currency": "CNY"}``; anything else is an
        :class:`~crm_domain.errors.InvalidCommandError` (not an ``AttributeError`` later)."""
        if isinstance(value, Money):
            return value
        try:
            return cls.model_validate(value)
        except ValidationError as exc:
            raise invalid(exc) from exc

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"


class Address(Immutable):
    line1: str = ""
    line2: str = ""
    city: str = ""
    region: str = ""
    postcode: str = ""
    country: str = ""


class ContactDetails(Immutable):
    """How to reach a customer: validated e-mail and phone, postal address."""

    email: EmailStr | None = None
    phone: PhoneNumber | None = None
    mobile: PhoneNumber | None = None
    address: Address | None = None


class OrderLine(Immutable):
    sku: NonEmptyStr
    description: str = ""
    quantity: Annotated[int, Field(gt=0)]
    unit_price: Money
    customisation: str = ""

    @property
    def total(self) -> Decimal:
        return self.unit_price.amount * self.quantity
