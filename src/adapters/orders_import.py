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

Idempotent per order: an order already in the store is not stored again, so a re-run
(also after an interrupted run) stores nothing twice, and a later file (next month's
export, one file per year) adds the new orders of customers imported before, on their
account. An order's identity, per customer (its code):

* with an order reference: the reference. It is stored as the order's ERP reference
  (``OrderConfirmed.erp_reference``, kept on the order: ``Order.erp_reference``); any
  order of the customer with that ERP reference is that order, whatever its lines (so
  also one ERP confirmed through the Kafka consumer).
* without one: the day, quantity and amount (the order line the import writes, with
  the SKU and currency of the naming), and the occurrence among the customer's identical
  rows of the file: the n-th identical row is the n-th such order without an ERP
  reference. The one ambiguity: a second file that repeats an identical purchase of the
  same day takes it as the same order (two files each with one such purchase store one).

Customers with a taken code are known: the batch reads their accounts once (one
aggregate load per account, found from a directory of code claims and account openings
read from the log once per import, and only if a known customer turns up) and stores
the orders not there yet on their first open account (one is opened if they have
none). New customers cost no read beyond the one query for the batch's codes.

Batches: a customer's orders are imported in one transaction, together with other
customers' up to ``batch_size`` rows. A row that cannot be read stops the import before
anything is stored; a row a rule refuses stops it with nothing of its batch stored (the
batches before it stay; a re-run completes it). Either way
:class:`~crm_domain.errors.MalformedRowError` names the file and line. Ongoing orders
come from ERP through the inbound Kafka consumer.
"""

from __future__ import annotations

import csv
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from uuid import UUID

from eventsourcing.utils import get_topic
from pydantic import ValidationError

from crm_domain.account import Account
from crm_domain.application import CRM
from crm_domain.bookkeeping import CustomerCodeClaim
from crm_domain.errors import (
    ConcurrencyConflictError,
    CustomerNotFoundError,
    InvalidCommandError,
    MalformedRowError,
    RejectedError,
    problems,
)
from crm_domain.infrastructure.collector import fewer_gc_passes
from crm_domain.infrastructure.persistence import PydanticMapper
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
    """Counts so far: rows read, rows imported, events stored, customers new (``customers``)
    and known (``skipped``), orders stored and already there, and the rate."""

    rows: int = 0
    imported_rows: int = 0
    events: int = 0
    customers: int = 0
    skipped: int = 0
    total_rows: int = 0
    total_customers: int = 0
    orders: int = 0
    orders_skipped: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def rate(self) -> float:
        """Events stored per second so far."""
        elapsed = time.monotonic() - self.started
        return self.events / elapsed if elapsed > 0 else 0.0


@dataclass
class OrdersImportSummary:
    """What an import did: customers registered and already there, orders stored and
    already there, and the rows, events and revenue of the orders stored."""

    #: Customers registered (new).
    customers: int = 0
    #: Customers already there (known: imported before, or registered otherwise); their
    #: new orders were stored, on their account.
    skipped: int = 0
    #: Orders stored (of new and known customers).
    orders: int = 0
    #: Rows of the orders stored.
    rows: int = 0
    events: int = 0
    #: The orders stored: their amounts' sum.
    revenue: Decimal = Decimal(0)
    seconds: float = 0.0
    #: Orders already there (imported before): not stored again.
    orders_skipped: int = 0


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


@dataclass
class _BatchResult:
    """What one batch stored (new customers, orders, rows, revenue) and found there."""

    customers: int = 0
    known: int = 0
    orders: int = 0
    orders_skipped: int = 0
    rows: int = 0
    revenue: Decimal = Decimal(0)


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
    directory = _Directory(crm, [naming.code.format(ref=c) for c in by_customer])
    for batch in _batches(by_customer, batch_size):
        before = recorder.max_notification_id() or 0
        # No collector passes during a batch: its aggregates and events (some 16,000)
        # all live until its transaction ends, so passes over them found nothing and
        # took about a sixth of the import's CPU time (restored after, also on errors).
        with fewer_gc_passes(0):
            try:
                done = _import_batch(crm, naming, directory, batch)
            except ConcurrencyConflictError:  # another writer claimed a code or wrote an
                # account meanwhile: nothing of the batch was stored; decided again
                done = _import_batch(crm, naming, directory, batch)
        summary.customers += done.customers
        summary.skipped += done.known
        summary.orders += done.orders
        summary.orders_skipped += done.orders_skipped
        summary.rows += done.rows
        summary.revenue += done.revenue
        stored = (recorder.max_notification_id() or 0) - before
        progress.rows += sum(len(r) for _, r in batch)
        progress.imported_rows += done.rows
        progress.customers += done.customers
        progress.skipped += done.known
        progress.orders += done.orders
        progress.orders_skipped += done.orders_skipped
        progress.events += stored
        summary.events += stored
        if on_progress is not None:
            on_progress(progress, total)
    summary.seconds = time.monotonic() - progress.started
    return summary


class _Directory:
    """The file's customers that are already in the store, and their accounts.

    Read from the log only when a batch meets a known customer (a first import never
    does): the code claims of the file's customers and every account opening, in one
    pass filtered by event type in the database, then brought up to date from where it
    left off when a later batch meets a customer it has not seen (registered meanwhile).
    """

    def __init__(self, crm: CRM, codes: Iterable[str]) -> None:
        self._crm = crm
        self._codes = codes
        self._wanted: set[UUID] | None = None  # the codes' claim ids, on the first read
        #: customer id by code claim id, for the file's codes that are taken
        self._customers: dict[UUID, UUID] = {}
        #: account ids by customer id (oldest first), for those customers
        self._accounts: dict[UUID, list[UUID]] = {}
        self._position = 0

    def find(self, code: str) -> tuple[UUID, list[UUID]]:
        """The customer with ``code`` (taken) and their accounts' ids, oldest first."""
        claim = CustomerCodeClaim.id_for(code)
        if claim not in self._customers:
            self._catch_up()
        customer = self._customers.get(claim)
        if customer is None:  # taken, yet no claim in the log: not expected
            raise CustomerNotFoundError(code)
        return customer, self._accounts.get(customer, [])

    def _catch_up(self) -> None:
        mapper = self._crm.app.mapper
        assert isinstance(mapper, PydanticMapper)
        if self._wanted is None:
            self._wanted = {CustomerCodeClaim.id_for(code) for code in self._codes}
        found = self._crm.app.notifications_of(
            CustomerCodeClaim.Claimed, Account.Opened, start=self._position + 1
        )
        for notification in found:
            self._position = notification.id
            originator = UUID(str(notification.originator_id))
            if notification.topic == _CLAIMED:
                if originator in self._wanted:
                    state = mapper.to_event_state(notification)[1]
                    self._customers[originator] = UUID(str(state["customer_id"]))
                    self._accounts.setdefault(self._customers[originator], [])
            else:  # an account opening: after its customer's claim in the log
                customer = UUID(str(mapper.to_event_state(notification)[1]["customer_id"]))
                accounts = self._accounts.get(customer)
                if accounts is not None:
                    accounts.append(originator)


