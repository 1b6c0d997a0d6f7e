"""The examples run as a developer would run them: a fresh interpreter, no server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_embed_example_runs(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "CRM_STORE_URL"}
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "embed.py")],
        cwd=tmp_path,  # it must not need, or leave, anything in the working directory
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Retried sign-up stored nothing new: True" in out
    assert "Re-sent call form stored nothing new: True" in out
    assert "Rejected: customer code 'acme-001' is already taken" in out
    assert "earlier issue: 'Parcel scanner offline' (resolved)" in out
    assert "Open tickets: 1" in out
    trail = out[out.index("Audit trail for ACME-001:") :].splitlines()[1:-1]
    assert [line.split()[1] for line in trail] == [
        "Registered",
        "ManagerAssigned",
        "ContactLogged",
        "TicketOpened",
        "TicketResolved",
        "ManagerAssigned",
        "ContactLogged",
        "TicketOpened",
    ]
    assert "by sales.lead" in trail[5]
    assert "li.wei left" in trail[5]
    assert "by agent.chen" in trail[4]
    assert "Replaced the unit" in trail[4]
    assert out.rstrip().splitlines()[-1] == "Events stored: 17"
    assert list(tmp_path.iterdir()) == []
