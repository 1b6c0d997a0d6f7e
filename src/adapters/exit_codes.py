"""The ``crm`` command line's exit codes: the one place errors become process statuses.

0 ok, 1 the CRM said no, 2 usage or configuration, 3 a service stayed unreachable (or
its database is full: free space and run again; or a report's read models are being
rebuilt: run it again when the rebuild is done). A
supervisor can so tell "fix the request" from "fix the configuration" from "retry later".

``crm audit verify`` says what it found with a code of its own (a monitor alerts on each):
10 an event modified, 11 deleted, 12 inserted, 13 reordered, 14 a snapshot edited,
15 events stored before the chain began (run ``crm audit seal``); ``crm audit
verify-export`` and the proof checks exit 16 when the evidence does not verify.
"""

from __future__ import annotations

from crm_domain.errors import (
    AuditEvidenceError,
    BrokerUnavailableError,
    ConfigurationError,
    ReadModelRebuildingError,
    StoreFullError,
    StoreNotFoundError,
    StoreUnavailableError,
    TamperDetectedError,
    UnchainedHistoryError,
)

OK = 0
REJECTED = 1
USAGE = 2
UNAVAILABLE = 3
#: ``crm audit verify``: the first problem's kind (see :mod:`crm_domain.audit.verify`).
TAMPERED = {
    "modified": 10,
    "deleted": 11,
    "inserted": 12,
    "reordered": 13,
    "snapshot": 14,
}
UNCHAINED = 15
EVIDENCE_INVALID = 16


def exit_code_for(exc: BaseException) -> int:
    """The exit code for an error that stopped a command."""
    if isinstance(exc, TamperDetectedError):
        return TAMPERED.get(exc.kind, REJECTED)
    if isinstance(exc, UnchainedHistoryError):
        return UNCHAINED
    if isinstance(exc, AuditEvidenceError):
        return EVIDENCE_INVALID
    if isinstance(
        exc,
        StoreUnavailableError | StoreFullError | BrokerUnavailableError | ReadModelRebuildingError,
    ):
        return UNAVAILABLE
    if isinstance(exc, ConfigurationError | StoreNotFoundError):
        return USAGE
    return REJECTED
