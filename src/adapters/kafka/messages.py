"""The inbound message formats ERP and marketing systems send to the CRM.

Each message is a CloudEvents 1.0 event, structured (one JSON document,
``content-type: application/cloudevents+json``) or binary (``ce_*`` headers, JSON value),
whose ``type`` names one of the payload models below and whose ``data`` is that payload:

.. code-block:: json

    {"specversion": "1.0", "id": "erp-7731", "source": "urn:erp:sap-prod",
     "type": "erp.order_confirmed.v1", "time": "2024-05-02T09:30:00Z",
     "data": {"account_id": "...", "order_id": "...", "erp_reference": "SO-4711"}}

``id`` + ``source`` identify the message: they become the command id, so a message
delivered twice changes the CRM once. ``time`` is the business time of the fact.
Optional extensions ``correlationid`` and ``actor`` are carried onto the stored events.
The JSON Schema of every payload is in ``docs/schemas/inbound/``.
"""

from __future__ import annotations

from typing import Annotated, ClassVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from crm_domain.values import Channel, Money, OrderRejectionReason

Text = Annotated[str, Field(max_length=500)]
Label = Annotated[str, Field(min_length=1, max_length=100)]


class InboundPayload(BaseModel):
    """Base of the inbound payloads: unknown fields are rejected (a typo is an error)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: The CloudEvents ``type`` this payload travels under.
    TYPE: ClassVar[str]
    #: Which system sends it (documentation and default topic).
    SENDER: ClassVar[str]


class OrderConfirmed(InboundPayload):
    """ERP checked credit, margin and availability: the order may be promised."""

    TYPE = "erp.order_confirmed.v1"
    SENDER = "erp"
    account_id: UUID
    order_id: UUID
    erp_reference: Text = ""


class OrderRejected(InboundPayload):
    """ERP refused the order; ``reason`` is credit, margin or availability."""

    TYPE = "erp.order_rejected.v1"
    SENDER = "erp"
    account_id: UUID
    order_id: UUID
    reason: OrderRejectionReason
    detail: Text = ""


class OrderShipped(InboundPayload):
    """The warehouse shipped a confirmed order."""

    TYPE = "erp.order_shipped.v1"
    SENDER = "erp"
    account_id: UUID
    order_id: UUID
    shipment_ref: Text = ""


class InvoicePaid(InboundPayload):
    """A payment against an invoice was booked in ERP."""

    TYPE = "erp.invoice_paid.v1"
    SENDER = "erp"
    account_id: UUID
    invoice_id: UUID | None = None
    amount: Money
    reference: Text = ""


class OrderCancelled(InboundPayload):
    """ERP cancelled an order that had not shipped yet (the customer withdrew it)."""

    TYPE = "erp.order_cancelled.v1"
    SENDER = "erp"
    account_id: UUID
    order_id: UUID
    reason: Annotated[str, Field(min_length=1, max_length=500)]


class CreditNoteIssued(InboundPayload):
    """ERP's billing credited an invoice after a return or cancellation; ``credit_note_id``
    is ERP's id for it (a credit note is recorded once)."""

    TYPE = "erp.credit_note_issued.v1"
    SENDER = "erp"
    account_id: UUID
    invoice_id: UUID
    credit_note_id: UUID | None = None
    amount: Money
    reason: Annotated[str, Field(min_length=1, max_length=500)]
    reference: Text = ""


class RefundIssued(InboundPayload):
    """ERP paid money back to the customer against an invoice."""

    TYPE = "erp.refund_issued.v1"
    SENDER = "erp"
    account_id: UUID
    invoice_id: UUID
    amount: Money
    reason: Annotated[str, Field(min_length=1, max_length=500)]
    reference: Text = ""


class CreditLimitChanged(InboundPayload):
    """ERP's credit control set a new credit limit for the account."""

    TYPE = "erp.credit_limit_changed.v1"
    SENDER = "erp"
    account_id: UUID
    limit: Money


class CampaignResponse(InboundPayload):
    """A customer answered a campaign (opened, clicked, registered for an event...)."""

    TYPE = "marketing.campaign_response.v1"
    SENDER = "marketing"
    customer_id: UUID
    campaign_id: Label
    response: Label
    channel: Channel
    registered: bool = False


class Unsubscribed(InboundPayload):
    """A customer withdrew consent for a purpose on a channel (an unsubscribe link)."""

    TYPE = "marketing.unsubscribed.v1"
    SENDER = "marketing"
    customer_id: UUID
    channel: Channel
    purpose: Label = "marketing"
    reason: Text = ""


INBOUND_PAYLOADS: dict[str, type[InboundPayload]] = {
    cls.TYPE: cls
    for cls in (
        OrderConfirmed,
        OrderRejected,
        OrderShipped,
        OrderCancelled,
        InvoicePaid,
        CreditNoteIssued,
        RefundIssued,
        CreditLimitChanged,
        CampaignResponse,
        Unsubscribed,
    )
}
