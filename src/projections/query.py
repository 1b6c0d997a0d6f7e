"""Shared shapes of query answers: pages of typed items, and how to ask for one."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine, Select, func, select

from crm_domain.errors import InvalidCommandError

T = TypeVar("T")

#: Largest page a query returns; bigger requests are refused, not silently cut.
MAX_PAGE_SIZE = 500


class Answer(BaseModel):
    """Base of every query answer: immutable, extra fields forbidden."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Page(Answer, Generic[T]):
    """One page of a longer list; ``total`` counts every item matching the filters."""

    items: list[T]
    total: int
    page: int = Field(ge=1)
    page_size: int

    @property
    def pages(self) -> int:
        """How many pages the whole answer takes (at least one)."""
        return max(1, -(-self.total // self.page_size))


def check_paging(page: int, page_size: int) -> None:
    """Raise ``InvalidCommandError`` for a page below 1 or a page size out of range."""
    if page < 1:
        raise InvalidCommandError(f"page must be 1 or more, not {page}")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidCommandError(
            f"page_size must be between 1 and {MAX_PAGE_SIZE}, not {page_size}"
        )


def paged(
    engine: Engine,
    stmt: Select[Any],
    convert: Callable[[Any], T],
    page: int,
    page_size: int,
) -> Page[T]:
    """Run ``stmt`` (already filtered and ordered) for one page, with the total count."""
    check_paging(page, page_size)
    with engine.connect() as conn:
        total = conn.execute(
            select(func.count()).select_from(stmt.order_by(None).subquery())
        ).scalar_one()
        rows: Sequence[Any] = (
            conn.execute(stmt.limit(page_size).offset((page - 1) * page_size)).mappings().all()
        )
    return Page[T](items=[convert(r) for r in rows], total=total, page=page, page_size=page_size)
