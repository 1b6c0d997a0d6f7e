"""``crm projections status|verify|retry|skip``: an operator finds and resumes a parked model."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import delete

from adapters.cli import main
from crm_domain.application import CRM
from projections.customer360 import customers
from projections.runner import follow, open_view


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _park_customer360(store: str) -> int:
    """A customer-360 row deleted by hand, then an event for that customer: it parks."""
    crm = CRM(store)
    alice = crm.register_customer(kind="individual", name="Alice", code="A")
    crm.register_customer(kind="individual", name="Bob", code="B")
    with follow(store) as runner:
        runner.wait_until_current(timeout=20)
    view = open_view(store, read_models=["customer360"])
    with view.engine.begin() as conn:
        conn.execute(delete(customers).where(customers.c.customer_id == alice))
    view.engine.dispose()
    crm.log_contact(alice, channel="sms", direction="inbound", summary="hi")
    crm.close()
    with follow(store) as runner:
        head = runner.head()
        deadline = time.monotonic() + 20
        while (runner.view.position("timeline", runner.app_name) or 0) < head:
            assert time.monotonic() < deadline
            runner.run_forever(timeout=0.05)
    return head


def test_status_shows_the_parked_read_model_and_verify_finds_the_deleted_row(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    head = _park_customer360(sqlite_url)
    capsys.readouterr()

    code, out, err = run(["projections", "status", "--store", sqlite_url, "-f", "json"], capsys)
    assert code == 0, err
    assert '"parked"' in out
    assert "customer360" in out
    assert str(head) in out

    code, out, _ = run(["projections", "verify", "customer360", "--store", sqlite_url], capsys)
    assert code == 1
    assert "--repair" in out

    code, out, err = run(["projections", "retry", "customer360", "--store", sqlite_url], capsys)
    assert code == 1, "the row is still missing: the event fails again"
    assert "parked again" in err

    code, out, err = run(
        ["projections", "verify", "customer360", "--repair", "--store", sqlite_url], capsys
    )
    assert code == 0, err
    code, out, err = run(["projections", "retry", "customer360", "--store", sqlite_url], capsys)
    assert code == 0, err
    assert "current" in out


def test_skip_needs_the_parked_position_and_a_reason(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    head = _park_customer360(sqlite_url)
    capsys.readouterr()
    base = ["projections", "skip", "customer360", "--store", sqlite_url]

    code, _, err = run([*base, "--position", str(head)], capsys)
    assert code == 2
    assert "--reason" in err

    code, _, err = run([*base, "--position", str(head + 5), "--reason", "row gone"], capsys)
    assert code == 1
    assert "Traceback" not in err

    code, out, err = run(
        [*base, "--position", str(head), "--reason", "row deleted by hand", "--actor", "ops"],
        capsys,
    )
    assert code == 0, err
    assert "current" in out


def test_rebuild_takes_a_row_budget_and_refuses_a_useless_one(
    sqlite_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--row-budget`` reaches the rebuild (a tiny budget writes in chunks, same rows); the
    rebuild runs in one process (all or nothing) unless ``--workers`` says otherwise."""
    import projections.rebuild as rebuild_module

    crm = CRM(sqlite_url)
    for i in range(4):
        customer = crm.register_customer(kind="individual", name=f"P{i}", code=f"P{i}")
        crm.log_contact(customer, channel="sms", direction="inbound", summary="hi")
    crm.close()
    budgets: list[int] = []
    workers: list[int] = []
    real = rebuild_module.rebuild

    def recording(*args: object, **kwargs: object) -> rebuild_module.RebuildResult:
        budgets.append(kwargs["row_budget"])  # type: ignore[arg-type]
        workers.append(kwargs["workers"])  # type: ignore[arg-type]
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(rebuild_module, "rebuild", recording)

    def rows() -> list[tuple[object, ...]]:
        view = open_view(sqlite_url, read_models=["customer360"])
        try:
            with view.engine.connect() as conn:
                return sorted(tuple(r) for r in conn.execute(customers.select()))
        finally:
            view.engine.dispose()

    code, _, err = run(["projections", "rebuild", "--all", "--store", sqlite_url], capsys)
    assert code == 0, err
    whole = rows()
    code, _, err = run(
        ["projections", "rebuild", "--all", "--row-budget", "3", "--store", sqlite_url], capsys
    )
    assert code == 0, err
    assert rows() == whole
    assert len(whole) == 4
    assert budgets == [rebuild_module.DEFAULT_ROW_BUDGET, 3]
    assert workers == [1, 1]
    code, _, err = run(
        ["projections", "rebuild", "--all", "--workers", "2", "--store", sqlite_url], capsys
    )
    assert code == 0, err
    assert workers[-1] == 2
    code, _, err = run(
        ["projections", "rebuild", "--all", "--row-budget", "0", "--store", sqlite_url], capsys
    )
    assert code == 2
    assert "--row-budget" in err
