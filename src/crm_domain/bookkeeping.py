"""Small aggregates that make rules hold across aggregates, in the same transaction.

``CustomerCodeClaimed``: a customer code is unique because its claim is an aggregate
whose id is derived from the code: two registrations with one code collide on the
event store's unique (id, version) key, so exactly one commits.

``CommandProcessed``: the result of a command with a command id, saved with the command's
own events; a repeat finds it and returns the same result, storing nothing. It keeps a
digest of the request, so the same id sent with another request is refused.

Projections and the Kafka relay ignore these topics: they are not CRM facts.
"""

from __future__ import annotations

from enum import Enum
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import event
from eventsourcing.utils import get_topic, resolve_topic

from crm_domain.eventmodel import Aggregate

_NAMESPACE = uuid5(NAMESPACE_URL, "https://crm-core.dev/ids")


class CustomerCodeClaim(Aggregate):
    """Claims one customer code for one customer."""

    class Claimed(Aggregate.Created):
        code: str
        customer_id: UUID

    @staticmethod
    def create_id(code: str, **_: Any) -> UUID:
        return CustomerCodeClaim.id_for(code)

    @staticmethod
    def id_for(code: str) -> UUID:
        """The claim's id for a customer code (case and surrounding space do not count)."""
        return uuid5(_NAMESPACE, "customer-code:" + code.strip().lower())

    @event(Claimed)
    def __init__(self, code: str, customer_id: UUID) -> None:
        self.code = code
        self.customer_id = customer_id


class CommandProcessed(Aggregate):
    """The recorded outcome of one idempotent command."""

    class Recorded(Aggregate.Created):
        command_id: str
        command: str
        result: dict[str, Any]
        #: Digest of the request (``Command.request_hash``); empty in records stored
        #: before it was kept, which then answer any repeat of their command.
        request_hash: str = ""

    @staticmethod
    def create_id(command_id: str, **_: Any) -> UUID:
        return CommandProcessed.id_for(command_id)

    @staticmethod
    def id_for(command_id: str) -> UUID:
        """The record's id for a command id: the same command id always finds the same record."""
        return uuid5(_NAMESPACE, "command:" + command_id)

    @event(Recorded)
    def __init__(
        self, command_id: str, command: str, result: dict[str, Any], request_hash: str = ""
    ) -> None:
        self.command_id = command_id
        self.command = command
        self.result = result
        self.request_hash = request_hash

    def restore_result(self) -> Any:
        """The command's result, as it was returned the first time."""
        return decode_result(self.result)


def encode_result(value: Any) -> dict[str, Any]:
    """A command result as JSON that :func:`decode_result` turns back into the same value."""
    if value is None:
        return {"type": "none"}
    if isinstance(value, UUID):
        return {"type": "uuid", "value": str(value)}
    if isinstance(value, Enum):
        return {"type": "enum", "topic": get_topic(type(value)), "value": value.value}
    if isinstance(value, bool | int | str):
        return {"type": "json", "value": value}
    if isinstance(value, list):
        return {"type": "list", "items": [encode_result(item) for item in value]}
    raise TypeError(f"cannot record a command result of type {type(value).__name__}")


def decode_result(data: dict[str, Any]) -> Any:
    """A command result from its stored form (see :func:`encode_result`)."""
    kind = data["type"]
    if kind == "none":
        return None
    if kind == "uuid":
        return UUID(data["value"])
    if kind == "enum":
        return resolve_topic(data["topic"])(data["value"])
    if kind == "list":
        return [decode_result(item) for item in data["items"]]
    return data["value"]


#: The bookkeeping event classes, for readers that only want CRM facts to skip.
BOOKKEEPING_EVENTS: tuple[type[Aggregate.Event], ...] = (
    CustomerCodeClaim.Claimed,
    CommandProcessed.Recorded,
)
