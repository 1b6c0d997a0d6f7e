"""``examples/erp_roundtrip.py`` runs the order round trip with ERP end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "erp_roundtrip.py"


@pytest.mark.kafka
def test_erp_round_trip_example(kafka_bootstrap: str) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLE), "--bootstrap", kafka_bootstrap, "--timeout", "60"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert any(line.endswith("(6,000 CNY): confirmed") for line in lines), result.stdout
    assert any(line.endswith("(27,000 CNY): rejected") for line in lines), result.stdout
    assert "round trip complete" in lines
