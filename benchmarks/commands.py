"""Command throughput of the CRM application, beside a bare eventsourcing Application.

Run::

    python benchmarks/commands.py [--n N] [--backends sqlite,postgres] [--pg-url URL]

For each backend it measures, in one run:

1. **ours**: single commands through :class:`crm_domain.CRM` (a realistic mix: register a
   customer, open their account, log contacts, open an opportunity and stage it through the
   pipeline, open a service ticket), as events/s and per-command p50/p99 latency;
2. **bare**: a plain ``eventsourcing.application.Application`` storing the *same events*
   (the same ``Customer``/``Account``/``CustomerCodeClaim`` aggregate classes, driven directly
   through ``repository.get`` + aggregate method + ``save``), with the same mapper class,
   transcoder, snapshotting and backend settings (``CRMEventStore.env`` +
   ``StoreURL.eventsourcing_env()``), but eventsourcing's own recorders (no hash chain
   beside the events) and no personal-data sealing: so ours/bare prices the CRM's command
   handling *and* its tamper evidence and encryption (issue 11's target: >= 0.80);
3. **bulk**: the same mix through ``crm.run_bulk`` (many commands for many aggregates, one
   transaction per call), beside one-command-at-a-time.

Ours and bare run in alternating rounds, so drift in the machine affects both alike.
Targets: ours >= 0.80 x bare (with the chain and the encryption on ours only; 0.85 before
them); bulk >= 5 x single. This is a benchmark, not a test: it
prints a table and exits 0 whether or not the targets are met.

SQLite runs in a temporary directory; PostgreSQL runs in a scratch database created (and
dropped) on the server named by ``--pg-url`` (default ``postgresql://postgres@127.0.0.1:5432/test``),
so the ``test`` database is left alone.
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlunparse
from uuid import UUID

from eventsourcing.application import Application
from rich.console import Console
from rich.table import Table

from crm_domain import CRM, DEFAULT_LIFECYCLE, DEFAULT_PIPELINE, DEFAULT_SLA, Money
from crm_domain.account import Account
from crm_domain.bookkeeping import CustomerCodeClaim
from crm_domain.context import command_context
from crm_domain.customer import Customer
from crm_domain.eventmodel import Snapshot
from crm_domain.infrastructure.eventstore import CRMEventStore
from crm_domain.infrastructure.storage import StoreURL
from crm_domain.values import ContactDetails, Priority, TicketKind

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
TARGET_RATIO = 0.80
TARGET_BULK = 5.0
SNAPSHOT_INTERVAL = 50  # CRM's default

console = Console(width=max(Console().width, 120))


# ----- the workload -------------------------------------------------------------------
@dataclass
class Unit:
    """One customer's slice of the workload (ids filled in as the commands run)."""

    i: int
    code: str
    customer_id: UUID | None = None
    account_id: UUID | None = None
    opportunity_id: UUID | None = None


#: The mix, one step per command, in order for each unit. Each step stores one event,
#: except ``register`` which stores two (the customer and its customer-code claim).
STEPS = (
    "register",
    "open_account",
    "log_contact",
    "open_opportunity",
    "stage_qualification",
    "log_contact_next_step",
    "stage_needs_analysis",
    "open_ticket",
)
EVENTS_PER_UNIT = len(STEPS) + 1

EXPECTED_CLOSE = date(2030, 6, 30)
AMOUNT = Money.of("125000.00", "CNY")


def _contact(u: Unit) -> dict[str, Any]:
    return {"email": f"buyer{u.i}@example.com", "phone": "+86 10 6552 9988"}


class Driver:
    """Runs a step of the mix for a unit, on one side of the comparison."""

    def run(self, step: str, u: Unit) -> None:
        getattr(self, step)(u)


