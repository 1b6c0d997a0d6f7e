"""Every Customer command through the CRM: what it records, and what each bad input gets."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest

from crm_domain import CRM, Commitment, ContactDetails, Customer
from crm_domain.errors import (
    ConsentRequiredError,
    CustomerNotFoundError,
    EntityNotFoundError,
    InactiveCustomerError,
    InvalidCommandError,
    LifecycleTransitionError,
    OpenComplaintError,
    RuleViolationError,
    SatisfactionNotAllowedError,
    TicketStateError,
    UnknownValueError,
)
from crm_domain.values import Channel, SatisfactionClass, TicketKind, TicketStatus

Rejects = Callable[..., BaseException]


def event_types(app: CRM, aggregate_id: UUID) -> list[str]:
    return [type(e).__name__ for e in app.history(aggregate_id)]


def last_event(app: CRM, aggregate_id: UUID) -> object:
    return app.history(aggregate_id)[-1]


# ----- registration and profile ----------------------------------------------------------


def test_register_records_profile_and_starts_in_initial_stage(app: CRM) -> None:
    cid = app.register_customer(
        kind="individual",
        name="Chen Jing",
        code="P-0001",
        contact=ContactDetails(email="chen.jing@example.com", phone="(020) 3456-7890"),
        source_channel="web",
    )
    customer = app.customer(cid)
    assert customer.kind == "individual"
    assert customer.name == "Chen Jing"
    assert customer.code == "P-0001"
    assert customer.contact.email == "chen.jing@example.com"
    assert customer.contact.phone == "02034567890"
    assert customer.source_channel == "web"
    assert customer.lifecycle_stage == "potential"
    assert customer.active is True
    assert event_types(app, cid) == ["Registered"]


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"kind": "alien"}, InvalidCommandError),
        ({"name": ""}, InvalidCommandError),
        ({"code": "has spaces"}, InvalidCommandError),
        ({"code": ""}, InvalidCommandError),
        ({"contact": {"email": "not-an-address"}}, InvalidCommandError),
        ({"contact": {"phone": "call me"}}, InvalidCommandError),
        ({"contact": {"fax": "+8620123456"}}, InvalidCommandError),
        ({"source_channel": ""}, InvalidCommandError),
        ({"parent_id": uuid4()}, CustomerNotFoundError),
    ],
)
def test_register_rejects_bad_input(
    app: CRM, rejects: Rejects, kwargs: dict[str, object], error: type[Exception]
) -> None:
    base: dict[str, object] = {"kind": "enterprise", "name": "Acme", "code": "ACME-1"}
    rejects(error, app.register_customer, **(base | kwargs))
    # The code was not claimed by the failed attempt.
    assert app.customer(app.register_customer(**base)).code == "ACME-1"  # type: ignore[arg-type]


def test_register_under_parent_organisation(app: CRM, customer_id: UUID) -> None:
    branch = app.register_customer(
        kind="enterprise", name="Baiyun Shenzhen branch", code="GZBY-SZ", parent_id=customer_id
    )
    assert app.customer(branch).parent_id == customer_id


def test_correct_profile_keeps_old_values_in_history(app: CRM, customer_id: UUID) -> None:
    app.correct_customer_profile(
        customer_id,
        reason="typo in the name",
        name="Guangzhou Baiyun Trading Co.",
        contact=ContactDetails(email="sales@gzby.example.cn"),
    )
    customer = app.customer(customer_id)
    assert customer.name == "Guangzhou Baiyun Trading Co."
    assert customer.contact.email == "sales@gzby.example.cn"
    registered, corrected = app.history(customer_id)
    assert isinstance(registered, Customer.Registered)
    assert registered.name == "Guangzhou Baiyun Trading"
    assert isinstance(corrected, Customer.ProfileCorrected)
    assert corrected.reason == "typo in the name"


def test_correct_profile_rejects_empty_and_bad_corrections(
    app: CRM, rejects: Rejects, customer_id: UUID
) -> None:
    rejects(InvalidCommandError, app.correct_customer_profile, customer_id, reason="nothing")
    rejects(InvalidCommandError, app.correct_customer_profile, customer_id, reason="", name="X")
    rejects(InvalidCommandError, app.correct_customer_profile, customer_id, reason="r", kind="x")
    rejects(CustomerNotFoundError, app.correct_customer_profile, uuid4(), reason="r", name="X")


def test_set_parent_organisation_and_remove_it(app: CRM, customer_id: UUID) -> None:
    group = app.register_customer(kind="enterprise", name="Baiyun Group", code="GROUP-1")
    app.set_parent_organisation(customer_id, group)
    assert app.customer(customer_id).parent_id == group
    app.set_parent_organisation(customer_id, None)
    assert app.customer(customer_id).parent_id is None
    assert event_types(app, customer_id)[-2:] == ["ParentOrganisationSet"] * 2


def test_set_parent_organisation_rules(app: CRM, rejects: Rejects, customer_id: UUID) -> None:
    rejects(RuleViolationError, app.set_parent_organisation, customer_id, customer_id)
    rejects(CustomerNotFoundError, app.set_parent_organisation, customer_id, uuid4())


def test_deactivate_and_reactivate_never_delete(app: CRM, customer_id: UUID) -> None:
    app.deactivate_customer(customer_id, reason="company dissolved")
    assert app.customer(customer_id).active is False
    assert app.customer_by_code("GZBY-001").id == customer_id
    app.reactivate_customer(customer_id, reason="restructured, trading again")
    assert app.customer(customer_id).active is True
    assert event_types(app, customer_id) == ["Registered", "Deactivated", "Reactivated"]


def test_deactivate_rules(app: CRM, rejects: Rejects, customer_id: UUID) -> None:
    rejects(RuleViolationError, app.reactivate_customer, customer_id, reason="already active")
    rejects(InvalidCommandError, app.deactivate_customer, customer_id, reason="")
    app.deactivate_customer(customer_id, reason="dissolved")
    rejects(InactiveCustomerError, app.deactivate_customer, customer_id, reason="again")


@pytest.mark.parametrize(
    ("command", "kwargs"),
    [
        ("change_lifecycle_stage", {"to_stage": "development", "reason": "r"}),
        ("log_contact", {"channel": "phone", "direction": "inbound", "summary": "hello"}),
        ("assign_customer_manager", {"manager": "li.wei", "reason": "r"}),
        ("assign_support_owner", {"owner": "wang.fang", "reason": "r"}),
        ("assign_segment", {"segment": "smb"}),
        ("assign_grade", {"grade": "A"}),
        ("open_ticket", {"kind": "inquiry", "subject": "s", "channel": "phone"}),
    ],
)
def test_inactive_customer_rejects_commands(
    app: CRM, rejects: Rejects, customer_id: UUID, command: str, kwargs: dict[str, object]
) -> None:
    app.deactivate_customer(customer_id, reason="dissolved")
    rejects(InactiveCustomerError, getattr(app, command), customer_id, **kwargs)


@pytest.mark.parametrize(
    ("command", "kwargs"),
    [
        ("deactivate_customer", {"reason": "r"}),
        ("log_contact", {"channel": "phone", "direction": "inbound", "summary": "hello"}),
        ("assign_customer_manager", {"manager": "li.wei", "reason": "r"}),
        ("grant_consent", {"purpose": "newsletter", "channel": "email"}),
        ("record_satisfaction", {"score": 5}),
        ("open_ticket", {"kind": "inquiry", "subject": "s", "channel": "phone"}),
    ],
)
def test_unknown_customer_id_is_not_found(
    app: CRM, rejects: Rejects, command: str, kwargs: dict[str, object]
) -> None:
    rejects(CustomerNotFoundError, getattr(app, command), uuid4(), **kwargs)


# ----- lifecycle ---------------------------------------------------------------------------


def test_lifecycle_stage_change_records_reason(app: CRM, customer_id: UUID) -> None:
    app.change_lifecycle_stage(customer_id, to_stage="development", reason="first order")
    app.change_lifecycle_stage(customer_id, to_stage="growth", reason="repeat orders")
    assert app.customer(customer_id).lifecycle_stage == "growth"
    ev = last_event(app, customer_id)
    assert isinstance(ev, Customer.LifecycleStageChanged)
    assert (ev.from_stage, ev.to_stage, ev.reason) == ("development", "growth", "repeat orders")


def test_lifecycle_rejects_illegal_and_unknown_stages(
    app: CRM, rejects: Rejects, customer_id: UUID
) -> None:
    err = rejects(
        LifecycleTransitionError,
        app.change_lifecycle_stage,
        customer_id,
        to_stage="maturity",
        reason="skipping",
    )
    assert isinstance(err, LifecycleTransitionError)
    assert (err.from_stage, err.to_stage) == ("potential", "maturity")
    rejects(UnknownValueError, app.change_lifecycle_stage, customer_id, to_stage="vip", reason="r")
    rejects(
        LifecycleTransitionError,
        app.change_lifecycle_stage,
        customer_id,
        to_stage="potential",
        reason="same stage",
    )
    rejects(
        InvalidCommandError,
        app.change_lifecycle_stage,
        customer_id,
        to_stage="development",
        reason="",
    )


def test_terminated_customer_can_be_won_back(app: CRM, customer_id: UUID) -> None:
    app.change_lifecycle_stage(customer_id, to_stage="termination", reason="went to competitor")
    app.change_lifecycle_stage(customer_id, to_stage="development", reason="won back")
    assert app.customer(customer_id).lifecycle_stage == "development"


# ----- interactions ------------------------------------------------------------------------


def test_log_contact_records_the_whole_interaction(app: CRM, customer_id: UUID) -> None:
    due = datetime(2031, 3, 2, 10, 0, tzinfo=UTC)
    with app.context(actor="li.wei"):
        contact_id = app.log_contact(
            customer_id,
            channel="visit",
            direction="outbound",
            summary="Demonstrated the scanners to the purchasing team",
            participants=["li.wei", "Mr Huang (purchasing)"],
            commitments=[{"description": "send a trial unit", "owner": "li.wei", "due": due}],
            next_step="follow-up call",
            next_step_due=due,
        )
    ev = last_event(app, customer_id)
    assert isinstance(ev, Customer.ContactLogged)
    assert ev.contact_id == contact_id
    assert ev.channel is Channel.VISIT
    assert ev.participants == ["li.wei", "Mr Huang (purchasing)"]
    assert ev.commitments == [Commitment(description="send a trial unit", owner="li.wei", due=due)]
    assert ev.next_step_due == due
    assert ev.logged_by == "li.wei"
    customer = app.customer(customer_id)
    assert customer.contacts_logged == 1
    assert customer.last_contact_at == ev.occurred_at


@pytest.mark.parametrize("channel", list(Channel))
def test_every_channel_is_accepted(app: CRM, customer_id: UUID, channel: Channel) -> None:
    app.log_contact(customer_id, channel=channel.value, direction="inbound", summary="s")
    ev = last_event(app, customer_id)
    assert isinstance(ev, Customer.ContactLogged)
    assert ev.channel is channel


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"channel": "fax"}, InvalidCommandError),
        ({"direction": "sideways"}, InvalidCommandError),
        ({"summary": ""}, InvalidCommandError),
        ({"next_step_due": datetime(2031, 1, 1)}, InvalidCommandError),  # naive
        ({"commitments": [{"description": "", "owner": "x"}]}, InvalidCommandError),
        # With a marketing purpose the channel is checked against consent: still typed.
        ({"channel": "fax", "marketing_purpose": "promo"}, UnknownValueError),
        ({"direction": "sideways", "marketing_purpose": "promo"}, UnknownValueError),
    ],
)
def test_log_contact_rejects_bad_input(
    app: CRM,
    rejects: Rejects,
    customer_id: UUID,
    kwargs: dict[str, object],
    error: type[Exception],
) -> None:
    base: dict[str, object] = {"channel": "phone", "direction": "outbound", "summary": "call"}
    rejects(error, app.log_contact, customer_id, **(base | kwargs))


def test_marketing_contact_needs_consent_for_purpose_and_channel(
    app: CRM, rejects: Rejects, customer_id: UUID
) -> None:
    send = {"direction": "outbound", "summary": "Spring seminar", "marketing_purpose": "seminars"}
    err = rejects(ConsentRequiredError, app.log_contact, customer_id, channel="sms", **send)
    assert isinstance(err, ConsentRequiredError)
    assert (err.purpose, err.channel) == ("seminars", "sms")
    app.grant_consent(customer_id, purpose="seminars", channel="email")
    # Consent on e-mail does not cover SMS, nor another purpose on e-mail.
    rejects(ConsentRequiredError, app.log_contact, customer_id, channel="sms", **send)
    rejects(
        ConsentRequiredError,
        app.log_contact,
        customer_id,
        channel="email",
        direction="outbound",
        summary="discount",
        marketing_purpose="promotions",
    )
    app.log_contact(customer_id, channel="email", **send)
    # An inbound contact about marketing needs no consent (the customer called us).
    app.log_contact(
        customer_id,
        channel="phone",
        direction="inbound",
        summary="asked about seminars",
        marketing_purpose="promotions",
    )
    app.withdraw_consent(customer_id, purpose="seminars", channel="email", reason="asked to stop")
    rejects(ConsentRequiredError, app.log_contact, customer_id, channel="email", **send)


def test_no_marketing_while_a_complaint_is_open(
    app: CRM, rejects: Rejects, customer_id: UUID
) -> None:
    app.grant_consent(customer_id, purpose="promotions", channel="email")
    send = {
        "channel": "email",
        "direction": "outbound",
        "summary": "Discount offer",
        "marketing_purpose": "promotions",
    }
    ticket = app.open_ticket(
        customer_id, kind="complaint", subject="Late delivery", channel="phone"
    )
    rejects(OpenComplaintError, app.log_contact, customer_id, **send)
    app.resolve_ticket(customer_id, ticket, answer="Delivered, apologised, voucher sent")
    app.log_contact(customer_id, **send)  # type: ignore[arg-type]
    assert app.customer(customer_id).contacts_logged == 1


def test_open_inquiry_does_not_block_marketing(app: CRM, customer_id: UUID) -> None:
    app.grant_consent(customer_id, purpose="promotions", channel="sms")
    app.open_ticket(customer_id, kind="inquiry", subject="Opening hours", channel="web")
    app.log_contact(
        customer_id,
        channel="sms",
        direction="outbound",
        summary="offer",
        marketing_purpose="promotions",
    )
    assert app.customer(customer_id).contacts_logged == 1


# ----- ownership, segmentation, consent ----------------------------------------------------


def test_manager_handover_keeps_previous_and_reason(app: CRM, customer_id: UUID) -> None:
    app.assign_customer_manager(customer_id, manager="li.wei", reason="key account")
    app.assign_customer_manager(customer_id, manager="zhao.lei", reason="li.wei left the company")
    assert app.customer(customer_id).manager == "zhao.lei"
    ev = last_event(app, customer_id)
    assert isinstance(ev, Customer.ManagerAssigned)
    assert (ev.previous_manager, ev.reason) == ("li.wei", "li.wei left the company")


def test_manager_rules(app: CRM, rejects: Rejects, customer_id: UUID) -> None:
    app.assign_customer_manager(customer_id, manager="li.wei", reason="key account")
    rejects(
        RuleViolationError, app.assign_customer_manager, customer_id, manager="li.wei", reason="r"
    )
    rejects(InvalidCommandError, app.assign_customer_manager, customer_id, manager="", reason="r")
    rejects(InvalidCommandError, app.assign_customer_manager, customer_id, manager="x", reason="")


def test_support_owner(app: CRM, rejects: Rejects, customer_id: UUID) -> None:
    app.assign_support_owner(customer_id, owner="wang.fang", reason="named support engineer")
    app.assign_support_owner(customer_id, owner="sun.hao", reason="wang.fang moved teams")
    assert app.customer(customer_id).support_owner == "sun.hao"
    ev = last_event(app, customer_id)
    assert isinstance(ev, Customer.SupportOwnerAssigned)
    assert ev.previous_owner == "wang.fang"
    rejects(InvalidCommandError, app.assign_support_owner, customer_id, owner="", reason="r")


def test_segment_and_grade(app: CRM, rejects: Rejects, customer_id: UUID) -> None:
    app.assign_segment(customer_id, segment="government-education")
    app.assign_grade(customer_id, grade="A")
    app.assign_grade(customer_id, grade="B")
    customer = app.customer(customer_id)
    assert (customer.segment, customer.grade) == ("government-education", "B")
    ev = last_event(app, customer_id)
    assert isinstance(ev, Customer.GradeAssigned)
    assert ev.previous_grade == "A"
    before = app.app.recorder.max_notification_id()
    app.assign_grade(customer_id, grade="B")  # no change: nothing to record
    app.assign_segment(customer_id, segment="government-education")
    assert app.app.recorder.max_notification_id() == before
    rejects(InvalidCommandError, app.assign_segment, customer_id, segment="")
    rejects(InvalidCommandError, app.assign_grade, customer_id, grade="")


def test_consent_per_purpose_and_channel(app: CRM, rejects: Rejects, customer_id: UUID) -> None:
    app.grant_consent(customer_id, purpose="newsletter", channel="email")
    app.grant_consent(customer_id, purpose="newsletter", channel="sms")
    app.grant_consent(customer_id, purpose="seminars", channel="letter")
    customer = app.customer(customer_id)
    assert customer.consents == {
        "newsletter": [Channel.EMAIL, Channel.SMS],
        "seminars": [Channel.LETTER],
    }
    assert customer.has_consent("newsletter", "sms")
    assert not customer.has_consent("seminars", "sms")
    before = app.app.recorder.max_notification_id()
    app.grant_consent(customer_id, purpose="newsletter", channel="email")  # already granted
    app.withdraw_consent(customer_id, purpose="seminars", channel="email")  # never granted
    assert app.app.recorder.max_notification_id() == before
    app.withdraw_consent(customer_id, purpose="newsletter", channel="sms", reason="STOP reply")
    app.withdraw_consent(customer_id, purpose="seminars", channel="letter")
    assert app.customer(customer_id).consents == {"newsletter": [Channel.EMAIL]}
    rejects(UnknownValueError, app.grant_consent, customer_id, purpose="p", channel="fax")
    rejects(UnknownValueError, app.withdraw_consent, customer_id, purpose="p", channel="fax")
    rejects(InvalidCommandError, app.grant_consent, customer_id, purpose="", channel="email")


def test_campaign_response(app: CRM, rejects: Rejects, customer_id: UUID) -> None:
    app.record_campaign_response(
        customer_id,
        campaign_id="spring-seminar-2031",
        response="registered",
        channel="web",
        registered=True,
    )
    ev = last_event(app, customer_id)
    assert isinstance(ev, Customer.CampaignResponseRecorded)
    assert (ev.campaign_id, ev.registered) == ("spring-seminar-2031", True)
    rejects(
        InvalidCommandError,
        app.record_campaign_response,
        customer_id,
        campaign_id="c",
        response="r",
        channel="carrier-pigeon",
    )
    rejects(
        InvalidCommandError,
        app.record_campaign_response,
        customer_id,
        campaign_id="",
        response="r",
        channel="web",
    )


# ----- satisfaction ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("score", "expected"),
    [
        (5, SatisfactionClass.LOYAL),
        (4, SatisfactionClass.AT_RISK),
        (3, SatisfactionClass.AT_RISK),
        (2, SatisfactionClass.DISSATISFIED),
        (1, SatisfactionClass.DISSATISFIED),
    ],
)
def test_satisfaction_classification(
    app: CRM, customer_id: UUID, score: int, expected: SatisfactionClass
) -> None:
    assert app.record_satisfaction(customer_id, score=score) is expected
    customer = app.customer(customer_id)
    assert (customer.satisfaction, customer.satisfaction_class) == (score, expected)
    ev = last_event(app, customer_id)
    assert isinstance(ev, Customer.SatisfactionRecorded)
    assert ev.classification is expected


@pytest.mark.parametrize("score", [0, 6, -1, 10])
def test_satisfaction_out_of_range(
    app: CRM, rejects: Rejects, customer_id: UUID, score: int
) -> None:
    rejects(InvalidCommandError, app.record_satisfaction, customer_id, score=score)


def test_satisfaction_only_on_resolved_ticket(
    app: CRM, rejects: Rejects, customer_id: UUID
) -> None:
    ticket = app.open_ticket(customer_id, kind="request", subject="Install", channel="phone")
    rejects(
        SatisfactionNotAllowedError, app.record_satisfaction, customer_id, score=5, ticket_id=ticket
    )
    rejects(EntityNotFoundError, app.record_satisfaction, customer_id, score=5, ticket_id=uuid4())
    app.resolve_ticket(customer_id, ticket, answer="Installed on site")
    assert (
        app.record_satisfaction(customer_id, score=4, ticket_id=ticket) is SatisfactionClass.AT_RISK
    )
    app.close_ticket(customer_id, ticket)
    assert (
        app.record_satisfaction(customer_id, score=5, ticket_id=ticket) is SatisfactionClass.LOYAL
    )


# ----- tickets -----------------------------------------------------------------------------


def test_ticket_full_lifecycle(app: CRM, customer_id: UUID) -> None:
    ticket = app.open_ticket(
        customer_id,
        kind="incident",
        subject="Scanner offline",
        channel="call_centre",
        priority="high",
        description="Three scanners in warehouse B",
    )
    app.assign_ticket(customer_id, ticket, assignee="sun.hao", department="field-service")
    with app.context(actor="sun.hao"):
        app.respond_to_ticket(customer_id, ticket, message="Engineer booked")
    visit = datetime(2031, 3, 4, 9, 30, tzinfo=UTC)
    app.schedule_field_visit(customer_id, ticket, visit_at=visit, engineer="sun.hao")
    assert app.escalate_ticket(customer_id, ticket, reason="parts missing") == 1
    assert app.escalate_ticket(customer_id, ticket, reason="still down", escalated_to="cto") == 2
    app.resolve_ticket(customer_id, ticket, answer="Firmware reflashed", knowledge_base_ref="KB-17")
    app.reopen_ticket(customer_id, ticket, reason="failed again next day")
    app.resolve_ticket(customer_id, ticket, answer="Replaced the unit")
    app.close_ticket(customer_id, ticket)

    t = app.customer(customer_id).ticket(ticket)
    assert t.kind is TicketKind.INCIDENT
    assert t.status is TicketStatus.CLOSED
    assert (t.assignee, t.department) == ("sun.hao", "field-service")
    assert t.first_response_at is not None
    assert t.escalation_level == 2
    assert t.reopen_count == 1
    assert event_types(app, customer_id)[1:] == [
        "TicketOpened",
        "TicketAssigned",
        "TicketResponded",
        "FieldVisitScheduled",
        "TicketEscalated",
        "TicketEscalated",
        "TicketResolved",
        "TicketReopened",
        "TicketResolved",
        "TicketClosed",
    ]
    responded = app.history(customer_id)[3]
    assert isinstance(responded, Customer.TicketResponded)
    assert responded.responder == "sun.hao"


def test_open_ticket_rejects_unknown_values(app: CRM, rejects: Rejects, customer_id: UUID) -> None:
    base = {"kind": "inquiry", "subject": "s", "channel": "phone"}
    rejects(InvalidCommandError, app.open_ticket, customer_id, **(base | {"kind": "gripe"}))
    rejects(InvalidCommandError, app.open_ticket, customer_id, **(base | {"channel": "fax"}))
    rejects(InvalidCommandError, app.open_ticket, customer_id, **(base | {"priority": "asap"}))
    rejects(InvalidCommandError, app.open_ticket, customer_id, **(base | {"subject": ""}))


def test_ticket_state_rules(app: CRM, rejects: Rejects, customer_id: UUID) -> None:
    ticket = app.open_ticket(customer_id, kind="inquiry", subject="Price list", channel="web")
    rejects(TicketStateError, app.close_ticket, customer_id, ticket)
    rejects(TicketStateError, app.reopen_ticket, customer_id, ticket, reason="not resolved")
    rejects(InvalidCommandError, app.assign_ticket, customer_id, ticket)
    rejects(InvalidCommandError, app.resolve_ticket, customer_id, ticket, answer="")
    app.resolve_ticket(customer_id, ticket, answer="Sent the price list")
    for step, kwargs in [
        ("resolve_ticket", {"answer": "again"}),
        ("assign_ticket", {"assignee": "x"}),
        ("respond_to_ticket", {"message": "m"}),
        ("escalate_ticket", {"reason": "r"}),
        ("schedule_field_visit", {"visit_at": datetime(2031, 1, 1, tzinfo=UTC), "engineer": "e"}),
    ]:
        rejects(TicketStateError, getattr(app, step), customer_id, ticket, **kwargs)
    app.close_ticket(customer_id, ticket)
    rejects(TicketStateError, app.reopen_ticket, customer_id, ticket, reason="closed stays closed")
    rejects(TicketStateError, app.close_ticket, customer_id, ticket)
    rejects(EntityNotFoundError, app.resolve_ticket, customer_id, uuid4(), answer="a")
    rejects(EntityNotFoundError, app.close_ticket, customer_id, uuid4())


def test_sla_breach_recorded_once_for_overdue_open_tickets(app: CRM, customer_id: UUID) -> None:
    start = datetime(2031, 3, 3, 10, 0, tzinfo=UTC)  # a Monday, 10:00
    with app.context(occurred_at=start):
        late = app.open_ticket(
            customer_id, kind="inquiry", subject="Where is my order", channel="phone"
        )
        done = app.open_ticket(customer_id, kind="inquiry", subject="Opening hours", channel="web")
        slow = app.open_ticket(customer_id, kind="request", subject="New user", channel="email")
    with app.context(occurred_at=start + timedelta(minutes=1)):
        app.resolve_ticket(customer_id, done, answer="9 to 5")
    # An inquiry's 10 minutes are its first-response clock (see test_service_clocks.py).
    assert app.customer(customer_id).ticket(late).response_due_at == start + timedelta(minutes=10)

    assert app.record_sla_breaches(customer_id, now=start + timedelta(minutes=5)) == []
    assert app.record_sla_breaches(customer_id, now=start + timedelta(minutes=11)) == [late]
    assert app.record_sla_breaches(customer_id, now=start + timedelta(minutes=30)) == []
    customer = app.customer(customer_id)
    assert customer.ticket(late).response_breached
    assert not customer.ticket(late).breached
    assert not customer.ticket(slow).breached
    breach = [e for e in app.history(customer_id) if isinstance(e, Customer.TicketSlaBreached)]
    assert len(breach) == 1
    assert breach[0].due_at == start + timedelta(minutes=10)
    assert breach[0].clock == "response"


def test_reopen_restarts_the_sla_clock(app: CRM, customer_id: UUID) -> None:
    monday = datetime(2031, 3, 3, 10, 0, tzinfo=UTC)
    with app.context(occurred_at=monday):
        ticket = app.open_ticket(
            customer_id, kind="complaint", subject="Rude driver", channel="phone"
        )
    app.record_sla_breaches(customer_id, now=monday + timedelta(days=1))
    app.resolve_ticket(customer_id, ticket, answer="Apologised")
    with app.context(occurred_at=monday + timedelta(days=2)):
        app.reopen_ticket(customer_id, ticket, reason="customer not satisfied")
    t = app.customer(customer_id).ticket(ticket)
    assert t.status is TicketStatus.OPEN
    assert not t.breached
    assert t.due_at == monday + timedelta(days=2, hours=4)


# ----- the aggregate on its own ----------------------------------------------------------


def test_rejected_aggregate_command_leaves_no_pending_event() -> None:
    customer = Customer.register(kind="individual", name="Chen", code="C1")
    customer.collect_events()
    with pytest.raises(LifecycleTransitionError):
        customer.change_lifecycle_stage(to_stage="maturity", reason="r")
    ticket = customer.open_ticket(
        kind="inquiry",
        priority="normal",
        channel="web",
        subject="s",
        due_at=datetime(2031, 1, 1, tzinfo=UTC),
    )
    customer.collect_events()
    with pytest.raises(TicketStateError):
        customer.close_ticket(ticket)
    assert customer.collect_events() == []
    assert customer.version == 2


# ----- commitments ----------------------------------------------------------------------------


def test_commitments_made_in_a_contact_stay_open_until_fulfilled(
    app: CRM, customer_id: UUID, rejects: Rejects
) -> None:
    contact = app.log_contact(
        customer_id,
        channel="visit",
        direction="outbound",
        summary="site visit",
        commitments=[
            {"description": "send quote", "owner": "li.wei"},
            {"description": "arrange demo", "owner": "zhang.min"},
        ],
    )
    assert set(app.customer(customer_id).open_commitments) == {f"{contact}/0", f"{contact}/1"}
    app.fulfil_commitment(customer_id, contact_id=contact, index=1, note="demo held")
    left = app.customer(customer_id).open_commitments
    assert list(left) == [f"{contact}/0"]
    assert left[f"{contact}/0"].description == "send quote"
    last = app.history(customer_id)[-1]
    assert isinstance(last, Customer.CommitmentFulfilled)
    assert last.note == "demo held"
    rejects(EntityNotFoundError, app.fulfil_commitment, customer_id, contact_id=contact, index=1)
    rejects(EntityNotFoundError, app.fulfil_commitment, customer_id, contact_id=contact, index=7)
    rejects(EntityNotFoundError, app.fulfil_commitment, customer_id, contact_id=contact, index=-1)
