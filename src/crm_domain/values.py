"""Value objects and closed vocabularies of the CRM domain.

Unknown values are rejected at the edge: a channel, a ticket kind or a currency that is
not listed here fails validation with an error naming the allowed values.

Text and time are bounded here too, once for every command and event (see
``docs/limits.md``): :data:`Name`, :data:`Label`, :data:`Reference`, :data:`ShortText`,
:data:`FreeText`... refuse what a store or a read model cannot hold (NUL, lone
surrogates, control characters, more characters than the read-model columns take), and
:data:`BusinessTime` refuses times whose UTC or local value leaves the calendar.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Annotated, Any, TypeVar

from annotated_types import BaseMetadata
from pydantic import (
    AfterValidator,
    AwareDatetime,
    EmailStr,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    ValidationError,
    ValidationInfo,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

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


# Characters no store or read model takes: NUL (PostgreSQL text refuses it) and lone
# surrogates (not Unicode scalar values: orjson and every UTF-8 encoder refuse them).
# One-line fields take no C0 control at all; free text keeps tab, line feed, return.
_ONE_LINE_REFUSED = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")
_FREE_TEXT_REFUSED = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


def _refused(char: str, multiline: bool) -> str:
    code = f"U+{ord(char):04X}"
    if char == "\x00":
        return f"contains a NUL character ({code}), which the stores cannot hold"
    if "\ud800" <= char <= "\udfff":
        return f"contains a lone surrogate ({code}), which is not valid Unicode text"
    if multiline:
        return (
            f"contains the control character {code}; free text takes tab, "
            "line feed and carriage return only"
        )
    return f"contains the control character {code}; this one-line field takes none"


def _from_history(info: ValidationInfo) -> bool:
    """Whether a stored event is being read (see ``STORED_EVENT_CONTEXT``)."""
    context = info.context
    return isinstance(context, dict) and bool(context.get("stored_event"))


@dataclass(frozen=True)
class TextBounds(BaseMetadata):
    """Length (in characters, as the read-model ``varchar`` columns count them) and the
    characters a text field may hold.

    A pure constraint: it never changes the value, so readers of stored events (see
    :mod:`projections.lazyevent`) may take such fields as plain strings.
    """

    min_length: int
    max_length: int
    multiline: bool = False

    def check(self, value: str) -> str:
        """``value``, or ``ValueError`` saying what is wrong with it."""
        length = len(value)
        if length < self.min_length:
            raise ValueError(f"must have at least {self.min_length} character(s)")
        if length > self.max_length:
            raise ValueError(f"must have at most {self.max_length} characters, got {length}")
        bad = (_FREE_TEXT_REFUSED if self.multiline else _ONE_LINE_REFUSED).search(value)
        if bad is not None:
            raise ValueError(_refused(bad.group(), self.multiline))
        return value

    def _validate(self, value: str, info: ValidationInfo) -> str:
        return value if _from_history(info) else self.check(value)

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.with_info_after_validator_function(self._validate, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema.update(minLength=self.min_length, maxLength=self.max_length)
        return json_schema


#: A person's, company's, account's or opportunity's name: one line, 1-200 characters.
Name = Annotated[str, TextBounds(1, 200)]
#: A short label: a role, segment, grade, stage, owner, actor, purpose (1-100, one line).
#: The read models keep these in ``varchar(100)`` columns.
Label = Annotated[str, TextBounds(1, 100)]
#: An identifier from another system, possibly empty: payment, ERP or shipment reference.
Reference = Annotated[str, TextBounds(0, 100)]
#: One line of a postal address (or city, region, country), possibly empty.
AddressLine = Annotated[str, TextBounds(0, 200)]
#: A postcode, possibly empty.
Postcode = Annotated[str, TextBounds(0, 20)]
#: A required short text: a reason, a subject, a summary, an answer (1-500, may span lines).
ShortText = Annotated[str, TextBounds(1, 500, multiline=True)]
#: An optional short note (0-500, may span lines), e.g. an order line's description.
Note = Annotated[str, TextBounds(0, 500, multiline=True)]
#: Free text, possibly empty: a description, next step, comment, customisation (0-4000).
FreeText = Annotated[str, TextBounds(0, 4000, multiline=True)]
#: An id carried in event metadata (correlation, causation, command id): one line, 1-200.
Identifier = Annotated[str, TextBounds(1, 200)]

#: Kept for callers of earlier releases: the same bound as :data:`ShortText`.
NonEmptyStr = ShortText

#: Business times lie between these instants (UTC). Four-digit years keep every text form
#: of a time the same width (the timeline sorts times as text; ``strftime`` does not pad
#: years before 1000), and ten years before ``datetime.max`` leave room for the SLA
#: calendar to add working time without overflowing.
EARLIEST_BUSINESS_TIME = datetime(1000, 1, 1, tzinfo=UTC)
LATEST_BUSINESS_TIME = datetime(9990, 1, 1, tzinfo=UTC)
_EARLIEST_LOCAL = EARLIEST_BUSINESS_TIME.replace(tzinfo=None)
_LATEST_LOCAL = LATEST_BUSINESS_TIME.replace(tzinfo=None)


def check_business_time(value: datetime) -> datetime:
    """``value`` if it is time-zone aware and within the business-time range, else
    ``ValueError`` (never ``OverflowError`` or ``TypeError``) saying why."""
    if not isinstance(value, datetime):
        raise ValueError(f"not a date and time: {value!r}")
    offset = value.utcoffset()
    if offset is None:
        raise ValueError(f"{value.isoformat()} is not timezone-aware: give an offset (e.g. +00:00)")
    # Compare the local value first: converting an extreme one to UTC would overflow.
    local = value.replace(tzinfo=None)
    earliest, latest = _EARLIEST_LOCAL, _LATEST_LOCAL
    if not earliest <= local < latest or not earliest <= local - offset < latest:
        raise ValueError(
            f"{value.isoformat()} is out of range: business times lie between "
            f"{EARLIEST_BUSINESS_TIME:%Y-%m-%d} and {LATEST_BUSINESS_TIME:%Y-%m-%d} UTC"
        )
    return value


@dataclass(frozen=True)
class TimeBounds(BaseMetadata):
    """A datetime whose UTC and local values stay in the business-time range."""

    def _validate(self, value: datetime, info: ValidationInfo) -> datetime:
        return value if _from_history(info) else check_business_time(value)

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.with_info_after_validator_function(self._validate, handler(source))


#: When something happened or is due in the business: time-zone aware, and between
#: :data:`EARLIEST_BUSINESS_TIME` and :data:`LATEST_BUSINESS_TIME`.
BusinessTime = Annotated[AwareDatetime, TimeBounds()]


@dataclass(frozen=True)
class ListBounds(BaseMetadata):
    """At most ``max_items`` items in a list of one command (checked on what is written
    now; stored history is read as it was written)."""

    max_items: int
    what: str = "items"

    def _validate(self, value: list[Any], info: ValidationInfo) -> list[Any]:
        if not _from_history(info) and len(value) > self.max_items:
            raise ValueError(f"at most {self.max_items} {self.what}, got {len(value)}")
        return value

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.with_info_after_validator_function(self._validate, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema["maxItems"] = self.max_items
        return json_schema


#: Most people named as taking part in one logged contact.
MAX_PARTICIPANTS = 50
#: Most promises recorded in one logged contact.
MAX_COMMITMENTS = 50
#: Most lines in one order.
MAX_ORDER_LINES = 1000


_LABEL = TextBounds(1, 100)
_IDENTIFIER = TextBounds(1, 200)


def check_label(value: object, what: str) -> str:
    """``value`` as a :data:`Label`, or :class:`InvalidCommandError` naming ``what``."""
    return _checked_text(_LABEL, value, what)


def check_identifier(value: object, what: str) -> str:
    """``value`` as an :data:`Identifier`, or :class:`InvalidCommandError` naming ``what``."""
    return _checked_text(_IDENTIFIER, value, what)


def _checked_text(bounds: TextBounds, value: object, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidCommandError(f"invalid {what}: must be text, got {type(value).__name__}")
    try:
        return bounds.check(value)
    except ValueError as exc:
        raise InvalidCommandError(f"invalid {what}: {exc}") from None


def business_time(value: datetime, what: str) -> datetime:
    """``value`` checked as a business time, or :class:`InvalidCommandError` naming ``what``."""
    try:
        return check_business_time(value)
    except ValueError as exc:
        raise InvalidCommandError(f"invalid {what}: {exc}") from None


class CustomerKind(StrEnum):
    """Who the customer is: a person (who can also be an account contact), an enterprise or a
    government body."""

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
    """Who started an interaction: outbound marketing needs the customer's consent."""

    INBOUND = "inbound"
    OUTBOUND = "outbound"


