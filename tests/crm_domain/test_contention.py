"""Commuting commands under real contention: several writers (threads, each with its own
CRM and connections) on one customer and its account, on SQLite and PostgreSQL.

Before the retries backed off with jitter, colliding writers reloaded and saved again in
lockstep, each retry a coin toss, and a few percent of commands ran out of retries."""

from __future__ import annotations

import threading
from uuid import UUID

from crm_domain import CRM, Money
from crm_domain.errors import ConcurrencyConflictError

WRITERS = 4
COMMANDS = 24


def test_commuting_commands_all_succeed_with_concurrent_writers(store_url: str) -> None:
    setup = CRM(store_url)
    cid = setup.register_customer(kind="enterprise", name="Busy Ltd", code="BUSY")
    aid = setup.open_account(customer_id=cid, name="Busy")
    before = setup.customer(cid).version + setup.account(aid).version
    failures: list[BaseException] = []
    start = threading.Barrier(WRITERS, timeout=60)
    # Opened here, one after another: each writer has its own connections.
    crms = [CRM(store_url) for _ in range(WRITERS)]

    def writer(n: int, customer: UUID, account: UUID) -> None:
        crm = crms[n]
        try:
            start.wait()
            for i in range(COMMANDS):
                try:
                    if i % 2:
                        crm.receive_payment(account, amount=Money.of(1, "CNY"))
                    else:
                        crm.log_contact(
                            customer, channel="phone", direction="inbound", summary=f"{n}/{i}"
                        )
                except ConcurrencyConflictError as exc:
                    failures.append(exc)
        finally:
            crm.close()

    threads = [threading.Thread(target=writer, args=(n, cid, aid)) for n in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    after = setup.customer(cid).version + setup.account(aid).version
    assert after - before == WRITERS * COMMANDS  # each command stored exactly once
    setup.close()