_CLAIMED = get_topic(CustomerCodeClaim.Claimed)


#: An order line as the import writes it: SKU, description, quantity, unit price, currency.
_LineKey = tuple[str, str, int, Decimal, str]


@dataclass
class _StoredOrders:
    """What a known customer's accounts hold: the ERP references of their orders, and
    how many orders of each (day, line) there are among those without one."""

    references: set[str] = field(default_factory=set)
    unreferenced: Counter[tuple[date, _LineKey]] = field(default_factory=Counter)

    @classmethod
    def of(cls, accounts: Iterable[Account]) -> _StoredOrders:
        stored = cls()
        for account in accounts:
            for order in account.orders.values():
                if order.erp_reference:
                    stored.references.add(order.erp_reference)
                elif len(order.lines) == 1:
                    line = order.lines[0]
                    price = line.unit_price
                    key = (line.sku, line.description, line.quantity, price.amount, price.currency)
                    stored.unreferenced[(order.placed_at.astimezone(UTC).date(), key)] += 1
        return stored

    def new(self, naming: CustomerNaming, orders: list[list[OrderRow]]) -> list[list[OrderRow]]:
        """The file's orders of the customer not stored yet: an order with a reference is
        there if one with that ERP reference is; rows without one are matched by day and
        line, the n-th identical row of the file to the n-th such order stored."""
        left = Counter(self.unreferenced)
        new: list[list[OrderRow]] = []
        for lines in orders:
            first = lines[0]
            if first.order is not None:
                if first.order not in self.references:
                    new.append(lines)
                continue
            key = (first.day.date(), _line_key(naming, first))
            if left[key] > 0:
                left[key] -= 1
            else:
                new.append(lines)
        return new