class OursDriver(Driver):
    """Single commands through the CRM application."""

    def __init__(self, crm: CRM) -> None:
        self.crm = crm

    def register(self, u: Unit) -> None:
        u.customer_id = self.crm.register_customer(
            kind="enterprise",
            name=f"Customer {u.i}",
            code=u.code,
            contact=_contact(u),
            source_channel="web",
        )

    def open_account(self, u: Unit) -> None:
        assert u.customer_id is not None
        u.account_id = self.crm.open_account(
            customer_id=u.customer_id,
            name=f"Customer {u.i} Ltd",
            industry="manufacturing",
            size="medium",
            tier="gold",
        )

    def log_contact(self, u: Unit) -> None:
        assert u.customer_id is not None
        self.crm.log_contact(
            u.customer_id,
            channel="phone",
            direction="inbound",
            summary="Asked about volume pricing",
            participants=["li.wei", f"buyer{u.i}"],
        )

    def log_contact_next_step(self, u: Unit) -> None:
        assert u.customer_id is not None
        self.crm.log_contact(
            u.customer_id,
            channel="visit",
            direction="outbound",
            summary="On-site needs analysis",
            participants=["li.wei", f"buyer{u.i}"],
            next_step="send proposal",
            next_step_due=datetime(2030, 1, 15, 9, 0, tzinfo=UTC),
        )

    def open_opportunity(self, u: Unit) -> None:
        assert u.account_id is not None
        u.opportunity_id = self.crm.open_opportunity(
            u.account_id,
            name="Line 3 retrofit",
            expected_close=EXPECTED_CLOSE,
            owner="li.wei",
            amount=AMOUNT,
        )

    def stage_qualification(self, u: Unit) -> None:
        assert u.account_id is not None
        assert u.opportunity_id is not None
        self.crm.stage_opportunity(u.account_id, u.opportunity_id, stage="qualification")

    def stage_needs_analysis(self, u: Unit) -> None:
        assert u.account_id is not None
        assert u.opportunity_id is not None
        self.crm.stage_opportunity(u.account_id, u.opportunity_id, stage="needs_analysis")

    def open_ticket(self, u: Unit) -> None:
        assert u.customer_id is not None
        self.crm.open_ticket(u.customer_id, kind="inquiry", subject="Invoice copy", channel="phone")


#: eventsourcing's own application recorders, per persistence module (no hash chain).
STOCK_RECORDERS = {
    "eventsourcing.sqlite": "eventsourcing.sqlite:SQLiteApplicationRecorder",
    "eventsourcing.postgres": "eventsourcing.postgres:PostgresApplicationRecorder",
}


class Bare(Application[UUID]):
    """A plain eventsourcing application: no idempotency, metadata handling or retries."""

    name = "BareBench"
    env = dict(CRMEventStore.env)  # same mapper and transcoder
    snapshot_class = Snapshot
    snapshotting_intervals = {
        Customer: SNAPSHOT_INTERVAL,
        Account: SNAPSHOT_INTERVAL,
    }