class TicketKind(StrEnum):
    """What a ticket is about; the kind sets its SLA target, and an open complaint stops outbound
    marketing."""

    INQUIRY = "inquiry"
    REQUEST = "request"
    COMPLAINT = "complaint"
    INCIDENT = "incident"


class Priority(StrEnum):
    """Urgency of a ticket: it scales the ticket's SLA target."""

    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


class TicketStatus(StrEnum):
    """Open, then resolved, then closed; a resolved ticket may be reopened, a closed one never."""

    OPEN = "open"
    RESOLVED = "resolved"
    CLOSED = "closed"


class VisitOutcome(StrEnum):
    """How an engineer's field visit ended."""

    #: The problem was fixed on site.
    FIXED = "fixed"
    #: Another visit or parts are needed.
    FOLLOW_UP_NEEDED = "follow_up_needed"
    #: The engineer could not get in (nobody there, no access).
    NO_ACCESS = "no_access"
    #: Not a fault of the product (advice given).
    NO_FAULT_FOUND = "no_fault_found"


class CompanySize(StrEnum):
    """Size band of an account's company (also the first criterion for a key account)."""

    MICRO = "micro"
    SMALL = "small"
    MEDIUM = "medium"
    LARGE = "large"
    ENTERPRISE = "enterprise"


