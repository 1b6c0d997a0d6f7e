"""Fixtures for the ``crm`` command line: a clean environment and a small store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from crm_domain.application import CRM


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No CRM_* settings from the caller's shell; work in an empty folder (no crm.toml)."""
    import os

    for name in list(os.environ):
        if name.upper().startswith("CRM_") and not name.upper().startswith("CRM_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("COLUMNS", "80")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


@pytest.fixture(autouse=True)
def restore_log_levels() -> Iterator[None]:
    """``crm -v`` sets logger levels process-wide; put them back for the next test."""
    import logging

    names = ("kafka", "adapters", "projections", "crm_domain")
    levels = {name: logging.getLogger(name).level for name in names}
    yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


@pytest.fixture
def small_store(tmp_path: Path) -> str:
    """An SQLite store with one enterprise customer (code ``ACME``) and a deal."""
    url = f"sqlite:///{tmp_path / 'small.sqlite'}"
    crm = CRM(url)
    try:
        with crm.context(actor="li.wei"):
            acme = crm.register_customer(kind="enterprise", name="Acme Ltd", code="ACME")
            crm.assign_customer_manager(acme, manager="li.wei", reason="new customer")
    finally:
        crm.close()
    return url
