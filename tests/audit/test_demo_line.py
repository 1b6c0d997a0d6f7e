"""The demo closes with the log verified against its chain and the digest to keep."""

from __future__ import annotations

from adapters.demo import audit_line
from crm_domain import CRM


def test_the_demo_shows_the_verified_log_and_its_digest(sqlite_url: str) -> None:
    crm = CRM(sqlite_url)
    crm.register_customer(kind="individual", name="Demo", code="D-1")
    line = audit_line(crm)
    assert line is not None
    assert line[0] == "tamper evidence"
    assert "2 events verified" in line[1]
    assert "digest 2:" in line[1]
    assert audit_line(CRM("memory://")) is None
