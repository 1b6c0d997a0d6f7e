"""The ``crm`` exit codes follow the error tree, in one place."""

from __future__ import annotations

from uuid import uuid4

import pytest

from adapters.exit_codes import REJECTED, UNAVAILABLE, USAGE, exit_code_for
from crm_domain.errors import (
    BrokerUnavailableError,
    ConcurrencyConflictError,
    ConfigurationError,
    CustomerNotFoundError,
    InvalidCommandError,
    MissingDependencyError,
    MissingTopicError,
    StoreFullError,
    StoreNotFoundError,
    StoreUnavailableError,
    TicketStateError,
    UnhandledEventError,
    UnknownReadModelError,
)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (InvalidCommandError("bad"), REJECTED),
        (CustomerNotFoundError("ACME"), REJECTED),
        (TicketStateError("closed"), REJECTED),
        (ConcurrencyConflictError(uuid4()), REJECTED),
        (
            UnhandledEventError(
                read_model="x", topic="t", position=1, originator_id=None, reason="r"
            ),
            REJECTED,
        ),
        (ConfigurationError("bad url"), USAGE),
        (MissingDependencyError("PostgreSQL", "postgres", "psycopg"), USAGE),
        (UnknownReadModelError("nosuch", ["customer360"]), USAGE),
        (MissingTopicError(["crm.erp"], "localhost:9092"), USAGE),
        (StoreNotFoundError("no store at x.sqlite"), USAGE),
        (StoreUnavailableError("down"), UNAVAILABLE),
        (StoreFullError("event store", "disk full"), UNAVAILABLE),
        (BrokerUnavailableError("localhost:9092", 5), UNAVAILABLE),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else str(v),
)
def test_each_branch_of_the_tree_has_its_exit_code(error: Exception, code: int) -> None:
    assert exit_code_for(error) == code