def _import_batch(
    crm: CRM,
    naming: CustomerNaming,
    directory: _Directory,
    batch: list[tuple[str, list[OrderRow]]],
) -> _BatchResult:
    """One transaction: the batch's new customers with their orders, and the orders of its
    known customers not stored yet.

    The batch's customer codes are looked up in one query first: customers with a taken
    code are known (imported before, or registered otherwise), and the registrations
    check their codes against the same answer (``CRM.look_up_codes``). A code taken after
    all is the file's own (two references, one code): its row is named. Each known
    customer's accounts are loaded once to tell which of their orders are there; their new
    orders go on their first open account (one is opened if they have none)."""
    done = _BatchResult()
    current: OrderRow | None = None
    try:
        # The import speaks for ERP (the first of the settings' ``erp_sources``): only ERP
        # confirms orders.
        erp = crm.settings.erp_source
        with crm.bulk(), crm.context(actor=naming.actor, source_system=erp):
            taken = crm.look_up_codes(naming.code.format(ref=c) for c, _ in batch)
            for customer, rows in batch:
                code = naming.code.format(ref=customer)
                history = sorted(rows, key=lambda r: r.day)
                orders = _orders(history)
                current = history[0]
                if code in taken:
                    done.known += 1
                    cid, account_ids = directory.find(code)
                    accounts = [crm.account(a) for a in account_ids]
                    todo = _StoredOrders.of(accounts).new(naming, orders)
                    done.orders_skipped += len(orders) - len(todo)
                    if not todo:
                        continue
                    orders = todo
                    current = orders[0][0]
                    open_accounts = [a for a in accounts if a.active] or accounts
                    if open_accounts:
                        aid = open_accounts[0].id
                    else:
                        with crm.context(occurred_at=current.day):
                            aid = _open_account(crm, naming, customer, cid)
                else:
                    done.customers += 1
                    with crm.context(occurred_at=current.day):
                        cid = crm.register_customer(
                            kind="individual",
                            name=naming.name.format(ref=customer),
                            code=code,
                            source_channel="web",
                        )
                        aid = _open_account(crm, naming, customer, cid)
                for lines in orders:
                    current = lines[0]
                    with crm.context(occurred_at=current.day):
                        done.revenue += _replay(crm, naming, aid, lines)
                    done.orders += 1
                    done.rows += len(lines)
    except (RejectedError, ValueError) as exc:  # a rule refused the row (pydantic's too)
        if current is None or isinstance(exc, (MalformedRowError, ConcurrencyConflictError)):
            raise
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if isinstance(exc, ValidationError):
            reason = problems(exc)
        raise MalformedRowError(current.file, current.line, reason) from exc
    return done


def _open_account(crm: CRM, naming: CustomerNaming, customer: str, cid: UUID) -> UUID:
    return crm.open_account(
        customer_id=cid,
        name=naming.account.format(ref=customer),
        industry="consumer",
        size="micro",
    )


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


def _line_key(naming: CustomerNaming, row: OrderRow) -> _LineKey:
    """The order line of a row, as plain values: the quantity at the unit price, or (an
    amount that does not divide into cents) one line of the total, "N units"."""
    unit = row.amount / row.quantity
    if unit == unit.quantize(Decimal("0.01")):
        return (naming.sku, "", row.quantity, unit, naming.currency)
    return (naming.sku, f"{row.quantity} units", 1, row.amount, naming.currency)


def _line(naming: CustomerNaming, row: OrderRow) -> OrderLine:
    sku, description, quantity, price, currency = _line_key(naming, row)
    unit_price = Money(amount=price, currency=currency)
    if description:  # one line of the total
        return OrderLine(sku=sku, description=description, quantity=quantity, unit_price=unit_price)
    return OrderLine(sku=sku, quantity=quantity, unit_price=unit_price)


def _replay(crm: CRM, naming: CustomerNaming, aid: UUID, rows: list[OrderRow]) -> Decimal:
    """Replay one order as ERP confirmed, shipped, delivered, invoiced and was paid for it;
    returns its total."""
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
    return total
