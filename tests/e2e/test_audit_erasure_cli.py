"""The ``crm`` commands shown in docs/audit.md's "Erasure" section run as written."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

from crm_domain import CRM
from crm_domain.personal import REDACTED

AUDIT = Path(__file__).resolve().parents[2] / "docs" / "audit.md"
CRM_BIN = Path(sys.executable).with_name("crm")


def erasure_commands() -> list[str]:
    text = AUDIT.read_text(encoding="utf-8")
    section = text.split("## Erasure", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```console\n(.*?)```", section, re.S)
    return [line[2:] for block in blocks for line in block.splitlines() if line.startswith("$ ")]


def test_the_documented_forget_command_erases_the_customer(tmp_path: Path) -> None:
    commands = erasure_commands()
    assert commands
    crm = CRM(f"sqlite:///{tmp_path / 'crm.sqlite'}")
    customer_id = crm.register_customer(
        kind="individual", name="Wang Fang", code="P-2", contact={"email": "wf@example.org"}
    )
    crm.close()
    for command in commands:
        argv = shlex.split(command)
        assert argv[0] == "crm"
        result = subprocess.run(
            [str(CRM_BIN), *argv[1:]], cwd=tmp_path, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stderr
        assert "personal data erased" in result.stdout
    assert CRM(f"sqlite:///{tmp_path / 'crm.sqlite'}").customer(customer_id).name == REDACTED
