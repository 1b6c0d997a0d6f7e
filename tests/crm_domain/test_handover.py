"""Handover: a leaver's customers, accounts, open deals and open promises move in one
transaction, with the history kept; the handover read model shows what moved to whom."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

import pytest

from crm_domain import CRM, Money
from crm_domain.commands import Command, ReassignCommitment
from crm_domain.customer import Customer
from crm_domain.errors import (
    CustomerNotFoundError,
    EntityNotFoundError,
    InvalidCommandError,
    RuleViolationError,
)
from projections.handover import HandoverQueries
from projections.runner import follow

LEAVER, SUCCESSOR, OTHER = "li.wei", "zhang.min", "wang.fang"
NOW = datetime(2031, 1, 1, tzinfo=UTC)


@dataclass
class Book:
    """A leaver's portfolio and a colleague's customer beside it."""

    acme: UUID
    acme_account: UUID
    open_deal: UUID
    won_deal: UUID
    colleague_deal: UUID
    contact: UUID
    bolt: UUID
    bolt_account: UUID
    other: UUID
    other_promise: UUID


def _book(crm: CRM) -> Book:
    with crm.context(actor="sales.admin"):
        acme = crm.register_customer(kind="enterprise", name="Acme Ltd", code="ACME")
        crm.assign_customer_manager(acme, manager=LEAVER, reason="key account")
        acme_account = crm.open_account(customer_id=acme, name="Acme B2B")
        crm.assign_account_manager(acme_account, manager=LEAVER, reason="key account")
        deal: dict[str, Any] = {
            "expected_close": date(2031, 6, 30),
            "amount": Money.of("1000", "CNY"),
        }
        open_deal = crm.open_opportunity(acme_account, name="Scanners", owner=LEAVER, **deal)
        won_deal = crm.open_opportunity(acme_account, name="Printers", owner=LEAVER, **deal)
        crm.win_opportunity(acme_account, won_deal, reason="signed")
        colleague_deal = crm.open_opportunity(acme_account, name="Service", owner=OTHER, **deal)
        contact = crm.log_contact(
            acme,
            channel="visit",
            direction="outbound",
            summary="site visit",
            commitments=[
                {"description": "send the quote", "owner": LEAVER},
                {"description": "arrange a demo", "owner": OTHER},
                {"description": "call back", "owner": LEAVER},
            ],
        )
        crm.fulfil_commitment(acme, contact_id=contact, index=2)
        # A second customer: only its account is the leaver's.
        bolt = crm.register_customer(kind="enterprise", name="Bolt Co", code="BOLT")
        crm.assign_customer_manager(bolt, manager=OTHER, reason="region north")
        bolt_account = crm.open_account(customer_id=bolt, name="Bolt B2B")
        crm.assign_account_manager(bolt_account, manager=LEAVER, reason="project lead")
        # A colleague's customer, on which the leaver made a promise.
        other = crm.register_customer(kind="enterprise", name="Crane AG", code="CRANE")
        crm.assign_customer_manager(other, manager=OTHER, reason="region south")
        other_promise = crm.log_contact(
            other,
            channel="phone",
            direction="inbound",
            summary="asked for references",
            commitments=[{"description": "send references", "owner": LEAVER}],
        )
    return Book(
        acme,
        acme_account,
        open_deal,
        won_deal,
        colleague_deal,
        contact,
        bolt,
        bolt_account,
        other,
        other_promise,
    )


@pytest.fixture
def crm() -> Iterator[CRM]:
    app = CRM("memory://")
    yield app
    app.close()


def test_reproduce_changing_the_manager_alone_leaves_the_rest_with_the_leaver(crm: CRM) -> None:
    """What the issue observed: a plain manager change moves nothing else."""
    book = _book(crm)
    crm.assign_customer_manager(book.acme, manager=SUCCESSOR, reason="li.wei left")
    account = crm.account(book.acme_account)
    assert account.manager == LEAVER
    assert account.opportunities[book.open_deal].owner == LEAVER
    assert crm.customer(book.acme).open_commitments[f"{book.contact}/0"].owner == LEAVER


def test_hand_over_moves_managers_open_deals_and_open_promises(crm: CRM) -> None:
    book = _book(crm)
    with crm.context(actor="sales.director"):
        result = crm.hand_over(LEAVER, SUCCESSOR, reason="li.wei left the company")

    acme, account = crm.customer(book.acme), crm.account(book.acme_account)
    assert acme.manager == SUCCESSOR
    assert account.manager == SUCCESSOR
    assert account.opportunities[book.open_deal].owner == SUCCESSOR
    # Closed deals and other people's things stay as they were.
    assert account.opportunities[book.won_deal].owner == LEAVER
    assert account.opportunities[book.colleague_deal].owner == OTHER
    promises = acme.open_commitments
    assert promises[f"{book.contact}/0"].owner == SUCCESSOR
    assert promises[f"{book.contact}/1"].owner == OTHER
    # The account of a colleague's customer, and a promise on another colleague's customer.
    assert crm.customer(book.bolt).manager == OTHER
    assert crm.account(book.bolt_account).manager == SUCCESSOR
    crane = crm.customer(book.other)
    assert crane.manager == OTHER
    assert crane.open_commitments[f"{book.other_promise}/0"].owner == SUCCESSOR

    assert sorted(m.kind for m in result.moves) == [
        "account",
        "account",
        "commitment",
        "commitment",
        "customer",
        "opportunity",
    ]
    assert set(result.customers) == {book.acme, book.bolt, book.other}
    assert result.left == []


def test_hand_over_keeps_the_history_with_the_reason(crm: CRM) -> None:
    book = _book(crm)
    crm.hand_over(LEAVER, SUCCESSOR, reason="li.wei left the company")
    history = crm.history(book.acme)
    assigned = [e for e in history if isinstance(e, Customer.ManagerAssigned)]
    assert [(e.previous_manager, e.manager) for e in assigned] == [
        (None, LEAVER),
        (LEAVER, SUCCESSOR),
    ]
    moved = [e for e in history if isinstance(e, Customer.CommitmentReassigned)]
    assert [(e.index, e.previous_owner, e.owner, e.reason) for e in moved] == [
        (0, LEAVER, SUCCESSOR, "li.wei left the company")
    ]
    # Every event of the handover carries one correlation id.
    last = [e for e in crm.history(book.acme_account) if e.originator_version > 1][-1]
    assert last.metadata["correlation_id"] == assigned[-1].metadata["correlation_id"]


def test_hand_over_is_one_transaction(crm: CRM) -> None:
    """A failure on the last change stores none of the others."""
    _book(crm)

    def refuse_promises(command: Command[Any], next_step: Any) -> Any:
        if isinstance(command, ReassignCommitment):
            raise RuleViolationError("promises are frozen today")
        return next_step(command)

    crm.middleware.append(refuse_promises)
    before = crm.app.recorder.max_notification_id()
    with pytest.raises(RuleViolationError):
        crm.hand_over(LEAVER, SUCCESSOR, reason="li.wei left")
    assert crm.app.recorder.max_notification_id() == before


def test_hand_over_only_the_named_customers(crm: CRM) -> None:
    book = _book(crm)
    result = crm.hand_over(LEAVER, SUCCESSOR, reason="split the book", customers=["acme"])
    assert result.customers == [book.acme]
    assert crm.customer(book.acme).manager == SUCCESSOR
    assert crm.account(book.bolt_account).manager == LEAVER
    assert crm.customer(book.other).open_commitments[f"{book.other_promise}/0"].owner == LEAVER
    by_id = crm.hand_over(LEAVER, SUCCESSOR, reason="the rest", customers=[book.bolt])
    assert [m.kind for m in by_id.moves] == ["account"]
    with pytest.raises(CustomerNotFoundError):
        crm.hand_over(LEAVER, SUCCESSOR, reason="x", customers=["NOPE"])


def test_hand_over_with_nothing_to_move_stores_nothing(crm: CRM) -> None:
    _book(crm)
    crm.hand_over(LEAVER, SUCCESSOR, reason="li.wei left")
    before = crm.app.recorder.max_notification_id()
    again = crm.hand_over(LEAVER, SUCCESSOR, reason="li.wei left")
    assert again.moves == []
    assert crm.app.recorder.max_notification_id() == before
    assert crm.hand_over("nobody", SUCCESSOR, reason="typo").moves == []


@pytest.mark.parametrize(
    ("src", "dst", "reason"),
    [(LEAVER, LEAVER, "x"), ("", SUCCESSOR, "x"), (LEAVER, " ", "x"), (LEAVER, SUCCESSOR, " ")],
)
def test_hand_over_needs_two_managers_and_a_reason(
    crm: CRM, src: str, dst: str, reason: str
) -> None:
    with pytest.raises(InvalidCommandError):
        crm.hand_over(src, dst, reason=reason)


def test_deactivated_customer_stays_and_is_reported(crm: CRM) -> None:
    book = _book(crm)
    crm.deactivate_customer(book.acme, reason="went bankrupt")
    result = crm.hand_over(LEAVER, SUCCESSOR, reason="li.wei left")
    assert crm.customer(book.acme).manager == LEAVER
    assert any("ACME is deactivated" in note for note in result.left)
    assert crm.account(book.acme_account).manager == SUCCESSOR


def test_reassigning_a_commitment_follows_the_rules(crm: CRM) -> None:
    book = _book(crm)
    with pytest.raises(EntityNotFoundError):  # fulfilled already
        crm.reassign_commitment(
            book.acme, contact_id=book.contact, index=2, owner=OTHER, reason="x"
        )
    with pytest.raises(RuleViolationError, match="already owns"):
        crm.reassign_commitment(
            book.acme, contact_id=book.contact, index=1, owner=OTHER, reason="x"
        )
    crm.reassign_commitment(book.acme, contact_id=book.contact, index=1, owner=LEAVER, reason="y")
    assert crm.customer(book.acme).open_commitments[f"{book.contact}/1"].owner == LEAVER


def test_handover_read_model_shows_what_moved_to_whom(store_url: str) -> None:
    crm = CRM(store_url)
    try:
        book = _book(crm)
        with crm.context(actor="sales.director"):
            result = crm.hand_over(LEAVER, SUCCESSOR, reason="li.wei left the company")
    finally:
        crm.close()
    with follow(store_url, read_models=["handover"]) as runner:
        runner.wait_until_current(timeout=60)
        q = HandoverQueries(runner.view.engine)
        leaver = q.for_manager(LEAVER, now=NOW)
        successor = q.for_manager(SUCCESSOR, now=NOW)
        one_handover = q.moves(correlation_id=result.correlation_id)
        everyone = q.moves()
    # The leaver's report lists nothing open any more.
    assert (leaver.customers, leaver.accounts, leaver.opportunities, leaver.commitments) == (
        [],
        [],
        [],
        [],
    )
    assert {c.code for c in successor.customers} == {"ACME", "BOLT"}
    # The open deals on the accounts now theirs: the one handed over, and a colleague's.
    assert {(o.opportunity_id, o.owner) for o in successor.opportunities} == {
        (book.open_deal, SUCCESSOR),
        (book.colleague_deal, OTHER),
    }
    # Open promises on their customers, and their own promises elsewhere.
    assert {(p.description, p.owner) for p in successor.commitments} == {
        ("send the quote", SUCCESSOR),
        ("arrange a demo", OTHER),
        ("send references", SUCCESSOR),
    }
    # What moved, to whom, when, by whom and why: the same on both sides.
    moved = {(m.kind, m.customer_code, m.name) for m in leaver.handed_over}
    assert moved == {
        ("customer", "ACME", "Acme Ltd"),
        ("account", "ACME", "Acme B2B"),
        ("opportunity", "ACME", "Scanners"),
        ("commitment", "ACME", "send the quote"),
        ("account", "BOLT", "Bolt B2B"),
        ("commitment", "CRANE", "send references"),
    }
    assert leaver.handed_over == successor.handed_over
    assert {(m.from_manager, m.to_manager, m.actor) for m in leaver.handed_over} == {
        (LEAVER, SUCCESSOR, "sales.director")
    }
    assert {m.correlation_id for m in leaver.handed_over} == {result.correlation_id}
    assert all(m.reason == "li.wei left the company" for m in leaver.handed_over)
    assert one_handover == leaver.handed_over
    # The moves of the handover, and no first assignment (None -> li.wei is not a move).
    assert len(everyone) == 6
