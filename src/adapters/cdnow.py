"""Import an ERP order history: the public CDNOW purchase log.

CDNOW's log (every purchase of the 23,570 customers who first bought in Q1 1997, through
June 1998; Fader, Hardie and Lee 2005) is the classic customer-value data set. Importing it
exercises the bulk path on real volumes and gives the customer-value read model (RFM,
80/20) real numbers. Each purchase becomes an order that ERP was asked to confirm and
confirmed, shipped, delivered, invoiced and was paid for, at the purchase date (business
time): the order import of :mod:`adapters.orders_import` (``crm import orders FILE
--format cdnow``), with customers coded ``CDNOW-<id>``. The import speaks for ERP: its
commands run under the first source system the settings name as ERP (``erp_sources``).

Two layouts are read: ``CDNOW_master.txt`` (header; ``customer_id date cds value``) and
``CDNOW_sample.txt`` (no header; ``customer_id sample_id date cds value``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from adapters.orders_import import (
    DEFAULT_BATCH_SIZE,
    CustomerNaming,
    ImportProgress,
    OrderRow,
    import_orders,
    read_cdnow,
)
from crm_domain.application import CRM

CURRENCY = "USD"


@dataclass(frozen=True)
class Purchase:
    """One line of the CDNOW log: a customer's purchase of some CDs on a day."""

    customer: str
    day: datetime
    cds: int
    value: Decimal
    file: str = ""
    line: int = 0


@dataclass
class ImportSummary:
    """What an import did: customers registered, customers already there (imported
    before), purchases stored and their revenue, purchases already there (not stored
    again)."""

    customers: int = 0
    skipped: int = 0
    purchases: int = 0
    revenue: Decimal = Decimal(0)
    purchases_skipped: int = 0


#: How CDNOW customers are coded and named in the CRM.
CDNOW_NAMING = CustomerNaming(
    code="CDNOW-{ref}",
    name="CDNOW customer {ref}",
    account="CDNOW {ref}",
    currency=CURRENCY,
    sku="CD",
    actor="cdnow-import",
)


def read_purchases(path: Path) -> Iterator[Purchase]:
    """Purchases from either CDNOW layout, in file order. Bad lines raise
    :class:`~crm_domain.errors.MalformedRowError` (an ``InvalidCommandError``) naming them."""
    for row in read_cdnow(path):
        yield Purchase(row.customer, row.day, row.quantity, row.amount, row.file, row.line)


def import_purchases(
    crm: CRM,
    purchases: Iterable[Purchase],
    *,
    max_customers: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> ImportSummary:
    """Register each CDNOW customer (code ``CDNOW-<id>``) and replay their purchases
    (only the file's first ``max_customers`` customers, if given): the order import
    (:func:`adapters.orders_import.import_orders`) with CDNOW's naming.

    ``on_progress(done, total)`` is called with customers handled (new or known) after
    each batch. Many customers per transaction; a re-run stores only the purchases not
    there yet (each purchase is an order: the same customer, day, CDs and value, counted
    by occurrence), so an interrupted import can simply be started again.
    """
    rows = (OrderRow(p.customer, p.day, p.cds, p.value, None, p.file, p.line) for p in purchases)

    def show(progress: ImportProgress, total: int) -> None:
        if on_progress is not None:
            on_progress(progress.customers + progress.skipped, progress.total_customers)

    done = import_orders(
        crm,
        rows,
        naming=CDNOW_NAMING,
        batch_size=batch_size,
        max_customers=max_customers,
        on_progress=show,
    )
    return ImportSummary(
        customers=done.customers,
        skipped=done.skipped,
        purchases=done.rows,
        revenue=done.revenue,
        purchases_skipped=done.orders_skipped,
    )
