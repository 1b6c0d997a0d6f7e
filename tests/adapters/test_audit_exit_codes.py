"""``crm audit`` outcomes each have an exit code of their own, distinct from the others."""

from __future__ import annotations

from adapters.exit_codes import (
    EVIDENCE_INVALID,
    OK,
    REJECTED,
    TAMPERED,
    UNAVAILABLE,
    UNCHAINED,
    USAGE,
    exit_code_for,
)
from crm_domain.audit.verify import Finding
from crm_domain.errors import AuditEvidenceError, TamperDetectedError, UnchainedHistoryError


def test_every_finding_has_its_own_exit_code() -> None:
    kinds = {f.value for f in Finding} - {"intact", "unchained"}
    assert set(TAMPERED) == kinds
    codes = [OK, REJECTED, USAGE, UNAVAILABLE, UNCHAINED, EVIDENCE_INVALID, *TAMPERED.values()]
    assert len(codes) == len(set(codes))
    for kind, code in TAMPERED.items():
        assert exit_code_for(TamperDetectedError(kind, 7, "x")) == code
    assert exit_code_for(UnchainedHistoryError(3, "x")) == UNCHAINED
    assert exit_code_for(AuditEvidenceError("bad signature")) == EVIDENCE_INVALID
