"""The ``crm`` command line's exit codes: the one place errors become process statuses.

0 ok, 1 the CRM said no, 2 usage or configuration, 3 a service stayed unreachable (or
its database is full: free space and run again). A
supervisor can so tell "fix the request" from "fix the configuration" from "retry later".
"""

from __future__ import annotations

from crm_domain.errors import (
    BrokerUnavailableError,
    ConfigurationError,
    StoreFullError,
    StoreNotFoundError,
    StoreUnavailableError,
)

OK = 0
REJECTED = 1
USAGE = 2
UNAVAILABLE = 3


def exit_code_for(exc: BaseException) -> int:
    """The exit code for an error that stopped a command."""
    if isinstance(exc, StoreUnavailableError | StoreFullError | BrokerUnavailableError):
        return UNAVAILABLE
    if isinstance(exc, ConfigurationError | StoreNotFoundError):
        return USAGE
    return REJECTED