class BareDriver(Driver):
    """The same aggregates and events, driven directly: repository.get + method + save."""

    def __init__(self, app: Bare) -> None:
        self.app = app

    def register(self, u: Unit) -> None:
        customer = Customer.register(
            kind="enterprise",
            name=f"Customer {u.i}",
            code=u.code,
            contact=ContactDetails.model_validate(_contact(u)),
            source_channel="web",
            lifecycle=DEFAULT_LIFECYCLE,
        )
        claim = CustomerCodeClaim(code=u.code, customer_id=customer.id)
        self.app.save(customer, claim)
        u.customer_id = customer.id

    def open_account(self, u: Unit) -> None:
        assert u.customer_id is not None
        account = Account.open(
            customer_id=u.customer_id,
            name=f"Customer {u.i} Ltd",
            industry="manufacturing",
            size="medium",
            tier="gold",
        )
        self.app.save(account)
        u.account_id = account.id

    def _customer(self, u: Unit) -> Customer:
        assert u.customer_id is not None
        customer: Customer = self.app.repository.get(u.customer_id)
        return customer

    def _account(self, u: Unit) -> Account:
        assert u.account_id is not None
        account: Account = self.app.repository.get(u.account_id)
        return account

    def log_contact(self, u: Unit) -> None:
        c = self._customer(u)
        c.log_contact(
            channel="phone",
            direction="inbound",
            summary="Asked about volume pricing",
            logged_by="system",
            participants=["li.wei", f"buyer{u.i}"],
        )
        self.app.save(c)

    def log_contact_next_step(self, u: Unit) -> None:
        c = self._customer(u)
        c.log_contact(
            channel="visit",
            direction="outbound",
            summary="On-site needs analysis",
            logged_by="system",
            participants=["li.wei", f"buyer{u.i}"],
            next_step="send proposal",
            next_step_due=datetime(2030, 1, 15, 9, 0, tzinfo=UTC),
        )
        self.app.save(c)

    def open_opportunity(self, u: Unit) -> None:
        a = self._account(u)
        u.opportunity_id = a.open_opportunity(
            name="Line 3 retrofit",
            expected_close=EXPECTED_CLOSE,
            owner="li.wei",
            amount=AMOUNT,
            pipeline=DEFAULT_PIPELINE,
        )
        self.app.save(a)

    def stage_qualification(self, u: Unit) -> None:
        assert u.opportunity_id is not None
        a = self._account(u)
        a.stage_opportunity(u.opportunity_id, stage="qualification", pipeline=DEFAULT_PIPELINE)
        self.app.save(a)

    def stage_needs_analysis(self, u: Unit) -> None:
        assert u.opportunity_id is not None
        a = self._account(u)
        a.stage_opportunity(u.opportunity_id, stage="needs_analysis", pipeline=DEFAULT_PIPELINE)
        self.app.save(a)

    def open_ticket(self, u: Unit) -> None:
        c = self._customer(u)
        due_at = DEFAULT_SLA.due(TicketKind.INQUIRY, Priority.NORMAL, datetime.now(UTC))
        c.open_ticket(
            kind="inquiry",
            priority=Priority.NORMAL,
            channel="phone",
            subject="Invoice copy",
            due_at=due_at,
        )
        self.app.save(c)


# ----- measuring ----------------------------------------------------------------------
@dataclass
class Measure:
    """Accumulated timings of one side on one backend."""

    events: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)  # seconds per command (or call)
    by_step: dict[str, list[float]] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    def pct(self, q: float, step: str | None = None) -> float:
        xs = sorted(self.latencies if step is None else self.by_step.get(step, []))
        if not xs:
            return float("nan")
        return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]

    @property
    def p50(self) -> float:
        return self.pct(0.50)

    @property
    def p99(self) -> float:
        return self.pct(0.99)


_codes = iter(range(10**9))


def make_units(n: int, tag: str) -> list[Unit]:
    run = uuid.uuid4().hex[:6]
    return [Unit(i=i, code=f"{tag}-{run}-{next(_codes)}") for i in range(n)]


def max_id(app: Application[Any] | CRM) -> int:
    store = app.app if isinstance(app, CRM) else app
    return store.recorder.max_notification_id() or 0


def run_pair(sides: list[tuple[Application[Any], Driver, Measure]], units: int, tag: str) -> None:
    """Each step of the mix for ``units`` customers, one command at a time, on every side.

    The sides take turns command by command (who goes first alternates), so a hiccup of
    the disk or the server lands on both alike. A side's time is the sum of its commands'.
    """
    work = [(app, driver, m, make_units(units, tag), max_id(app)) for app, driver, m in sides]
    clock = time.perf_counter
    gc.collect()
    for step in STEPS:
        for k in range(units):
            order = work if k % 2 == 0 else work[::-1]
            for _app, driver, m, us, _ in order:
                t0 = clock()
                driver.run(step, us[k])
                dt = clock() - t0
                m.latencies.append(dt)
                m.by_step.setdefault(step, []).append(dt)
                m.seconds += dt
    for app, _driver, m, _us, before in work:
        m.events += max_id(app) - before


def _bulk_command(driver: Driver, step: str, u: Unit, _crm: CRM) -> None:
    driver.run(step, u)


def run_bulk(crm: CRM, units: list[Unit], batch: int, m: Measure) -> None:
    """The same mix, ``batch`` units per ``run_bulk`` call (one transaction each)."""
    driver = OursDriver(crm)
    before = max_id(crm)
    clock = time.perf_counter
    gc.collect()
    start = clock()
    for k in range(0, len(units), batch):
        chunk = units[k : k + batch]
        commands: list[Callable[[CRM], None]] = [
            partial(_bulk_command, driver, step, u) for step in STEPS for u in chunk
        ]
        t0 = clock()
        crm.run_bulk(commands)
        m.latencies.append(clock() - t0)
    m.seconds += clock() - start
    m.events += max_id(crm) - before


