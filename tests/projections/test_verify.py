"""The drift check finds rows deleted or edited by hand (which ``status`` cannot see), and
``repair`` rewrites them from a rebuild. On SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from projection_history import read_model_rows
from sqlalchemy import delete, select, update

from adapters.demo import run_demo
from crm_domain.application import CRM
from projections.customer360 import customers
from projections.parking import retry
from projections.rebuild import rebuild
from projections.runner import follow, open_view
from projections.status import status
from projections.timeline import entries
from projections.verify import verify


def _clean_rows(store_url: str, tmp_path: Path) -> dict[str, list[object]]:
    clean = f"sqlite:///{tmp_path / 'clean.sqlite'}"
    rebuild(store_url, views_url=clean)
    return read_model_rows(store_url, views_url=clean)


def test_verify_finds_deleted_and_edited_rows_and_repair_fixes_them(
    store_url: str, tmp_path: Path
) -> None:
    app = CRM(store_url)
    run_demo(app, customers=12, seed=4)
    with follow(store_url) as runner:
        runner.wait_until_current(timeout=60)
    assert verify(store_url).ok
    view = open_view(store_url)
    with view.engine.begin() as conn:
        ids = list(conn.execute(select(customers.c.customer_id).order_by("code")).scalars())
        conn.execute(delete(customers).where(customers.c.customer_id == ids[0]))
        conn.execute(
            update(customers).where(customers.c.customer_id == ids[1]).values(name="Edited")
        )
        first_entry = conn.execute(select(entries.c.position).limit(1)).scalar_one()
        conn.execute(delete(entries).where(entries.c.position == first_entry))
    view.engine.dispose()
    assert all(s.lag == 0 for s in status(store_url))  # invisible to status

    report = verify(store_url)
    assert not report.ok
    assert sorted(report.drifted) == ["customer360", "timeline"]
    by_name = {m.name: m for m in report.read_models}
    (c360,) = by_name["customer360"].tables
    assert (c360.table, c360.missing, c360.changed, c360.extra) == (
        "customer360",
        [{"customer_id": ids[0]}],
        [{"customer_id": ids[1]}],
        [],
    )
    (timeline,) = by_name["timeline"].tables
    assert timeline.missing == [{"position": first_entry}]
    assert "customer360 at position" in "\n".join(report.lines())

    repaired = verify(store_url, ["customer360", "timeline"], repair=True)
    assert [m.repaired for m in repaired.read_models] == [True, True]
    assert verify(store_url).ok
    assert read_model_rows(store_url) == _clean_rows(store_url, tmp_path)
    app.close()


def test_a_parked_read_model_is_repaired_then_retried(store_url: str, tmp_path: Path) -> None:
    app = CRM(store_url)
    alice = app.register_customer(kind="individual", name="Alice", code="A")
    app.register_customer(kind="individual", name="Bob", code="B")
    with follow(store_url) as runner:
        runner.wait_until_current(timeout=30)
    view = open_view(store_url, read_models=["customer360"])
    with view.engine.begin() as conn:
        conn.execute(delete(customers).where(customers.c.customer_id == alice))
    view.engine.dispose()
    app.log_contact(alice, channel="sms", direction="inbound", summary="hi")
    with follow(store_url) as runner:
        for _ in range(400):
            if runner.view.control_states()["customer360"].parked is not None:
                break
            runner.run_forever(timeout=0.05)
    (parked,) = status(store_url, read_models=["customer360"])
    assert parked.state == "parked"

    report = verify(store_url, ["customer360"], repair=True)
    (drift,) = report.read_models
    assert (drift.position, drift.repaired) == (parked.position, True)
    assert drift.tables[0].missing == [{"customer_id": alice}]
    assert retry(store_url, "customer360").state == "current"
    assert read_model_rows(store_url) == _clean_rows(store_url, tmp_path)
    app.close()
