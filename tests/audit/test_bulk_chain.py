"""Bulk writes (one transaction of many aggregates' events, as the history import does)
are chained like single commands."""

from __future__ import annotations

from pathlib import Path

from adapters.cdnow import import_purchases, read_purchases
from crm_domain import CRM
from crm_domain.audit.verify import verify_log


def test_a_bulk_import_is_chained(store_url: str, tmp_path: Path) -> None:
    lines = "".join(
        f" {c:05d} 199701{d:02d}  1   {c + d}.50\n" for c in range(1, 13) for d in range(1, 4)
    )
    source = tmp_path / "cdnow.txt"
    source.write_text(lines)
    crm = CRM(store_url)
    try:
        import_purchases(crm, read_purchases(source), max_customers=12)
        with crm.bulk():
            for i in range(20):
                crm.register_customer(kind="individual", name=f"Bulk {i}", code=f"BK-{i}")
        head = crm.app.recorder.max_notification_id()
        report = verify_log(crm)
    finally:
        crm.close()
    assert report.intact, report.summary()
    assert report.events == head
