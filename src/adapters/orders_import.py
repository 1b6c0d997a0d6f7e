"""Import an ERP order history: one row per order line, many customers per transaction.

``crm import orders FILE --format cdnow|csv [--map column=field ...]`` reads rows with a
customer reference, a date, a quantity, an amount and (optionally) an order reference.
Each customer (code ``<prefix><reference>``) is registered with one account, and each
order is replayed as ERP confirmed, shipped, delivered, invoiced and (if above zero) paid
it, at the row's date (business time). Rows of one customer that share an order
reference are the lines of one order; rows without one are an order each, so two
purchases of one customer on one day stay two orders.

Every command goes through :meth:`crm_domain.application.CRM.handle` with every rule
check on, in an ERP-source context (the orders stream's contract: ERP history counts as
ERP), and is stored through the same recorders and mapper as any other command.

Batches: a customer's whole history is imported in one transaction, together with other
customers' up to ``batch_size`` rows. So the import is idempotent by customer: a re-run
(also after an interrupted run) skips the customers whose code is taken and stores
nothing twice. A row that cannot be read stops the import before anything is stored; a
row a rule refuses stops it with nothing of its batch stored (the batches before it
stay). Either way :class:`~crm_domain.errors.MalformedRowError` names the file and line.
New orders for customers imported before are not picked up by a re-run: ongoing orders
come from ERP through the inbound Kafka consumer.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from uuid import UUID

from pydantic import ValidationError

from crm_domain.application import CRM
from crm_domain.errors import (
    ConcurrencyConflictError,
    InvalidCommandError,
    MalformedRowError,
    RejectedError,
    problems,
)
from crm_domain.infrastructure.collector import fewer_gc_passes
from crm_domain.values import Money, OrderLine

#: Rows per transaction (whole customers: a batch may exceed it by one customer's rows).
DEFAULT_BATCH_SIZE = 2000
#: The fields a row maps to; ``order`` is optional.
FIELDS = ("customer", "date", "quantity", "amount", "order")
#: Date formats tried for a ``date`` column, in order.
DATE_FORMATS = ("%Y-%m-%d", "%Y%m%d", "%Y-%m-%dT%H:%M:%S", "%d.%m.%Y", "%m/%d/%Y")


@dataclass(frozen=True)
class OrderRow:
    """One order line of an imported file, with the file and line it came from."""

    customer: str
    day: datetime
    quantity: int
    amount: Decimal
    order: str | None
    file: str
    line: int


@dataclass
class ImportProgress:
    """Counts so far: rows read, rows imported, events stored, customers, and the rate."""

    rows: int = 0
    imported_rows: int = 0
    events: int = 0
    customers: int = 0
    skipped: int = 0
    total_rows: int = 0
    total_customers: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def rate(self) -> float:
        """Events stored per second so far."""
        elapsed = time.monotonic() - self.started
        return self.events / elapsed if elapsed > 0 else 0.0


@dataclass
class OrdersImportSummary:
    """What an import did: customers imported and skipped, orders, rows, events, revenue."""

    customers: int = 0
    skipped: int = 0
    orders: int = 0
    rows: int = 0
    events: int = 0
    revenue: Decimal = Decimal(0)
    seconds: float = 0.0


@dataclass(frozen=True)
class CustomerNaming:
    """How imported customers are coded and named (``{ref}`` is the file's reference)."""

    code: str = "ERP-{ref}"
    name: str = "Customer {ref}"
    account: str = "{ref}"
    currency: str = "USD"
    sku: str = "ITEM"
    actor: str = "order-import"


# ----- reading ------------------------------------------------------------------------------


def parse_map(pairs: Sequence[str]) -> dict[str, str]:
    """``column=field`` pairs (``--map``) as field -> column; fields are :data:`FIELDS`."""
    mapping: dict[str, str] = {}
    for pair in pairs:
        column, sep, name = pair.partition("=")
        if not sep or not column.strip() or name.strip() not in FIELDS:
            raise InvalidCommandError(
                f"--map {pair!r}: expected COLUMN=FIELD with FIELD one of {', '.join(FIELDS)}"
            )
        mapping[name.strip()] = column.strip()
    return mapping


def _day(text: str) -> datetime:
    for fmt in DATE_FORMATS:
        try:
            return datetime.strptime(text.strip(), fmt).replace(hour=12, tzinfo=UTC)
        except ValueError:
            continue
    raise ValueError(f"date {text!r} is in none of the formats {', '.join(DATE_FORMATS)}")


def _cdnow_day(text: str) -> datetime:
    return datetime.strptime(text, "%Y%m%d").replace(hour=12, tzinfo=UTC)


def _row(
    file: str,
    line: int,
    customer: str,
    day: str,
    quantity: str,
    amount: str,
    order: str | None,
    *,
    what: str = "an order line",
    parse_day: Callable[[str], datetime] = _day,
) -> OrderRow:
    try:
        if not customer.strip():
            raise ValueError("no customer reference")
        qty = int(quantity)
        if qty < 1:
            raise ValueError(f"quantity {qty} is below 1")
        value = Decimal(amount)
        if not value.is_finite() or value < 0:
            raise ValueError(f"amount {amount!r} is not a positive number")
        return OrderRow(
            customer=customer.strip(),
            day=parse_day(day),
            quantity=qty,
            amount=value,
            order=(order or "").strip() or None,
            file=file,
            line=line,
        )
    except (ValueError, InvalidOperation) as exc:
        raise MalformedRowError(file, line, f"not {what}: {exc}") from exc


def read_cdnow(path: Path) -> Iterator[OrderRow]:
    """Order lines from either CDNOW layout (``customer_id [sample_id] date cds value``)."""
    name = str(path)
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            parts = line.split()
            if not parts or parts[0] == "customer_id":
                continue
            if len(parts) == 5:
                customer, _, day, cds, value = parts
            elif len(parts) == 4:
                customer, day, cds, value = parts
            else:
                raise MalformedRowError(
                    name, number, f"not a CDNOW purchase: expected 4 or 5 columns, got {len(parts)}"
                )
            yield _row(
                name,
                number,
                customer,
                day,
                cds,
                value,
                None,
                what="a CDNOW purchase",
                parse_day=_cdnow_day,
            )


def read_csv(path: Path, mapping: Mapping[str, str] | None = None) -> Iterator[OrderRow]:
    """Order lines from a CSV file with a header; ``mapping`` names the column of each field
    (default: the field's own name; ``order`` may be missing)."""
    name = str(path)
    columns = {f: (mapping or {}).get(f, f) for f in FIELDS}
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        missing = [f"{f} (column {columns[f]!r})" for f in FIELDS[:4] if columns[f] not in header]
        if missing:
            raise MalformedRowError(name, 1, f"no column for {', '.join(missing)}")
        order_column = columns["order"] if columns["order"] in header else None
        for record in reader:
            number = reader.line_num
            if None in record or any(v is None for v in record.values()):
                raise MalformedRowError(name, number, "wrong number of columns")
            yield _row(
                name,
                number,
                record[columns["customer"]],
                record[columns["date"]],
                record[columns["quantity"]],
                record[columns["amount"]],
                record[order_column] if order_column else None,
            )


def read_rows(
    path: Path, fmt: str = "csv", mapping: Mapping[str, str] | None = None
) -> Iterator[OrderRow]:
    """Order lines of ``path`` in ``fmt`` (``cdnow`` or ``csv``)."""
    if fmt == "cdnow":
        if mapping:
            raise InvalidCommandError("--map applies to --format csv only")
        return read_cdnow(path)
    if fmt == "csv":
        return read_csv(path, mapping)
    raise InvalidCommandError(f"unknown format {fmt!r}: cdnow or csv")


# ----- importing ----------------------------------------------------------------------------


def _batches(
    by_customer: dict[str, list[OrderRow]], batch_size: int
) -> Iterator[list[tuple[str, list[OrderRow]]]]:
    batch: list[tuple[str, list[OrderRow]]] = []
    size = 0
    for customer, rows in by_customer.items():
        batch.append((customer, rows))
        size += len(rows)
        if size >= batch_size:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def import_orders(
    crm: CRM,
    rows: Iterable[OrderRow],
    *,
    naming: CustomerNaming | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_customers: int | None = None,
    on_progress: Callable[[ImportProgress, int], None] | None = None,
) -> OrdersImportSummary:
    """Import the rows (see the module's docstring); only the file's first
    ``max_customers`` customers, if given. ``on_progress(progress, total_rows)`` is called
    after each batch."""
    if batch_size < 1:
        raise InvalidCommandError(f"batch size must be at least 1, not {batch_size}")
    naming = naming or CustomerNaming()
    by_customer: dict[str, list[OrderRow]] = {}
    for row in rows:  # the whole file is read (and checked) before anything is stored
        group = by_customer.get(row.customer)
        if group is None:
            if max_customers is not None and len(by_customer) >= max_customers:
                continue
            group = by_customer[row.customer] = []
        group.append(row)
    total = sum(len(g) for g in by_customer.values())
    progress = ImportProgress(total_rows=total, total_customers=len(by_customer))
    summary = OrdersImportSummary()
    recorder = crm.app.recorder
    for batch in _batches(by_customer, batch_size):
        before = recorder.max_notification_id() or 0
        # No collector passes during a batch: its aggregates and events (some 16,000)
        # all live until its transaction ends, so passes over them found nothing and
        # took about a sixth of the import's CPU time (restored after, also on errors).
        with fewer_gc_passes(0):
            try:
                orders, todo = _import_batch(crm, naming, batch)
            except ConcurrencyConflictError:  # another writer claimed a code meanwhile
                orders, todo = _import_batch(crm, naming, batch)  # nothing of it was stored
        progress.skipped += len(batch) - len(todo)
        summary.skipped += len(batch) - len(todo)
        if todo:
            summary.orders += orders
            summary.customers += len(todo)
            summary.rows += sum(len(r) for _, r in todo)
            summary.revenue += sum((row.amount for _, r in todo for row in r), Decimal(0))
        stored = (recorder.max_notification_id() or 0) - before
        progress.rows += sum(len(r) for _, r in batch)
        progress.imported_rows += sum(len(r) for _, r in todo)
        progress.customers += len(todo)
        progress.events += stored
        summary.events += stored
        if on_progress is not None:
            on_progress(progress, total)
    summary.seconds = time.monotonic() - progress.started
    return summary


def _import_batch(
    crm: CRM, naming: CustomerNaming, batch: list[tuple[str, list[OrderRow]]]
) -> tuple[int, list[tuple[str, list[OrderRow]]]]:
    """One transaction: every customer of the batch not imported before, with their
    orders; returns the orders and the customers imported.

    The batch's customer codes are looked up in one query first: customers with a taken
    code were imported before (a re-run) and are skipped; the registrations check their
    codes against the same answer (``CRM.look_up_codes``). A code taken after all is the
    file's own (two references, one code): its row is named."""
    orders = 0
    current: OrderRow | None = None
    todo: list[tuple[str, list[OrderRow]]] = []
    try:
        # The import speaks for ERP (the first of the settings' ``erp_sources``): only ERP
        # confirms orders.
        erp = crm.settings.erp_source
        with crm.bulk(), crm.context(actor=naming.actor, source_system=erp):
            taken = crm.look_up_codes(naming.code.format(ref=c) for c, _ in batch)
            todo = [(c, r) for c, r in batch if naming.code.format(ref=c) not in taken]
            for customer, rows in todo:
                history = sorted(rows, key=lambda r: r.day)
                current = history[0]
                with crm.context(occurred_at=current.day):
                    cid = crm.register_customer(
                        kind="individual",
                        name=naming.name.format(ref=customer),
                        code=naming.code.format(ref=customer),
                        source_channel="web",
                    )
                    aid = crm.open_account(
                        customer_id=cid,
                        name=naming.account.format(ref=customer),
                        industry="consumer",
                        size="micro",
                    )
                for lines in _orders(history):
                    current = lines[0]
                    with crm.context(occurred_at=current.day):
                        _replay(crm, naming, aid, lines)
                    orders += 1
    except (RejectedError, ValueError) as exc:  # a rule refused the row (pydantic's too)
        if current is None or isinstance(exc, (MalformedRowError, ConcurrencyConflictError)):
            raise
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if isinstance(exc, ValidationError):
            reason = problems(exc)
        raise MalformedRowError(current.file, current.line, reason) from exc
    return orders, todo


def _orders(history: list[OrderRow]) -> list[list[OrderRow]]:
    """The customer's orders in date order: rows sharing an order reference together
    (at the first one's date), every other row alone."""
    orders: list[list[OrderRow]] = []
    grouped: dict[str, list[OrderRow]] = {}
    for row in history:
        if row.order is None:
            orders.append([row])
        elif row.order in grouped:
            grouped[row.order].append(row)
        else:
            grouped[row.order] = [row]
            orders.append(grouped[row.order])
    return orders


def _line(naming: CustomerNaming, row: OrderRow) -> OrderLine:
    unit = row.amount / row.quantity
    if unit == unit.quantize(Decimal("0.01")):
        return OrderLine(
            sku=naming.sku,
            quantity=row.quantity,
            unit_price=Money(amount=unit, currency=naming.currency),
        )
    return OrderLine(  # an amount that does not divide into cents: one line of the total
        sku=naming.sku,
        description=f"{row.quantity} units",
        quantity=1,
        unit_price=Money(amount=row.amount, currency=naming.currency),
    )


def _replay(crm: CRM, naming: CustomerNaming, aid: UUID, rows: list[OrderRow]) -> None:
    total = sum((r.amount for r in rows), Decimal(0))
    amount = Money(amount=total, currency=naming.currency)
    order = crm.place_order(aid, lines=[_line(naming, r) for r in rows])
    crm.request_order_confirmation(aid, order)
    crm.confirm_order(aid, order, erp_reference=rows[0].order or "")
    crm.ship_order(aid, order)
    crm.deliver_order(aid, order)
    invoice = crm.issue_invoice(aid, amount=amount, order_id=order)
    if total > 0:
        crm.receive_payment(aid, amount=amount, invoice_id=invoice)
