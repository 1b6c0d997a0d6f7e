"""Any one edit at any position of an SQLite log is reported at that position (hypothesis)."""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crm_domain import CRM
from crm_domain.audit.verify import Finding, verify_log

EVENTS = 24


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("log") / "crm.sqlite"
    crm = CRM(f"sqlite:///{path}")
    ids = [crm.register_customer(kind="individual", name=f"H {i}", code=f"H-{i}") for i in range(4)]
    for i in range(EVENTS - 8):
        crm.log_contact(ids[i % 4], channel="phone", direction="inbound", summary=f"call {i}")
    crm.close()
    return path


@settings(max_examples=30, deadline=None)
@given(
    kind=st.sampled_from(["modified", "deleted", "reordered"]),
    position=st.integers(1, EVENTS - 1),
    byte=st.integers(0, 10_000),
)
def test_one_edit_anywhere_is_reported_where_it_is(
    pristine: Path, kind: str, position: int, byte: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "crm.sqlite"
        shutil.copy(pristine, path)
        db = sqlite3.connect(path)
        if kind == "modified":
            state = bytearray(
                db.execute("SELECT state FROM stored_events WHERE rowid=?", (position,)).fetchone()[
                    0
                ]
            )
            state[byte % len(state)] ^= 0x01
            db.execute("UPDATE stored_events SET state=? WHERE rowid=?", (bytes(state), position))
        elif kind == "deleted":
            db.execute("DELETE FROM stored_events WHERE rowid=?", (position,))
        else:
            db.execute("UPDATE stored_events SET rowid=-1 WHERE rowid=?", (position,))
            db.execute("UPDATE stored_events SET rowid=? WHERE rowid=?", (position, position + 1))
            db.execute("UPDATE stored_events SET rowid=? WHERE rowid=-1", (position + 1,))
        db.commit()
        db.close()
        crm = CRM(f"sqlite:///{path}")
        report = verify_log(crm, snapshots=False)
        crm.close()
    assert (report.finding, report.position) == (Finding(kind), position), report.summary()
