"""Import an ERP order history: the public CDNOW purchase log.

CDNOW's log (every purchase of the 23,570 customers who first bought in Q1 1997, through
June 1998; Fader, Hardie and Lee 2005) is the classic customer-value data set. Importing it
exercises the bulk path on real volumes and gives the customer-value read model (RFM,
80/20) real numbers. Each purchase becomes an order that ERP was asked to confirm and
confirmed, shipped, delivered, invoiced and was paid for, at the purchase date (business
time). The import speaks for ERP: its commands run under the first source system the
settings name as ERP (``erp_sources``), the only one allowed to confirm orders.

Two layouts are read: ``CDNOW_master.txt`` (header; ``customer_id date cds value``) and
``CDNOW_sample.txt`` (no header; ``customer_id sample_id date cds value``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from uuid import UUID

from crm_domain.application import CRM
from crm_domain.errors import CustomerNotFoundError, InvalidCommandError
from crm_domain.values import Money, OrderLine

CURRENCY = "USD"


@dataclass(frozen=True)
class Purchase:
    """One line of the CDNOW log: a customer's purchase of some CDs on a day."""

    customer: str
    day: datetime
    cds: int
    value: Decimal


@dataclass
class ImportSummary:
    """What an import did: customers imported, customers skipped (imported before), purchases,
    revenue."""

    customers: int = 0
    skipped: int = 0
    purchases: int = 0
    revenue: Decimal = Decimal(0)


def read_purchases(path: Path) -> Iterator[Purchase]:
    """Purchases from either CDNOW layout, in file order. Bad lines raise with their number."""
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            parts = line.split()
            if not parts or parts[0] == "customer_id":
                continue
            try:
                if len(parts) == 5:
                    customer, _, day, cds, value = parts
                elif len(parts) == 4:
                    customer, day, cds, value = parts
                else:
                    raise ValueError(f"expected 4 or 5 columns, got {len(parts)}")
                yield Purchase(
                    customer=customer,
                    day=datetime.strptime(day, "%Y%m%d").replace(hour=12, tzinfo=UTC),
                    cds=int(cds),
                    value=Decimal(value),
                )
            except (ValueError, InvalidOperation) as exc:
                raise InvalidCommandError(f"{path}:{number}: not a CDNOW purchase: {exc}") from exc


def import_purchases(
    crm: CRM,
    purchases: Iterable[Purchase],
    *,
    max_customers: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> ImportSummary:
    """Register each CDNOW customer (code ``CDNOW-<id>``) and replay their purchases
    (only the file's first ``max_customers`` customers, if given).

    ``on_progress(done, total)`` is called with customers handled (imported or skipped)
    after each one, so a long import can show how far it got.

    One transaction per customer (the bulk path): a customer is imported whole or not at
    all, so a re-run skips the customers already there (their code is taken) and an
    interrupted import can simply be started again.
    """
    summary = ImportSummary()
    by_customer: dict[str, list[Purchase]] = {}
    for purchase in purchases:
        by_customer.setdefault(purchase.customer, []).append(purchase)
    total = len(by_customer) if max_customers is None else min(max_customers, len(by_customer))
    for customer, group in by_customer.items():
        done = summary.customers + summary.skipped
        if on_progress is not None:
            on_progress(done, total)
        if done >= total:
            break
        history = sorted(group, key=lambda p: p.day)
        if _already_imported(crm, customer):
            summary.skipped += 1
            continue
        _import_customer(crm, customer, history)
        summary.customers += 1
        summary.purchases += len(history)
        summary.revenue += sum((p.value for p in history), Decimal(0))
    if on_progress is not None:
        on_progress(summary.customers + summary.skipped, total)
    return summary


def _already_imported(crm: CRM, customer: str) -> bool:
    try:
        crm.customer_by_code(f"CDNOW-{customer}")
    except CustomerNotFoundError:
        return False
    return True


def _import_customer(crm: CRM, customer: str, history: list[Purchase]) -> None:
    first = history[0].day
    with crm.bulk():
        erp = crm.settings.erp_source
        with crm.context(actor="cdnow-import", source_system=erp, occurred_at=first):
            cid = crm.register_customer(
                kind="individual",
                name=f"CDNOW customer {customer}",
                code=f"CDNOW-{customer}",
                source_channel="web",
            )
            aid = crm.open_account(
                customer_id=cid, name=f"CDNOW {customer}", industry="consumer", size="micro"
            )
        for purchase in history:
            with crm.context(actor="cdnow-import", source_system=erp, occurred_at=purchase.day):
                _replay(crm, aid, purchase)


def _replay(crm: CRM, aid: UUID, purchase: Purchase) -> None:
    amount = Money(amount=purchase.value, currency=CURRENCY)
    line = OrderLine(sku="CD", description=f"{purchase.cds} CDs", quantity=1, unit_price=amount)
    order = crm.place_order(aid, lines=[line])
    crm.request_order_confirmation(aid, order)
    crm.confirm_order(aid, order)  # as ERP: the import runs under the ERP source system
    crm.ship_order(aid, order)
    crm.deliver_order(aid, order)
    invoice = crm.issue_invoice(aid, amount=amount, order_id=order)
    if purchase.value > 0:
        crm.receive_payment(aid, amount=amount, invoice_id=invoice)
