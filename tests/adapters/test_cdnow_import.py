"""Importing the public CDNOW purchase log, and the customer-value read model on real data."""

from __future__ import annotations

import math
import os
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from adapters.cdnow import import_purchases, read_purchases
from crm_domain.application import CRM
from crm_domain.errors import InvalidCommandError
from projections.customer_value import CustomerValueQueries
from projections.runner import follow

ROOT = Path(__file__).resolve().parents[2]
CDNOW_DIR = Path(os.environ.get("CRM_CDNOW_DIR", ROOT.parent / "shared" / "data" / "cdnow"))
SAMPLE = CDNOW_DIR / "CDNOW_sample.txt"
END_OF_LOG = datetime(1998, 7, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def sample() -> Path:
    if not SAMPLE.exists():
        pytest.skip(f"CDNOW sample not found at {SAMPLE} (set CRM_CDNOW_DIR)")
    return SAMPLE


def revenue_by_customer(path: Path, customers: int) -> dict[str, Decimal]:
    """Straight from the file, without the importer: the first ``customers`` customers."""
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] not in totals and len(totals) == customers:
            continue
        totals[parts[0]] += Decimal(parts[-1])
    return dict(totals)


def test_reads_every_purchase_of_the_sample(sample: Path) -> None:
    purchases = list(read_purchases(sample))
    assert len(purchases) == sum(1 for line in sample.read_text().splitlines() if line.strip())
    assert len({p.customer for p in purchases}) == 2357  # the paper's 1/10th sample
    assert all(p.day.tzinfo is not None and p.value >= 0 for p in purchases)


def test_malformed_line_is_a_typed_error_naming_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text(" 00001 19970101  1   11.77\n 00002 1997011x  1   12.00\n")
    with pytest.raises(InvalidCommandError, match=r"bad.txt:2"):
        list(read_purchases(bad))


def test_imported_history_gives_revenue_rfm_and_pareto(sample: Path, tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'cdnow.sqlite'}"
    crm = CRM(store)
    try:
        summary = import_purchases(crm, read_purchases(sample), max_customers=120)
        head = crm.app.recorder.max_notification_id()
        again = import_purchases(crm, read_purchases(sample), max_customers=120)
        assert crm.app.recorder.max_notification_id() == head  # a re-run stores nothing twice
    finally:
        crm.close()
    expected = revenue_by_customer(sample, 120)
    assert summary.customers == 120
    assert summary.revenue == sum(expected.values())
    assert (again.customers, again.skipped, again.purchases) == (0, 120, 0)
    assert again.purchases_skipped == summary.purchases  # every purchase was already there

    with follow(store, read_models=["customer_value"]) as runner:
        runner.wait_until_current(timeout=60)
        value = CustomerValueQueries(runner.view.engine)
        booked = {
            r.name.removeprefix("CDNOW customer "): r.booked
            for r in value.revenue(currency="USD", page_size=500).items
        }
        pareto = value.pareto(currency="USD")
        scores = value.rfm(as_of=END_OF_LOG, currency="USD", page_size=500).items
    assert {c: v for c, v in booked.items() if v} == {c: v for c, v in expected.items() if v}
    amounts = sorted(expected.values(), reverse=True)
    top = math.ceil(len(amounts) * 0.2)
    assert pareto.top_revenue == sum(amounts[:top])
    assert pareto.total_revenue == sum(amounts)
    # RFM as of the end of the log: the biggest spender has the top monetary score, and
    # scores are quintiles (each 1-5, roughly a fifth of customers per monetary score).
    by_name = {s.name.removeprefix("CDNOW customer "): s for s in scores}
    assert by_name[max(expected, key=lambda c: expected[c])].monetary_score == 5
    assert {s.monetary_score for s in scores} == {1, 2, 3, 4, 5}
    assert all(s.recency_days >= 0 for s in scores)