# ----- backends -----------------------------------------------------------------------
@contextmanager
def sqlite_store() -> Iterator[tuple[str, str]]:
    with tempfile.TemporaryDirectory(prefix="crm-bench-") as tmp:
        yield f"sqlite:///{Path(tmp) / 'ours.db'}", f"sqlite:///{Path(tmp) / 'bare.db'}"


@contextmanager
def postgres_store(pg_url: str) -> Iterator[tuple[str, str]]:
    import psycopg

    parsed = urlparse(pg_url)
    name = f"crm_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        # One scratch database; the two applications write to their own tables
        # (eventsourcing names them after the application: crm_events, barebench_events).
        url = urlunparse(parsed._replace(path="/" + name, query=""))
        yield url, url
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def make_apps(ours_url: str, bare_url: str) -> tuple[CRM, Bare]:
    crm = CRM(ours_url, snapshot_interval=SNAPSHOT_INTERVAL)
    # The settings CRM.__init__ builds: the store's, plus snapshotting (Bare.env = CRMEventStore.env
    # supplies the mapper and transcoder topics).
    env = StoreURL.parse(bare_url).eventsourcing_env()
    env["IS_SNAPSHOTTING_ENABLED"] = "y"
    if env["PERSISTENCE_MODULE"] in STOCK_RECORDERS:
        env["APPLICATION_RECORDER_TOPIC"] = STOCK_RECORDERS[env["PERSISTENCE_MODULE"]]
    bare = Bare(env)
    for a, b in (
        (bare.mapper, crm.app.mapper),
        (bare.mapper.transcoder, crm.app.mapper.transcoder),
    ):
        assert type(a) is type(b), (a, b)
    assert getattr(bare.mapper, "sealer", None) is None, "bare must not encrypt"
    assert not hasattr(bare.recorder, "chain_table"), "bare must not chain"
    return crm, bare


@dataclass
class BackendResult:
    backend: str
    ours: Measure
    bare: Measure
    bulk: Measure
    bulk_batch: int
    commands: int


