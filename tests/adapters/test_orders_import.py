"""``crm import orders``: many customers per transaction, idempotent re-runs (also after an
interruption), malformed rows named by file and line with nothing of their batch stored."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from adapters.cli import main
from adapters.orders_import import (
    CustomerNaming,
    ImportProgress,
    import_orders,
    parse_map,
    read_csv,
    read_rows,
)
from crm_domain.application import CRM
from crm_domain.errors import CustomerNotFoundError, InvalidCommandError, MalformedRowError

CSV = """cust,when,qty,total,ref
C1,2024-01-05,2,20.00,
C1,2024-01-05,1,5.50,
C2,2024-01-06,1,7.00,A-1
C2,2024-01-06,3,9.00,A-1
C3,2024-02-01,1,1.00,
C4,2024-02-02,4,8.00,
C5,2024-02-03,1,3.00,
"""
MAP = ["cust=customer", "when=date", "qty=quantity", "total=amount", "ref=order"]


def _file(tmp_path: Path, text: str = CSV, name: str = "orders.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _rows(path: Path) -> list[object]:
    return list(read_csv(path, parse_map(MAP)))


def _head(crm: CRM) -> int:
    return int(crm.app.recorder.max_notification_id() or 0)


def test_rows_become_customers_and_orders_in_an_erp_context(tmp_path: Path) -> None:
    crm = CRM(f"sqlite:///{tmp_path / 'crm.sqlite'}")
    try:
        summary = import_orders(crm, _rows(_file(tmp_path)), batch_size=2)
        assert (summary.customers, summary.rows, summary.revenue) == (5, 7, Decimal("53.50"))
        # same-day purchases of C1 stay two orders; C2's two lines share order A-1
        assert summary.orders == 6
        c1 = crm.customer_by_code("ERP-C1")
        log = crm.app.recorder.select_notifications(start=1, limit=1000)
        events = [crm.app.mapper.to_domain_event(n) for n in log]
        opened = [e for e in events if type(e).__name__ == "Opened" and e.customer_id == c1.id]
        assert len(crm.account(opened[0].originator_id).orders) == 2
        assert {e.metadata["source_system"] for e in events if hasattr(e, "metadata")} == {"erp"}
        assert summary.events == _head(crm)
    finally:
        crm.close()


def test_a_re_run_stores_nothing_new(tmp_path: Path) -> None:
    crm = CRM(f"sqlite:///{tmp_path / 'crm.sqlite'}")
    try:
        import_orders(crm, _rows(_file(tmp_path)), batch_size=3)
        head = _head(crm)
        again = import_orders(crm, _rows(_file(tmp_path)), batch_size=2)
        assert _head(crm) == head
        assert (again.customers, again.skipped, again.events) == (0, 5, 0)
    finally:
        crm.close()


def test_an_interrupted_run_carries_on_to_the_same_result(tmp_path: Path) -> None:
    whole = CRM(f"sqlite:///{tmp_path / 'whole.sqlite'}")
    try:
        import_orders(whole, _rows(_file(tmp_path)), batch_size=2)
        expected = _head(whole)
    finally:
        whole.close()
    crm = CRM(f"sqlite:///{tmp_path / 'crm.sqlite'}")

    def stop_after_first_batch(progress: ImportProgress, total: int) -> None:
        raise KeyboardInterrupt

    try:
        with pytest.raises(KeyboardInterrupt):
            import_orders(
                crm, _rows(_file(tmp_path)), batch_size=2, on_progress=stop_after_first_batch
            )
        assert 0 < _head(crm) < expected  # the first batch (C1, two rows) is stored
        rest = import_orders(crm, _rows(_file(tmp_path)), batch_size=2)
        assert (rest.customers, rest.skipped) == (4, 1)
        assert _head(crm) == expected
    finally:
        crm.close()


def test_a_row_a_rule_refuses_names_file_and_line_and_stores_nothing_of_its_batch(
    tmp_path: Path,
) -> None:
    # C4's amount has too many digits for Money: refused when its batch (C3, C4) runs
    path = _file(tmp_path, CSV.replace("C4,2024-02-02,4,8.00", "C4,2024-02-02,4,100000000000000"))
    crm = CRM(f"sqlite:///{tmp_path / 'crm.sqlite'}")
    try:
        with pytest.raises(MalformedRowError) as info:
            import_orders(crm, _rows(path), batch_size=2)
        assert (info.value.file, info.value.line) == (str(path), 7)
        assert str(info.value).startswith(f"{path}:7: ")
        crm.customer_by_code("ERP-C2")  # the batch before it is stored
        for code in ("ERP-C3", "ERP-C4", "ERP-C5"):
            with pytest.raises(CustomerNotFoundError):
                crm.customer_by_code(code)
    finally:
        crm.close()


def test_an_unreadable_row_stops_the_import_before_anything_is_stored(tmp_path: Path) -> None:
    path = _file(tmp_path, CSV + "C6,2024-13-45,1,1.00,\n")
    crm = CRM(f"sqlite:///{tmp_path / 'crm.sqlite'}")
    try:
        with pytest.raises(MalformedRowError, match=r"orders.csv:9: not an order line: date"):
            import_orders(crm, _rows(path), batch_size=2)
        assert _head(crm) == 0
    finally:
        crm.close()


def test_map_and_format_are_checked() -> None:
    assert parse_map(["Kunde=customer"]) == {"customer": "Kunde"}
    with pytest.raises(InvalidCommandError, match="--map 'x=colour'"):
        parse_map(["x=colour"])
    with pytest.raises(InvalidCommandError, match="unknown format"):
        read_rows(Path("x"), "xlsx")


def test_the_command_maps_columns_reports_and_exits_on_a_bad_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _file(tmp_path)
    store = f"sqlite:///{tmp_path / 'crm.sqlite'}"
    args = ["import", "orders", str(path), "--store", store, "--batch-size", "2"]
    maps = [part for m in MAP for part in ("--map", m)]
    assert main([*args, *maps]) == 0
    out = capsys.readouterr()
    assert "imported 5 customers, 6 orders from 7 rows" in out.out
    assert "importing orders.csv: 7/7 rows" in out.err
    assert main([*args, *maps]) == 0
    assert "5 customers were already there" in capsys.readouterr().out
    assert main(args) == 1  # no --map: the columns are not there
    err = capsys.readouterr().err
    assert f"{path}:1: no column for customer" in err
    assert "Traceback" not in err


def test_cdnow_naming_is_the_shortcut_of_the_order_import(tmp_path: Path) -> None:
    log = _file(tmp_path, "00001 19970101 1 11.77\n00001 19970101 2 20.00\n", "cdnow.txt")
    crm = CRM(f"sqlite:///{tmp_path / 'crm.sqlite'}")
    try:
        rows = list(read_rows(log, "cdnow"))
        summary = import_orders(crm, rows, naming=CustomerNaming(code="CDNOW-{ref}"))
        assert (summary.customers, summary.orders) == (1, 2)  # same day: two orders
        crm.customer_by_code("CDNOW-00001")
    finally:
        crm.close()


def test_two_references_with_one_code_name_the_row(tmp_path: Path) -> None:
    path = _file(
        tmp_path, "customer,date,quantity,amount\nab,2024-01-05,1,2.00\nAB,2024-01-06,1,3.00\n"
    )
    crm = CRM(f"sqlite:///{tmp_path / 'crm.sqlite'}")
    try:
        with pytest.raises(MalformedRowError, match=r"orders.csv:3: .*customer code"):
            import_orders(crm, read_csv(path), batch_size=10)
        assert _head(crm) == 0
    finally:
        crm.close()


def test_a_code_claimed_by_another_writer_during_a_batch_is_skipped_on_its_retry(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'crm.sqlite'}"
    crm, other = CRM(url), CRM(url)
    looked_up = crm.look_up_codes
    calls: list[int] = []

    def look_up_then_lose_a_race(codes: object) -> set[str]:
        taken = looked_up(codes)  # type: ignore[arg-type]
        if not calls:  # another writer registers C3 after the batch looked its codes up
            with other.context(actor="someone-else"):
                other.register_customer(kind="individual", name="Else", code="ERP-C3")
        calls.append(1)
        return taken

    crm.look_up_codes = look_up_then_lose_a_race  # type: ignore[method-assign]
    try:
        summary = import_orders(crm, _rows(_file(tmp_path)), batch_size=100)
        assert len(calls) == 2  # the batch was stored on its second try, nothing twice
        assert (summary.customers, summary.skipped) == (4, 1)
        assert crm.customer_by_code("ERP-C3").name == "Else"
        assert {crm.customer_by_code(f"ERP-C{i}").name for i in (1, 2, 4, 5)} == {
            "Customer C1",
            "Customer C2",
            "Customer C4",
            "Customer C5",
        }
    finally:
        crm.close()
        other.close()


def test_the_garbage_collector_is_back_on_after_an_import_and_after_a_failed_one(
    tmp_path: Path,
) -> None:
    import gc

    crm = CRM(f"sqlite:///{tmp_path / 'crm.sqlite'}")
    try:
        assert gc.isenabled()
        import_orders(crm, _rows(_file(tmp_path)), batch_size=2)
        assert gc.isenabled()
        bad = CSV.replace("C", "D").replace("D4,2024-02-02,4,8.00", "D4,2024-02-02,4,1e15")
        with pytest.raises(MalformedRowError, match=r"bad\.csv:7"):
            import_orders(crm, _rows(_file(tmp_path, bad, "bad.csv")), batch_size=2)
        assert gc.isenabled()
    finally:
        crm.close()


def test_an_import_and_its_re_run_on_each_backend(store_url: str, tmp_path: Path) -> None:
    crm = CRM(store_url)
    try:
        first = import_orders(crm, _rows(_file(tmp_path)), batch_size=1)  # prepared
        assert (first.customers, first.orders, first.skipped) == (5, 6, 0)
        head = _head(crm)
        again = import_orders(crm, _rows(_file(tmp_path)), batch_size=1)
        assert (again.customers, again.skipped, _head(crm)) == (0, 5, head)
        from crm_domain.audit.verify import verify_log

        assert verify_log(crm).finding.value == "intact"
        assert crm.customer_by_code("ERP-C2").name == "Customer C2"  # sealed, read back
    finally:
        crm.close()


@pytest.mark.postgres
def test_a_batch_of_hundreds_of_new_customers_on_postgresql(
    postgres_url: str, tmp_path: Path
) -> None:
    # Their keys are stored by the event recorder's cursor in psycopg's pipeline mode:
    # past 500 (two reads back) an executemany there broke the read.
    lines = [f"P{i},2024-01-05,1,2.00," for i in range(600)]
    path = _file(tmp_path, "cust,when,qty,total,ref\n" + "\n".join(lines) + "\n")
    crm = CRM(postgres_url)
    try:
        summary = import_orders(crm, _rows(path), batch_size=1000)
        assert (summary.customers, summary.orders) == (600, 600)
        assert crm.customer_by_code("ERP-P599").name == "Customer P599"
    finally:
        crm.close()
