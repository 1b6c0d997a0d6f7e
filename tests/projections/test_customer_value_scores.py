"""RFM as docs/projections.md states it: frequency counts distinct purchase days, scores are
equal-sized quintiles by rank (pandas ``rank(method="first")`` then ``qcut`` 5), recency is
counted from the as-of date (and only orders placed by then count), and "customers with
revenue" have revenue above zero."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from projection_history import project

from adapters.cdnow import Purchase, import_purchases
from crm_domain.application import CRM
from projections.customer_value import CustomerValueQueries, quintile_of_rank, quintiles

AS_OF = datetime(1998, 6, 30, tzinfo=UTC)


def pandas_quintiles(values: list[int]) -> list[int]:
    ranks = pd.Series(values).rank(method="first")
    return [int(v) + 1 for v in pd.qcut(ranks, 5, labels=False)]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=6), min_size=2, max_size=120))
def test_quintiles_are_pandas_qcut_on_first_ranks(values: list[int]) -> None:
    assert quintiles(values) == pandas_quintiles(values)


def test_quintiles_are_equal_sized() -> None:
    scores = quintiles([1] * 100)  # all tied: still twenty per score
    assert [scores.count(k) for k in range(1, 6)] == [20] * 5
    assert [quintile_of_rank(r, 23_570) for r in (1, 4714, 4715, 23_570)] == [1, 1, 2, 5]


def _history(seed: int = 7) -> list[Purchase]:
    rng = random.Random(seed)
    start = datetime(1997, 1, 1, 12, tzinfo=UTC)
    out = []
    for c in range(1, 41):
        days = sorted(rng.sample(range(0, 500), rng.randint(1, 4)))
        for d in days:
            # some customers buy twice on a day: one purchase day, two orders
            for hour in range(2 if rng.random() < 0.3 else 1):
                value = (
                    Decimal(rng.choice([10, 10, 20, 35, 50])) + Decimal(rng.randint(0, 99)) / 100
                )
                when = start + timedelta(days=d, hours=hour)
                out.append(Purchase(f"{c:05d}", when, 1, value))
    # twelve one-off buyers of the same amount: their ties are ranked by recency
    for c in range(50, 62):
        day = start + timedelta(days=rng.randint(0, 500))
        out.append(Purchase(f"{c:05d}", day, 1, Decimal(5)))
    # a customer whose only purchase was free has no revenue
    out.append(Purchase("00099", start, 1, Decimal(0)))
    return sorted(out, key=lambda p: (p.customer, p.day))


#: Part-way through the history: the scores as of then count only the orders placed by then.
MIDWAY = datetime(1997, 9, 30, 23, 59, tzinfo=UTC)


@pytest.mark.parametrize("as_of", [AS_OF, MIDWAY], ids=["end", "midway"])
def test_rfm_scores_match_pandas_on_an_imported_history(as_of: datetime) -> None:
    crm = CRM("memory://")
    history = _history()
    import_purchases(crm, iter(history))
    view = project(crm, ["customer_value"])
    q = CustomerValueQueries(view.engine)
    scores = {s.customer_id: s for s in q.rfm(as_of=as_of, currency="USD", page_size=500).items}

    frame = pd.DataFrame(
        [
            {
                "customer_id": str(crm.customer_by_code(f"CDNOW-{p.customer}").id),
                "day": p.day.date(),
                "value": p.value,
            }
            for p in history
            if p.day <= as_of
        ]
    )
    per = frame.groupby("customer_id").agg(
        monetary=("value", "sum"), frequency=("day", "nunique"), last=("day", "max")
    )
    per = per[per.monetary > 0].reset_index()
    per["recency_days"] = [(as_of.date() - d).days for d in per["last"]]
    per["neg_recency"] = -per["recency_days"]
    # the documented tie order: monetary, frequency, recency, customer id (lower first)
    per = per.sort_values(["monetary", "frequency", "neg_recency", "customer_id"])
    for column, score in (("neg_recency", "r"), ("frequency", "f"), ("monetary", "m")):
        ranks = per[column].astype(float).rank(method="first")
        per[score] = pd.qcut(ranks, 5, labels=False) + 1

    assert len(scores) == len(per)
    if as_of == AS_OF:
        assert len(per) == 52  # the free-only customer has no revenue
    else:
        assert 0 < len(per) < 52  # later buyers are not customers with revenue yet
    orders_on_shared_days = 0
    for row in per.itertuples():
        got = next(s for s in scores.values() if str(s.customer_id) == row.customer_id)
        assert got.frequency == row.frequency  # distinct purchase days
        assert got.recency_days == row.recency_days  # from the as-of date
        assert got.monetary == row.monetary
        assert (got.recency, got.frequency_score, got.monetary_score) == (row.r, row.f, row.m)
        orders_on_shared_days += got.orders - got.frequency
    if as_of == AS_OF:
        assert orders_on_shared_days > 0  # the history has same-day orders, counted once
        assert q.pareto(currency="USD").customers == 52
