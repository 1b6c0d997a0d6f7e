"""Column types that read back exactly what was written, on SQLite and PostgreSQL alike.

SQLite keeps no time zone and no exact decimals, so times are stored as naive UTC and
returned aware, and amounts as integer ten-thousandths (the domain's 4 decimal places),
which also lets the database add them up exactly.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, DateTime, func, type_coerce
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

#: Amounts are stored in units of 1/SCALE (the domain allows 4 decimal places).
SCALE = 10_000
#: The smallest step of an amount (and of a rate) in the read models: 4 decimal places.
#: ``value.quantize(QUANTUM)`` gives every figure the same shape, however it was computed.
QUANTUM = Decimal(1) / SCALE


class UTCDateTime(TypeDecorator[datetime]):
    """An aware datetime, stored as naive UTC and read back in UTC."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: read models store aware times only")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Amount(TypeDecorator[Decimal]):
    """A money amount, stored exactly as an integer number of ten-thousandths."""

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: Decimal | int | None, dialect: Dialect) -> int | None:
        if value is None:
            return None
        return int((Decimal(value) * SCALE).to_integral_value())

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return (Decimal(int(value)) / SCALE).quantize(QUANTUM)


def to_amount(value: Any) -> Decimal:
    """An amount from a raw SQL aggregate (e.g. ``SUM``) over an :class:`Amount` column."""
    if value is None:
        return Decimal("0.0000")
    return (Decimal(int(value)) / SCALE).quantize(QUANTUM)


def total(column: Any) -> Any:
    """``SUM`` of an :class:`Amount` column as raw ten-thousandths (read with :func:`to_amount`)."""
    return type_coerce(func.sum(column), BigInteger())
