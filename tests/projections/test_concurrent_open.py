"""Several processes opening one new PostgreSQL store at the same moment (rebuild workers, a
relay beside the CLI) each create what is missing: the event, snapshot, chain and key
tables with their types, the access log with its trigger function, the read-model and
control tables. Unserialised, PostgreSQL's catalogs race ("tuple concurrently updated",
duplicate keys in pg_type); the schema locks (``crm_domain.infrastructure.schema_lock``)
make them take turns."""

from __future__ import annotations

import multiprocessing
from typing import Any

import pytest

from crm_domain import CRM

pytestmark = pytest.mark.postgres

OPENERS = 5


def _open_store(url: str, start: Any, errors: Any) -> None:
    """One process: wait for the others, then open the CRM and its read models."""
    from projections.runner import open_view

    try:
        start.wait(timeout=60)
        crm = CRM(url)
        open_view(url)
        crm.close()
    except BaseException as exc:
        errors.put(f"{type(exc).__name__}: {exc}")


@pytest.mark.parametrize("attempt", range(2))
def test_many_processes_opening_a_new_store_at_once_all_succeed(
    postgres_url: str, attempt: int
) -> None:
    context = multiprocessing.get_context("spawn")
    start, errors = context.Barrier(OPENERS), context.Queue()
    processes = [
        context.Process(target=_open_store, args=(postgres_url, start, errors))
        for _ in range(OPENERS)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=180)
    found = []
    while not errors.empty():
        found.append(errors.get())
    assert not found
    assert [p.exitcode for p in processes] == [0] * OPENERS
    crm = CRM(postgres_url)
    try:
        crm.register_customer(kind="individual", name="After", code=f"AFTER-{attempt}")
    finally:
        crm.close()