def bench_backend(
    backend: str, urls: tuple[str, str], n: int, rounds: int, batch: int
) -> BackendResult:
    crm, bare_app = make_apps(*urls)
    ours_d, bare_d = OursDriver(crm), BareDriver(bare_app)
    ours, bare, bulk = Measure(), Measure(), Measure()
    try:
        with command_context(actor="li.wei", source_system="bench"):
            # Warm up both (connections, caches, pydantic, SQL statements).
            warm = max(10, n // 20)
            run_pair([(crm, ours_d, Measure()), (bare_app, bare_d, Measure())], warm, "w")
            run_bulk(crm, make_units(warm, "wb"), batch, Measure())
            per_round = max(1, n // rounds)
            for _ in range(rounds):
                run_pair([(crm, ours_d, ours), (bare_app, bare_d, bare)], per_round, "s")
                run_bulk(crm, make_units(per_round, "b"), batch, bulk)
        expected = per_round * rounds * EVENTS_PER_UNIT
        for label, m in (("ours", ours), ("bare", bare), ("bulk", bulk)):
            if m.events != expected:
                console.print(
                    f"[yellow]{backend}/{label}: stored {m.events} events, expected {expected}"
                )
        return BackendResult(backend, ours, bare, bulk, batch, per_round * rounds * len(STEPS))
    finally:
        crm.close()
        bare_app.close()


# ----- report -------------------------------------------------------------------------
def ms(x: float) -> str:
    return f"{x * 1000:.2f}"


def verdict(ok: bool) -> str:
    return "[green]met[/green]" if ok else "[red]NOT met[/red]"


def report(results: list[BackendResult]) -> None:
    t = Table(title="Single commands: ours (CRM) vs bare eventsourcing Application")
    for col in (
        "backend",
        "side",
        "commands",
        "events",
        "events/s",
        "p50 ms",
        "p99 ms",
        "ours/bare",
        f">= {TARGET_RATIO}",
    ):
        t.add_column(col, justify="right" if col not in ("backend", "side") else "left")
    for r in results:
        ratio = r.ours.rate / r.bare.rate if r.bare.rate else 0.0
        for side, m in (("ours", r.ours), ("bare", r.bare)):
            t.add_row(
                r.backend,
                side,
                str(len(m.latencies)),
                str(m.events),
                f"{m.rate:,.0f}",
                ms(m.p50),
                ms(m.p99),
                f"{ratio:.3f}" if side == "ours" else "",
                verdict(ratio >= TARGET_RATIO) if side == "ours" else "",
            )
        t.add_section()
    console.print(t)

    s = Table(title="Per command type: p50 latency, ms (ours / bare)")
    s.add_column("command")
    for r in results:
        s.add_column(f"{r.backend} ours", justify="right")
        s.add_column(f"{r.backend} bare", justify="right")
        s.add_column(f"{r.backend} ratio", justify="right")
    for step in STEPS:
        row = [step]
        for r in results:
            o, b_ = r.ours.pct(0.5, step), r.bare.pct(0.5, step)
            row += [ms(o), ms(b_), f"{b_ / o:.2f}" if o else ""]
        s.add_row(*row)
    console.print(s)

    b = Table(title="Bulk path (crm.run_bulk, one transaction per call) vs single commands")
    for col in (
        "backend",
        "units/call",
        "cmds/call",
        "calls",
        "events",
        "bulk events/s",
        "single events/s",
        "call p50 ms",
        "call p99 ms",
        "bulk/single",
        ">= 5x",
    ):
        b.add_column(col, justify="left" if col == "backend" else "right")
    for r in results:
        ratio = r.bulk.rate / r.ours.rate if r.ours.rate else 0.0
        b.add_row(
            r.backend,
            str(r.bulk_batch),
            str(r.bulk_batch * len(STEPS)),
            str(len(r.bulk.latencies)),
            str(r.bulk.events),
            f"{r.bulk.rate:,.0f}",
            f"{r.ours.rate:,.0f}",
            ms(r.bulk.p50),
            ms(r.bulk.p99),
            f"{ratio:.1f}x",
            verdict(ratio >= TARGET_BULK),
        )
    console.print(b)
    console.print(
        f"mix per customer: {', '.join(STEPS)} ({EVENTS_PER_UNIT} events; 'register' stores "
        "the customer and its code claim). Latency is per command (bulk: per call)."
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--n", type=int, default=400, help="customers per side per backend (x8 commands)"
    )
    p.add_argument(
        "--backends",
        default="sqlite,postgres",
        help="comma-separated: sqlite, postgres, memory (in-process, CPU cost only)",
    )
    p.add_argument("--pg-url", default=DEFAULT_PG_URL, help="server to make a scratch db on")
    p.add_argument("--rounds", type=int, default=4, help="rounds: ours/bare interleaved, then bulk")
    p.add_argument("--batch", type=int, default=50, help="customers per bulk call")
    args = p.parse_args(argv)

    results: list[BackendResult] = []
    for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
        started = time.perf_counter()
        try:
            if backend == "sqlite":
                with sqlite_store() as urls:
                    results.append(bench_backend(backend, urls, args.n, args.rounds, args.batch))
            elif backend == "memory":  # no I/O: shows the CPU cost of our layer alone
                urls = ("memory://", "memory://")
                results.append(bench_backend(backend, urls, args.n, args.rounds, args.batch))
            elif backend in ("postgres", "postgresql", "pg"):
                with postgres_store(args.pg_url) as urls:
                    results.append(bench_backend("postgres", urls, args.n, args.rounds, args.batch))
            else:
                console.print(f"[red]unknown backend {backend!r} (sqlite, postgres, memory)")
                continue
        except Exception as exc:  # a benchmark reports and carries on
            console.print(f"[red]{backend}: failed: {type(exc).__name__}: {exc}")
            continue
        console.print(f"[dim]{backend}: {time.perf_counter() - started:.1f}s")
    if results:
        report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