class AccountTier(StrEnum):
    """Commercial tier of an account, set when it opens and changed by reclassifying it."""

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
    """An opportunity has at most one active quote; a new version supersedes it, and only an
    accepted quote can back an order."""

    ACTIVE = "active"
    SUPERSEDED = "superseded"
    ACCEPTED = "accepted"
    EXPIRED = "expired"
    #: Taken back by the seller (e.g. when the deal was won on another quote or lost).
    WITHDRAWN = "withdrawn"


class DiscountApproval(StrEnum):
    """Where a quote stands with the discount policy: a discount beyond the account tier's
    threshold must be approved (by someone other than the rep who asked) before the quote
    is sent or accepted."""

    NOT_REQUIRED = "not_required"
    REQUESTED = "requested"
    APPROVED = "approved"
    REJECTED = "rejected"


class OrderStatus(StrEnum):
    """Placed, sent to ERP for confirmation, then confirmed or rejected (by ERP only); only a
    confirmed order ships, only a shipped or delivered one can be returned, and one not yet
    shipped can be cancelled."""

    PLACED = "placed"
    CONFIRMATION_REQUESTED = "confirmation_requested"
    CONFIRMED = "confirmed"
    REJECTED = "rejected"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    RETURNED = "returned"
    CANCELLED = "cancelled"


class OrderRejectionReason(StrEnum):
    """Why ERP refused to confirm an order: the customer's credit, the margin, or stock
    availability."""

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
        """The class of a 1-5 score: 5 loyal, 3-4 at risk of switching, 1-2 dissatisfied."""
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
    """A postal address; every line is optional, bounded to what the read models hold."""

    line1: AddressLine = ""
    line2: AddressLine = ""
    city: AddressLine = ""
    region: AddressLine = ""
    postcode: Postcode = ""
    country: AddressLine = ""


class ContactDetails(Immutable):
    """How to reach a customer: validated e-mail and phone, postal address."""

    email: EmailStr | None = None
    phone: PhoneNumber | None = None
    mobile: PhoneNumber | None = None
    address: Address | None = None


class OrderLine(Immutable):
    """One product line of an order: a SKU, a positive quantity and a unit price."""

    sku: Label
    description: Note = ""
    quantity: Annotated[int, Field(gt=0, le=1_000_000_000)]
    unit_price: Money
    customisation: FreeText = ""

    @property
    def total(self) -> Decimal:
        """Unit price times quantity, in the unit price's currency."""
        return self.unit_price.amount * self.quantity
