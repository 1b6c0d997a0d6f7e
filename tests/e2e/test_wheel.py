"""A clean ``pip install`` of the built wheel, without extras, runs ``crm`` (issue 8).

The wheel is built from this checkout and installed into a fresh virtual environment, its
dependencies coming from the package index (or pip's cache); nothing of the development
install leaks in. Slow (a minute or two) but part of every CI run: it is the only test that
sees what a user's ``pip install crm-core`` gets.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]


def _run(args: list[str | Path], cwd: Path, **kwargs: object) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CRM_", "PYTHON", "VIRTUAL"))}
    result = subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, env=env, timeout=900
    )
    assert result.returncode == 0, f"{args}:\n{result.stdout}\n{result.stderr}"
    return result


def test_a_clean_install_of_the_wheel_runs_the_demo(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", wheels, ROOT], tmp_path)
    (wheel,) = wheels.glob("crm_core-*.whl")
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", venv], tmp_path)
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    _run([bin_dir / "python", "-m", "pip", "install", "-q", wheel], tmp_path)
    # not the extras: no psycopg, no test tools
    installed = _run([bin_dir / "python", "-m", "pip", "list"], tmp_path).stdout
    assert "psycopg " not in installed
    work = tmp_path / "work"
    work.mkdir()
    version = _run([bin_dir / "crm", "--version"], work)
    assert version.stdout.startswith("crm-core ")
    demo = _run([bin_dir / "crm", "demo", "--customers", "5"], work)
    assert "events stored" in demo.stdout
    assert "Traceback" not in demo.stderr
    assert (work / "crm-demo.sqlite").is_file()
    no_driver = subprocess.run(
        [bin_dir / "crm", "demo", "--store", "postgresql://crm@127.0.0.1/crm"],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert no_driver.returncode == 2
    assert "pip install 'crm-core[postgres]'" in no_driver.stderr
    assert "Traceback" not in no_driver.stderr
