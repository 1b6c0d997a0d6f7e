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
    OrdersImportSummary,
    import_orders,
    parse_map,
    read_csv,
    read_rows,
)
from crm_domain.account import Account
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
    out = capsys.readouterr().out
    assert "imported 0 customers, 0 orders from 0 rows" in out
    assert "5 customers were already there, 6 orders were already imported" in out
    # a later file: a new order of C1 (known) and a new customer C6
    later = _file(tmp_path, CSV + "C1,2024-03-01,1,4.00,\nC6,2024-03-02,1,2.00,\n", "later.csv")
    assert main(["import", "orders", str(later), "--store", store, *maps]) == 0
    out = capsys.readouterr().out
    assert "imported 1 customers, 2 orders from 2 rows" in out
    assert "5 customers were already there, 6 orders were already imported" in out
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


def test_a_code_claimed_by_another_writer_during_a_batch_is_known_on_its_retry(
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
        assert (summary.customers, summary.skipped, summary.orders) == (4, 1, 6)
        assert crm.customer_by_code("ERP-C3").name == "Else"
        # C3 had no account: the import opened one for its order
        assert [o.total.amount for o in _account_of(crm, "ERP-C3").orders.values()] == [
            Decimal("1.00")
        ]
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


# ----- idempotent per order: a second file, new orders of customers imported before ---------

# File A: X buys twice the same thing on one day (two orders, no reference) and places order
# R-1 of two lines; Y buys once.
FILE_A = """customer,date,quantity,amount,order
X,2024-01-05,1,10.00,
X,2024-01-05,1,10.00,
X,2024-01-07,2,6.00,R-1
X,2024-01-07,1,4.00,R-1
Y,2024-01-08,3,9.00,
"""
# File B (next month, overlapping A by a few days as ERP exports often do): X's R-1 again
# (already imported, even with another line: the reference is the order), X's two same-day
# purchases again, a new purchase of X, X's new order R-2, and a new customer Z.
FILE_B = """customer,date,quantity,amount,order
X,2024-01-05,1,10.00,
X,2024-01-05,1,10.00,
X,2024-01-07,2,6.00,R-1
X,2024-01-07,1,4.00,R-1
X,2024-01-07,5,1.00,R-1
X,2024-02-03,1,10.00,
X,2024-02-04,4,8.00,R-2
Z,2024-02-05,1,7.50,
"""


def _import(
    crm: CRM, tmp_path: Path, text: str, name: str, batch_size: int = 100
) -> OrdersImportSummary:
    return import_orders(crm, read_csv(_file(tmp_path, text, name)), batch_size=batch_size)


def _account_of(crm: CRM, code: str) -> Account:
    """The one account of a customer (found from the log: the import opened it)."""
    customer = crm.customer_by_code(code).id
    log = crm.app.recorder.select_notifications(start=1, limit=100_000)
    events = (crm.app.mapper.to_domain_event(n) for n in log)
    accounts = [
        e.originator_id
        for e in events
        if type(e).__name__ == "Opened" and getattr(e, "customer_id", None) == customer
    ]
    assert len(accounts) == 1
    return crm.account(accounts[0])


def test_a_second_file_adds_the_new_orders_of_customers_imported_before(
    store_url: str, tmp_path: Path
) -> None:
    crm = CRM(store_url)
    try:
        a = _import(crm, tmp_path, FILE_A, "a.csv")
        assert (a.customers, a.skipped, a.orders, a.orders_skipped) == (2, 0, 4, 0)
        x = _account_of(crm, "ERP-X")
        assert len(x.orders) == 3
        head = _head(crm)

        b = _import(crm, tmp_path, FILE_B, "b.csv")
        # Z is new; X is known: its purchase of 3 Feb and R-2 are stored, on its account
        assert (b.customers, b.skipped) == (1, 1)
        assert (b.orders, b.orders_skipped, b.rows) == (3, 3, 3)
        assert b.revenue == Decimal("25.50")
        assert _head(crm) > head
        after = _account_of(crm, "ERP-X")
        assert after.id == x.id
        totals = sorted(
            (o.placed_at.date().isoformat(), o.erp_reference, o.total.amount)
            for o in after.orders.values()
        )
        assert totals == [
            ("2024-01-05", "", Decimal("10.00")),
            ("2024-01-05", "", Decimal("10.00")),
            ("2024-01-07", "R-1", Decimal("10.00")),  # as first imported: two lines
            ("2024-02-03", "", Decimal("10.00")),
            ("2024-02-04", "R-2", Decimal("8.00")),
        ]
        assert len(_account_of(crm, "ERP-Z").orders) == 1
        assert len(_account_of(crm, "ERP-Y").orders) == 1

        # importing either file again stores nothing new
        head = _head(crm)
        again_a = _import(crm, tmp_path, FILE_A, "a.csv", batch_size=1)
        again_b = _import(crm, tmp_path, FILE_B, "b.csv", batch_size=1)
        assert _head(crm) == head
        assert (again_a.customers, again_a.skipped, again_a.orders) == (0, 2, 0)
        assert again_a.orders_skipped == 4
        assert (again_b.customers, again_b.skipped, again_b.orders) == (0, 2, 0)
        assert (again_b.orders_skipped, again_b.events) == (6, 0)
        from crm_domain.audit.verify import verify_log

        assert verify_log(crm).finding.value == "intact"
    finally:
        crm.close()


def test_identical_purchases_of_one_day_are_counted_by_occurrence(tmp_path: Path) -> None:
    crm = CRM(f"sqlite:///{tmp_path / 'crm.sqlite'}")
    same = "X,2024-03-01,2,5.00\n"
    header = "customer,date,quantity,amount\n"
    try:
        assert _import(crm, tmp_path, header + same * 2, "a.csv").orders == 2
        # the same two again, and a third: the third is a new order
        third = _import(crm, tmp_path, header + same * 3, "b.csv")
        assert (third.orders, third.orders_skipped) == (1, 2)
        # the ambiguity: a file repeating ONE of them takes it as the same order
        one = _import(crm, tmp_path, header + same, "c.csv")
        assert (one.orders, one.orders_skipped) == (0, 1)
        # another quantity, amount or day is another order; so is an amount that does not
        # divide into cents (stored as one line of the total)
        other = _import(
            crm,
            tmp_path,
            header
            + "X,2024-03-01,1,5.00\nX,2024-03-01,2,6.00\nX,2024-03-02,2,5.00\n"
            + "X,2024-03-01,3,10.00\nX,2024-03-01,3,10.00\n",
            "d.csv",
        )
        assert (other.orders, other.orders_skipped) == (5, 0)
        again = _import(
            crm, tmp_path, header + "X,2024-03-01,3,10.00\nX,2024-03-01,3,10.00\n", "e.csv"
        )
        assert (again.orders, again.orders_skipped) == (0, 2)
        assert len(_account_of(crm, "ERP-X").orders) == 8
    finally:
        crm.close()


def test_an_order_reference_is_per_customer(tmp_path: Path) -> None:
    crm = CRM(f"sqlite:///{tmp_path / 'crm.sqlite'}")
    header = "customer,date,quantity,amount,order\n"
    try:
        _import(crm, tmp_path, header + "X,2024-01-05,1,10.00,SO-9\n", "a.csv")
        # SO-9 of Y is another order; SO-9 of X on another day is X's SO-9 (already there)
        b = _import(
            crm,
            tmp_path,
            header + "Y,2024-01-05,1,10.00,SO-9\nX,2024-05-05,1,99.00,SO-9\n",
            "b.csv",
        )
        assert (b.customers, b.skipped, b.orders, b.orders_skipped) == (1, 1, 1, 1)
    finally:
        crm.close()


def test_a_failed_batch_of_a_second_file_stores_nothing_and_its_rerun_completes_it(
    store_url: str, tmp_path: Path
) -> None:
    crm = CRM(store_url)
    try:
        _import(crm, tmp_path, FILE_A, "a.csv")
        head = _head(crm)
        # Z's amount has too many digits for Money: refused after X's new orders were
        # decided in the same batch (one transaction): none of them is stored
        bad = FILE_B.replace("Z,2024-02-05,1,7.50", "Z,2024-02-05,1,100000000000000")
        with pytest.raises(MalformedRowError, match=r"b\.csv:9: "):
            _import(crm, tmp_path, bad, "b.csv")
        assert _head(crm) == head
        assert len(_account_of(crm, "ERP-X").orders) == 3

        # interrupted after its first batch (X's new orders): the rerun stores the rest
        def interrupt(progress: ImportProgress, total: int) -> None:
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            import_orders(
                crm, read_csv(_file(tmp_path, FILE_B, "b.csv")), batch_size=5, on_progress=interrupt
            )
        assert len(_account_of(crm, "ERP-X").orders) == 5
        with pytest.raises(CustomerNotFoundError):
            crm.customer_by_code("ERP-Z")
        rest = _import(crm, tmp_path, FILE_B, "b.csv", batch_size=5)
        assert (rest.customers, rest.skipped, rest.orders, rest.orders_skipped) == (1, 1, 1, 5)
        done = _head(crm)
        assert _import(crm, tmp_path, FILE_B, "b.csv").events == 0
        assert _head(crm) == done
    finally:
        crm.close()
    # the same store as one uninterrupted run of A then B
    whole = CRM(f"sqlite:///{tmp_path / 'whole.sqlite'}")
    try:
        _import(whole, tmp_path, FILE_A, "a.csv")
        _import(whole, tmp_path, FILE_B, "b.csv")
        assert _head(whole) == done
    finally:
        whole.close()


def test_a_first_import_reads_nothing_more_and_known_customers_one_load_each(
    tmp_path: Path,
) -> None:
    crm = CRM(f"sqlite:///{tmp_path / 'crm.sqlite'}")
    scans: list[object] = []
    select = crm.app.recorder.select_notifications

    def counted_select(*args: object, **kwargs: object) -> object:
        scans.append(args)
        return select(*args, **kwargs)  # type: ignore[arg-type]

    crm.app.recorder.select_notifications = counted_select  # type: ignore[method-assign]
    loads: list[object] = []
    get = crm.app.repository.get

    def counted_get(aggregate_id: object, **kwargs: object) -> object:
        loads.append(aggregate_id)
        return get(aggregate_id, **kwargs)  # type: ignore[arg-type]

    crm.app.repository.get = counted_get  # type: ignore[method-assign]
    try:
        _import(crm, tmp_path, FILE_A, "a.csv", batch_size=2)
        assert (scans, loads) == ([], [])  # new customers: no reads beyond the code look-up
        x, y = _account_of(crm, "ERP-X").id, _account_of(crm, "ERP-Y").id
        scans.clear()
        loads.clear()
        _import(crm, tmp_path, FILE_A, "a.csv", batch_size=2)
        # known customers, nothing new: their account loaded once each (not per row)
        assert sorted(map(str, loads)) == sorted(map(str, [x, y]))
    finally:
        crm.close()


def test_new_orders_of_a_known_customer_go_on_their_open_account_every_rule_on(
    tmp_path: Path,
) -> None:
    crm = CRM(f"sqlite:///{tmp_path / 'crm.sqlite'}")
    try:
        _import(crm, tmp_path, FILE_A, "a.csv")
        first = _account_of(crm, "ERP-X").id
        crm.close_account(first, reason="moved to the key-account team")
        # a closed account takes no orders: the rule refuses B's first new order of X
        with pytest.raises(MalformedRowError, match=r"b\.csv:7: .*closed"):
            _import(crm, tmp_path, FILE_B, "b.csv")
        # X gets a second account: the new orders go there; A's orders on the closed one
        # are still found (the identity is per customer, over all their accounts)
        x = crm.customer_by_code("ERP-X").id
        second = crm.open_account(customer_id=x, name="X key account")
        b = _import(crm, tmp_path, FILE_B, "b.csv")
        assert (b.orders, b.orders_skipped) == (3, 3)
        assert len(crm.account(first).orders) == 3
        assert len(crm.account(second).orders) == 2
    finally:
        crm.close()
