"""The Python examples in the README and docs/ run as written.

docs/adapters.md needs a broker: tests/adapters run the same calls.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [
    ROOT / "README.md",
    ROOT / "docs" / "architecture.md",
    ROOT / "docs" / "projections.md",
    ROOT / "docs" / "configuration.md",
    ROOT / "docs" / "audit.md",
]


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), re.S)


@pytest.mark.parametrize(
    ("doc", "index"),
    [(doc, i) for doc in DOCS for i in range(len(python_blocks(doc)))],
    ids=lambda v: v.name if isinstance(v, Path) else str(v),
)
def test_documented_example_runs(doc: Path, index: int, tmp_path: Path) -> None:
    code = python_blocks(doc)[index]
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"{doc.name} example {index} failed:\n{result.stderr}"


def test_every_doc_has_examples() -> None:
    assert all(python_blocks(doc) for doc in DOCS)
