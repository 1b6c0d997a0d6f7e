"""Embedding crm-core in your own service.

A small help-desk service owns a ``CRM`` and turns its own requests into CRM commands.
Each request sets the command context (who is acting, the trace id, and the request id as
the command id), so a retried HTTP request is stored once and every event says who did
it. When a customer calls in, the agent finds them by customer code and sees their
earlier issues before saying a word.

Run it with no server::

    python examples/embed.py                    # a temporary SQLite file
    python examples/embed.py --store memory://  # or any store URL (postgresql://...)
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass, field
from datetime import date, time
from pathlib import Path
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

from crm_domain import CRM, BusinessCalendar, CRMError, SlaPolicy
from crm_domain.values import TicketStatus


@dataclass(frozen=True)
class Request:
    """What our web framework hands us: the API user, and the request's ids."""

    user: str
    request_id: str = field(default_factory=lambda: uuid4().hex)
    trace_id: str = field(default_factory=lambda: uuid4().hex)


class HelpdeskService:
    """Our service: the only place that talks to the CRM."""

    def __init__(self, store: str) -> None:
        calendar = BusinessCalendar(
            timezone="Asia/Shanghai",
            opens=time(9, 0),
            closes=time(18, 0),
            holidays=frozenset({date(2031, 10, 1)}),
        )
        self.zone = ZoneInfo(calendar.timezone)
        self.crm = CRM(store, sla=SlaPolicy(calendar=calendar), source_system="acme-helpdesk")

    def onboard(self, req: Request, *, name: str, code: str, email: str, phone: str) -> UUID:
        ctx = self.crm.context(
            actor=req.user, command_id=req.request_id, correlation_id=req.trace_id
        )
        with ctx:
            return self.crm.register_customer(
                kind="enterprise",
                name=name,
                code=code,
                contact={"email": email, "phone": phone},
                source_channel="web-signup",
            )

    def incoming_call(self, req: Request, *, code: str, summary: str, complaint: bool) -> UUID:
        """A customer calls the hotline: show their history, log the call, open a ticket."""
        customer = self.crm.customer_by_code(code)
        print(f"Call from {customer.name} ({customer.code}), manager {customer.manager}")
        for ticket in customer.tickets.values():
            print(f"  earlier issue: {ticket.subject!r} ({ticket.status.value})")
        # One request, two commands: each gets its own id derived from the request id, so a
        # retried request neither logs the call twice nor opens a second ticket.
        with self.crm.context(actor=req.user, correlation_id=req.trace_id):
            with self.crm.context(command_id=f"{req.request_id}/log"):
                self.crm.log_contact(
                    customer.id, channel="call_centre", direction="inbound", summary=summary
                )
            with self.crm.context(command_id=f"{req.request_id}/ticket"):
                ticket_id = self.crm.open_ticket(
                    customer.id,
                    kind="complaint" if complaint else "inquiry",
                    subject=summary,
                    channel="call_centre",
                )
        due = self.crm.customer(customer.id).ticket(ticket_id).due_at.astimezone(self.zone)
        print(f"  ticket opened, due {due:%a %H:%M} Guangzhou time")
        return ticket_id

    def resolve(self, req: Request, *, code: str, ticket_id: UUID, answer: str) -> None:
        customer = self.crm.customer_by_code(code)
        with self.crm.context(actor=req.user, command_id=req.request_id):
            self.crm.resolve_ticket(customer.id, ticket_id, answer=answer)

    def handover(self, req: Request, *, code: str, to: str, reason: str) -> None:
        customer = self.crm.customer_by_code(code)
        with self.crm.context(actor=req.user, command_id=req.request_id):
            self.crm.assign_customer_manager(customer.id, manager=to, reason=reason)

    def audit_trail(self, code: str) -> None:
        customer = self.crm.customer_by_code(code)
        print(f"Audit trail for {customer.code}:")
        for change in self.crm.changes(customer.id):
            what = change.event_type.split(".")[-1]
            keys = ("reason", "subject", "summary", "answer", "name")
            why = next((str(change.payload[k]) for k in keys if change.payload.get(k)), "")
            print(f"  v{change.version:<2} {what:<16} by {change.actor:<11} {why}")


def main() -> None:
    parser = argparse.ArgumentParser(description="A help desk embedding crm-core.")
    parser.add_argument("--store", help="store URL (default: a temporary SQLite file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        service = HelpdeskService(args.store or f"sqlite:///{Path(tmp) / 'helpdesk.sqlite'}")
        crm = service.crm
        acme = {"name": "Acme Logistics", "email": "ops@acme.example", "phone": "+86 20 5555 0101"}

        signup = Request(user="web-signup")
        service.onboard(signup, code="ACME-001", **acme)
        stored = crm.app.recorder.max_notification_id()
        service.onboard(signup, code="ACME-001", **acme)  # the client timed out and retried
        again = crm.app.recorder.max_notification_id()
        print(f"Retried sign-up stored nothing new: {again == stored}")
        try:
            service.onboard(Request(user="web-signup"), code="acme-001", **acme)
        except CRMError as exc:
            print(f"Rejected: {exc}")

        service.handover(
            Request(user="sales.lead"), code="ACME-001", to="li.wei", reason="new key account"
        )
        call = Request(user="agent.chen")
        ticket = service.incoming_call(
            call, code="ACME-001", summary="Parcel scanner offline", complaint=True
        )
        stored = crm.app.recorder.max_notification_id()
        service.incoming_call(  # the agent's browser re-sent the form
            call, code="ACME-001", summary="Parcel scanner offline", complaint=True
        )
        again = crm.app.recorder.max_notification_id()
        print(f"Re-sent call form stored nothing new: {again == stored}")
        service.resolve(
            Request(user="agent.chen"),
            code="ACME-001",
            ticket_id=ticket,
            answer="Replaced the unit",
        )
        service.handover(
            Request(user="sales.lead"), code="ACME-001", to="zhao.lei", reason="li.wei left"
        )
        service.incoming_call(
            Request(user="agent.wu"), code="ACME-001", summary="Invoice copy", complaint=False
        )
        tickets = crm.customer_by_code("ACME-001").tickets.values()
        print(f"Open tickets: {sum(t.status is TicketStatus.OPEN for t in tickets)}")
        service.audit_trail("ACME-001")
        print(f"Events stored: {crm.app.recorder.max_notification_id()}")
        crm.close()


if __name__ == "__main__":
    main()
