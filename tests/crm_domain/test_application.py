"""The CRM application service: idempotent commands, metadata, customer codes, the bulk
path, automatic retry of commuting commands under a real concurrent write, and the reads
auditors use."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest

from crm_domain import CRM, Customer, Money
from crm_domain.bookkeeping import CommandProcessed, CustomerCodeClaim
from crm_domain.errors import (
    AccountNotFoundError,
    ConcurrencyConflictError,
    ConsentRequiredError,
    CRMError,
    CustomerNotFoundError,
    DuplicateCustomerCodeError,
    InvalidCommandError,
    NotFoundError,
    PipelineRuleError,
)
from crm_domain.values import SatisfactionClass

Rejects = Callable[..., BaseException]
CLOSE = date(2031, 6, 30)


class InterleavedCRM(CRM):
    """A CRM where another writer gets in between a command's load and its save.

    ``interloper`` runs right before ``save``: ``times`` times (then it is spent). It writes
    through a *second* application on the same database, as another process would.
    """

    interloper: Callable[[], object] | None = None
    times: int = 1
    saves_attempted: int = 0

    def _save(self, *objs: Any) -> None:
        self.saves_attempted += 1
        if self.interloper is not None and self.times > 0:
            self.times -= 1
            self.interloper()
        super()._save(*objs)


@pytest.fixture
def two_writers(tmp_path: Path) -> Iterator[tuple[InterleavedCRM, CRM]]:
    url = f"sqlite:///{tmp_path / 'shared.sqlite'}"
    ours, theirs = InterleavedCRM(url), CRM(url)
    yield ours, theirs
    ours.close()
    theirs.close()


def count(app: CRM) -> int:
    return app.app.recorder.max_notification_id() or 0


# ----- idempotent command ids ----------------------------------------------------------------


def test_repeated_command_id_stores_nothing_and_returns_same_result(app: CRM) -> None:
    with app.context(command_id="req-0001"):
        cid = app.register_customer(kind="enterprise", name="Acme", code="ACME")
    with app.context(command_id="req-0002"):
        contact = app.log_contact(cid, channel="phone", direction="inbound", summary="hello")
    stored = count(app)
    with app.context(command_id="req-0001"):
        assert app.register_customer(kind="enterprise", name="Acme", code="ACME") == cid
    with app.context(command_id="req-0002"):
        assert (
            app.log_contact(cid, channel="phone", direction="inbound", summary="hello") == contact
        )
    assert count(app) == stored
    assert app.customer(cid).contacts_logged == 1


def test_idempotent_results_keep_their_type(app: CRM, customer_id: UUID) -> None:
    with app.context(command_id="survey-17"):
        first = app.record_satisfaction(customer_id, score=3)
    with app.context(command_id="survey-17"):
        again = app.record_satisfaction(customer_id, score=3)
    assert first is again is SatisfactionClass.AT_RISK
    ticket = app.open_ticket(customer_id, kind="incident", subject="down", channel="phone")
    with app.context(command_id="esc-1"):
        assert app.escalate_ticket(customer_id, ticket, reason="r") == 1
    with app.context(command_id="esc-1"):
        assert app.escalate_ticket(customer_id, ticket, reason="r") == 1
    assert app.customer(customer_id).ticket(ticket).escalation_level == 1


def test_repeat_returns_first_result_even_if_state_moved_on(app: CRM, customer_id: UUID) -> None:
    with app.context(command_id="acct-1"):
        account = app.open_account(customer_id=customer_id, name="Acme B2B")
    app.deactivate_customer(customer_id, reason="dissolved")
    with app.context(command_id="acct-1"):
        assert app.open_account(customer_id=customer_id, name="Acme B2B") == account


def test_failed_command_does_not_consume_its_id(
    app: CRM, rejects: Rejects, customer_id: UUID
) -> None:
    with app.context(command_id="mgr-1"):
        rejects(
            InvalidCommandError, app.assign_customer_manager, customer_id, manager="", reason="r"
        )
    with app.context(command_id="mgr-1"):
        app.assign_customer_manager(customer_id, manager="li.wei", reason="first manager")
    assert app.customer(customer_id).manager == "li.wei"


def test_command_id_is_recorded_as_bookkeeping_not_as_a_crm_fact(
    app: CRM, customer_id: UUID
) -> None:
    with app.context(command_id="req-77"):
        app.assign_grade(customer_id, grade="A")
    record = app.app.repository.get(CommandProcessed.id_for("req-77"))
    assert isinstance(record, CommandProcessed)
    assert record.command == "assign_grade"
    assert [type(e).__name__ for e in app.history(customer_id)] == ["Registered", "GradeAssigned"]
    assert app.history(customer_id)[-1].metadata["command_id"] == "req-77"


# ----- metadata ------------------------------------------------------------------------------


def test_every_event_carries_actor_correlation_causation_and_source(app: CRM) -> None:
    with app.context(actor="li.wei", correlation_id="call-42", source_system="call-centre"):
        cid = app.register_customer(kind="individual", name="Chen", code="P-1")
        with app.context(command_id="req-9", causation_id="ivr-menu-3"):
            app.log_contact(cid, channel="call_centre", direction="inbound", summary="order status")
        app.open_ticket(cid, kind="inquiry", subject="order status", channel="call_centre")
    registered, contact, ticket = app.history(cid)
    for ev in (registered, contact, ticket):
        assert ev.metadata["actor"] == "li.wei"
        assert ev.metadata["correlation_id"] == "call-42"
        assert ev.metadata["source_system"] == "call-centre"
        assert ev.metadata["causation_id"]
    assert contact.metadata["causation_id"] == "ivr-menu-3"
    assert contact.metadata["command_id"] == "req-9"
    assert "command_id" not in ticket.metadata  # command ids are never inherited
    claim = app.app.events.get(CustomerCodeClaim.id_for("P-1"))
    assert next(iter(claim)).metadata["actor"] == "li.wei"


def test_default_metadata_and_application_source_system() -> None:
    app = CRM("memory://", source_system="erp-bridge")
    cid = app.register_customer(kind="individual", name="Chen", code="P-1")
    ev = app.history(cid)[0]
    assert ev.metadata["actor"] == "system"
    assert ev.metadata["source_system"] == "erp-bridge"
    assert ev.metadata["causation_id"] == ev.metadata["correlation_id"]
    with app.context(source_system="mobile-app"):
        app.assign_grade(cid, grade="B")
    assert app.history(cid)[-1].metadata["source_system"] == "mobile-app"


def test_business_time_of_an_offline_visit(app: CRM, customer_id: UUID) -> None:
    visited = datetime(2031, 2, 3, 15, 0, tzinfo=UTC)
    with app.context(actor="field.rep", occurred_at=visited):
        app.log_contact(customer_id, channel="visit", direction="outbound", summary="site visit")
    ev = app.history(customer_id)[-1]
    assert ev.occurred_at == visited
    assert ev.timestamp != visited
    assert app.customer(customer_id).last_contact_at == visited
    with pytest.raises(ValueError, match="timezone"), app.context(occurred_at=datetime(2031, 1, 1)):
        pass


# ----- customer codes ------------------------------------------------------------------------


def test_customer_found_by_code_when_they_call(app: CRM, customer_id: UUID) -> None:
    assert app.customer_by_code("GZBY-001").id == customer_id
    assert app.customer_by_code("gzby-001").id == customer_id
    assert app.customer_by_code(" GZBY-001 ").id == customer_id
    with pytest.raises(CustomerNotFoundError):
        app.customer_by_code("NOPE-404")


def test_customer_code_is_unique(app: CRM, rejects: Rejects, customer_id: UUID) -> None:
    err = rejects(
        DuplicateCustomerCodeError,
        app.register_customer,
        kind="individual",
        name="Someone else",
        code="GZBY-001",
    )
    assert isinstance(err, DuplicateCustomerCodeError)
    assert err.code == "GZBY-001"
    rejects(
        DuplicateCustomerCodeError,
        app.register_customer,
        kind="individual",
        name="Case",
        code="gzby-001",
    )
    assert app.customer_by_code("GZBY-001").name == "Guangzhou Baiyun Trading"


def test_concurrent_registrations_with_one_code_exactly_one_wins(
    two_writers: tuple[InterleavedCRM, CRM],
) -> None:
    ours, theirs = two_writers
    winner: list[UUID] = []
    ours.interloper = lambda: winner.append(
        theirs.register_customer(kind="enterprise", name="Theirs", code="DUP-1")
    )
    before = count(theirs)
    with pytest.raises(DuplicateCustomerCodeError):
        ours.register_customer(kind="enterprise", name="Ours", code="DUP-1")
    assert count(ours) == before + 2  # their Registered and their claim; nothing of ours
    assert ours.customer_by_code("DUP-1").id == winner[0]
    assert ours.customer_by_code("DUP-1").name == "Theirs"


def test_unknown_ids(app: CRM, customer_id: UUID) -> None:
    with pytest.raises(CustomerNotFoundError):
        app.customer(uuid4())
    account = app.open_account(customer_id=customer_id, name="Acme")
    with pytest.raises(CustomerNotFoundError):
        app.customer(account)  # an account id is not a customer id
    with pytest.raises(AccountNotFoundError):
        app.account(customer_id)
    with pytest.raises(NotFoundError, match="no customer or account"):
        app.history(uuid4())


# ----- bulk ----------------------------------------------------------------------------------


def test_bulk_saves_many_commands_for_many_aggregates(app: CRM) -> None:
    before = count(app)
    with app.bulk():
        ids = [
            app.register_customer(kind="individual", name=f"Customer {i}", code=f"B-{i}")
            for i in range(5)
        ]
        for cid in ids:
            app.log_contact(cid, channel="sms", direction="outbound", summary="welcome")
        account = app.open_account(customer_id=ids[0], name="First account")
        opp = app.open_opportunity(account, name="Deal", expected_close=CLOSE, owner="o")
        app.stage_opportunity(account, opp, stage="qualification")
        assert count(app) == before  # nothing is stored inside the block
    # 5 x (Registered + claim + ContactLogged) + Opened + OpportunityOpened + Staged
    assert count(app) == before + 18
    assert all(app.customer(cid).contacts_logged == 1 for cid in ids)
    assert app.account(account).opportunity(opp).stage == "qualification"
    assert app.customer_by_code("B-3").id == ids[3]


def test_run_bulk_returns_results_in_order(app: CRM, customer_id: UUID) -> None:
    results = app.run_bulk(
        [
            lambda crm: crm.open_ticket(customer_id, kind="inquiry", subject="a", channel="web"),
            lambda crm: crm.open_ticket(customer_id, kind="request", subject="b", channel="web"),
        ]
    )
    tickets = app.customer(customer_id).tickets
    assert [tickets[t].subject for t in results] == ["a", "b"]


def test_bulk_is_all_or_nothing_on_a_rule_violation(app: CRM, customer_id: UUID) -> None:
    before = count(app)

    def batch() -> None:
        with app.bulk():
            app.register_customer(kind="individual", name="New", code="NEW-1")
            app.log_contact(customer_id, channel="phone", direction="inbound", summary="s")
            account = app.open_account(customer_id=customer_id, name="Acme")
            opp = app.open_opportunity(account, name="Deal", expected_close=CLOSE, owner="o")
            app.win_opportunity(account, opp, reason="no amount")  # the last command fails

    with pytest.raises(PipelineRuleError):
        batch()
    assert count(app) == before
    with pytest.raises(CustomerNotFoundError):
        app.customer_by_code("NEW-1")


def test_bulk_rejects_duplicate_code_inside_the_batch(app: CRM) -> None:
    with pytest.raises(DuplicateCustomerCodeError):
        app.run_bulk(
            [
                lambda crm: crm.register_customer(kind="individual", name="One", code="SAME"),
                lambda crm: crm.register_customer(kind="individual", name="Two", code="same"),
            ]
        )
    assert count(app) == 0


def test_bulk_idempotency_and_nesting(app: CRM, customer_id: UUID) -> None:
    with app.bulk():
        with app.context(command_id="b-1"):
            first = app.log_contact(customer_id, channel="web", direction="inbound", summary="x")
        with app.context(command_id="b-1"):
            assert (
                app.log_contact(customer_id, channel="web", direction="inbound", summary="x")
                == first
            )
        with pytest.raises(InvalidCommandError), app.bulk():
            pass
    with app.context(command_id="b-1"):
        assert (
            app.log_contact(customer_id, channel="web", direction="inbound", summary="x") == first
        )
    assert app.customer(customer_id).contacts_logged == 1


def test_bulk_concurrent_write_saves_nothing(two_writers: tuple[InterleavedCRM, CRM]) -> None:
    ours, theirs = two_writers
    a = ours.register_customer(kind="individual", name="A", code="A")
    b = ours.register_customer(kind="individual", name="B", code="B")
    ours.interloper = lambda: theirs.log_contact(
        b, channel="phone", direction="inbound", summary="t"
    )
    before = count(ours)
    with pytest.raises(ConcurrencyConflictError):
        ours.run_bulk(
            [
                lambda crm: crm.log_contact(a, channel="email", direction="outbound", summary="o"),
                lambda crm: crm.log_contact(b, channel="email", direction="outbound", summary="o"),
            ]
        )
    assert count(ours) == before + 1  # only their contact
    assert ours.customer(a).contacts_logged == 0
    assert ours.customer(b).contacts_logged == 1


# ----- concurrency ---------------------------------------------------------------------------


def test_commuting_contact_log_is_retried_after_a_concurrent_write(
    two_writers: tuple[InterleavedCRM, CRM],
) -> None:
    ours, theirs = two_writers
    cid = ours.register_customer(kind="enterprise", name="Acme", code="ACME")
    theirs_contact: list[UUID] = []
    ours.interloper = lambda: theirs_contact.append(
        theirs.log_contact(cid, channel="phone", direction="inbound", summary="theirs")
    )
    ours.saves_attempted = 0
    mine = ours.log_contact(cid, channel="email", direction="outbound", summary="mine")
    assert ours.saves_attempted == 2  # conflicted once, retried once
    logged = [e for e in ours.history(cid) if isinstance(e, Customer.ContactLogged)]
    assert [e.contact_id for e in logged] == [theirs_contact[0], mine]
    assert ours.customer(cid).contacts_logged == 2


def test_staging_two_different_opportunities_commutes(
    two_writers: tuple[InterleavedCRM, CRM],
) -> None:
    ours, theirs = two_writers
    cid = ours.register_customer(kind="enterprise", name="Acme", code="ACME")
    account = ours.open_account(customer_id=cid, name="Acme")
    opp1 = ours.open_opportunity(account, name="One", expected_close=CLOSE, owner="o")
    opp2 = ours.open_opportunity(account, name="Two", expected_close=CLOSE, owner="o")
    ours.interloper = lambda: theirs.stage_opportunity(account, opp2, stage="proposal")
    ours.stage_opportunity(account, opp1, stage="qualification")
    acc = ours.account(account)
    assert acc.opportunity(opp1).stage == "qualification"
    assert acc.opportunity(opp2).stage == "proposal"


@pytest.mark.parametrize(
    ("ours_command", "theirs_command"),
    [
        pytest.param(
            lambda crm, ids: crm.stage_opportunity(ids["account"], ids["opp"], stage="proposal"),
            lambda crm, ids: crm.stage_opportunity(ids["account"], ids["opp"], stage="negotiation"),
            id="same-opportunity",
        ),
        pytest.param(
            lambda crm, ids: crm.issue_quote(
                ids["account"], ids["opp"], amount=Money.of(9, "CNY"), valid_until=CLOSE
            ),
            lambda crm, ids: crm.issue_quote(
                ids["account"], ids["opp"], amount=Money.of(8, "CNY"), valid_until=CLOSE
            ),
            id="two-quotes-one-opportunity",
        ),
        pytest.param(
            lambda crm, ids: crm.resolve_ticket(ids["customer"], ids["ticket"], answer="ours"),
            lambda crm, ids: crm.escalate_ticket(ids["customer"], ids["ticket"], reason="theirs"),
            id="same-ticket",
        ),
        pytest.param(
            lambda crm, ids: crm.assign_customer_manager(ids["customer"], manager="a", reason="r"),
            lambda crm, ids: crm.log_contact(
                ids["customer"], channel="web", direction="inbound", summary="s"
            ),
            id="non-commuting-command",
        ),
        pytest.param(
            lambda crm, ids: crm.change_lifecycle_stage(
                ids["customer"], to_stage="development", reason="r"
            ),
            lambda crm, ids: crm.change_lifecycle_stage(
                ids["customer"], to_stage="growth", reason="r"
            ),
            id="lifecycle",
        ),
    ],
)
def test_non_commuting_conflicts_surface_clearly(
    two_writers: tuple[InterleavedCRM, CRM],
    ours_command: Callable[[CRM, dict[str, UUID]], object],
    theirs_command: Callable[[CRM, dict[str, UUID]], object],
) -> None:
    ours, theirs = two_writers
    cid = ours.register_customer(kind="enterprise", name="Acme", code="ACME")
    account = ours.open_account(customer_id=cid, name="Acme")
    ids = {
        "customer": cid,
        "account": account,
        "opp": ours.open_opportunity(account, name="One", expected_close=CLOSE, owner="o"),
        "ticket": ours.open_ticket(cid, kind="incident", subject="down", channel="phone"),
    }
    ours.interloper = lambda: theirs_command(theirs, ids)
    before = count(ours)
    with pytest.raises(ConcurrencyConflictError) as info:
        ours_command(ours, ids)
    assert info.value.aggregate_id in (cid, account)
    assert count(ours) == before + 1  # theirs only


def test_retry_checks_the_rules_again(two_writers: tuple[InterleavedCRM, CRM]) -> None:
    ours, theirs = two_writers
    cid = ours.register_customer(kind="individual", name="Chen", code="P-1")
    ours.grant_consent(cid, purpose="promotions", channel="sms")
    ours.interloper = lambda: theirs.withdraw_consent(
        cid, purpose="promotions", channel="sms", reason="replied STOP"
    )
    before = count(ours)
    with pytest.raises(ConsentRequiredError):
        ours.log_contact(
            cid,
            channel="sms",
            direction="outbound",
            summary="offer",
            marketing_purpose="promotions",
        )
    assert count(ours) == before + 1


def test_retries_are_bounded(two_writers: tuple[InterleavedCRM, CRM]) -> None:
    ours, theirs = two_writers
    cid = ours.register_customer(kind="individual", name="Chen", code="P-1")
    ours.interloper = lambda: theirs.log_contact(
        cid, channel="phone", direction="inbound", summary="busy line"
    )
    ours.times = 100
    ours.saves_attempted = 0
    with pytest.raises(ConcurrencyConflictError, match="retries"):
        ours.log_contact(cid, channel="email", direction="outbound", summary="mine")
    assert ours.saves_attempted == ours.max_retries + 1
    assert ours.customer(cid).contacts_logged == ours.max_retries + 1  # all theirs


def test_idempotent_command_racing_itself(two_writers: tuple[InterleavedCRM, CRM]) -> None:
    ours, theirs = two_writers
    cid = ours.register_customer(kind="individual", name="Chen", code="P-1")
    theirs_result: list[UUID] = []

    def same_request_elsewhere() -> None:
        with theirs.context(command_id="req-dup"):
            theirs_result.append(
                theirs.log_contact(cid, channel="web", direction="inbound", summary="s")
            )

    ours.interloper = same_request_elsewhere
    with ours.context(command_id="req-dup"):
        result = ours.log_contact(cid, channel="web", direction="inbound", summary="s")
    assert result == theirs_result[0]
    assert ours.customer(cid).contacts_logged == 1


# ----- reads for auditors ----------------------------------------------------------------------


def test_history_and_changes_say_who_did_what(app: CRM) -> None:
    with app.context(actor="li.wei"):
        cid = app.register_customer(kind="enterprise", name="Acme", code="ACME")
        app.assign_customer_manager(cid, manager="li.wei", reason="new key account")
        app.log_contact(
            cid,
            channel="visit",
            direction="outbound",
            summary="agreed a 5% discount",
            commitments=[{"description": "5% discount on the Q3 order", "owner": "li.wei"}],
        )
    with app.context(actor="sales.director", correlation_id="handover-7"):
        app.assign_customer_manager(cid, manager="zhao.lei", reason="li.wei left the company")
    changes = app.changes(cid)
    assert [c.version for c in changes] == [1, 2, 3, 4]
    assert [c.event_type for c in changes] == [
        "Customer.Registered",
        "Customer.ManagerAssigned",
        "Customer.ContactLogged",
        "Customer.ManagerAssigned",
    ]
    assert [c.actor for c in changes] == ["li.wei"] * 3 + ["sales.director"]
    assert changes[3].correlation_id == "handover-7"
    assert changes[2].payload["commitments"][0]["description"] == "5% discount on the Q3 order"
    assert changes[3].payload["previous_manager"] == "li.wei"
    assert "metadata" not in changes[0].payload
    assert changes[0].payload["code"] == "ACME"
    assert changes[1].recorded_at <= changes[2].recorded_at
    until = app.changes(cid, until=changes[1].recorded_at)
    assert [c.version for c in until] == [1, 2]


def test_as_of_reads_what_was_known_then(app: CRM, customer_id: UUID) -> None:
    app.correct_customer_profile(customer_id, reason="renamed", name="Baiyun Holdings")
    registered_at = app.history(customer_id)[0].timestamp
    then = app.customer_as_of(customer_id, registered_at)
    assert then.name == "Guangzhou Baiyun Trading"
    assert then.version == 1
    assert app.customer_as_of(customer_id, datetime.now(UTC) + timedelta(days=1)).name == (
        "Baiyun Holdings"
    )
    with pytest.raises(CustomerNotFoundError):
        app.customer_as_of(customer_id, registered_at - timedelta(seconds=1))
    with pytest.raises(InvalidCommandError):
        app.customer_as_of(customer_id, datetime(2031, 1, 1))


def test_account_as_of(app: CRM, account_id: UUID, opportunity_id: UUID) -> None:
    app.stage_opportunity(account_id, opportunity_id, stage="proposal")
    opened_at = app.history(account_id)[1].timestamp
    assert app.account_as_of(account_id, opened_at).opportunity(opportunity_id).stage == (
        "prospecting"
    )
    with pytest.raises(AccountNotFoundError):
        app.account_as_of(account_id, opened_at - timedelta(days=1))


def test_crm_errors_are_one_family(app: CRM, customer_id: UUID) -> None:
    """Callers can catch CRMError for "the CRM said no" (validation and rules alike)."""
    for bad in (
        lambda: app.log_contact(customer_id, channel="fax", direction="inbound", summary="s"),
        lambda: app.change_lifecycle_stage(customer_id, to_stage="maturity", reason="r"),
        lambda: app.customer(uuid4()),
        lambda: Money.of("-3", "CNY"),
    ):
        with pytest.raises(CRMError):
            bad()


def test_a_command_id_names_one_command(app: CRM, rejects: Rejects, customer_id: UUID) -> None:
    """Reusing a request's id for a different command is an error, not a silent no-op."""
    with app.context(command_id="req-5"):
        ticket = app.open_ticket(customer_id, kind="inquiry", subject="s", channel="web")
    with app.context(command_id="req-5"):
        rejects(
            InvalidCommandError,
            app.resolve_ticket,
            customer_id,
            ticket,
            answer="a",
            match="already used for open_ticket",
        )
    with app.bulk(), app.context(command_id="req-6"):
        app.assign_grade(customer_id, grade="A")
    with app.bulk(), app.context(command_id="req-6"):
        rejects(InvalidCommandError, app.assign_segment, customer_id, segment="smb")


def test_subclassing_crm_keeps_the_same_store(tmp_path: Path) -> None:
    """A service's own subclass reads and writes the tables everyone else uses."""

    class HelpdeskCRM(CRM):
        pass

    class Named(CRM):
        name = "Archive"

    assert HelpdeskCRM.name == "CRM"
    assert Named.name == "Archive"
    url = f"sqlite:///{tmp_path / 'crm.sqlite'}"
    cid = CRM(url).register_customer(kind="individual", name="Chen", code="P-1")
    assert HelpdeskCRM(url).customer_by_code("P-1").id == cid
