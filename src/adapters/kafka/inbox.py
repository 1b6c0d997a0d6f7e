"""The inbox: which inbound message ids the CRM has seen, and with what data.

A sender names a message by CloudEvents ``source`` + ``id``, and the spec requires that
pair to be unique per distinct event. The command id (``kafka:<source>:<id>``) already
makes a redelivered message store nothing twice, but it cannot tell a redelivery from a
*different* message that reuses an id: the second would be reported as applied while the
CRM kept the first one's data. So before a message is applied, the consumer records its
id with a hash of its type and data (:class:`ReceivedMessage`, in the event store, like
the command records); the same id with the same data is a duplicate, the same id with
other data is refused with :class:`~crm_domain.errors.IdempotencyKeyReusedError`.

The record is written *before* the command, in its own transaction: a crash in between
leaves a record without the command, and the redelivered message (same data) is then
applied; the command id keeps that exactly-once. Projections and the relay skip this
topic: it is bookkeeping, not a CRM fact.
"""

from __future__ import annotations

import hashlib
from enum import Enum
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

import orjson
from eventsourcing.domain import event
from eventsourcing.persistence import RecordConflictError

from crm_domain.application import CRM
from crm_domain.bookkeeping import CommandProcessed
from crm_domain.errors import IdempotencyKeyReusedError
from crm_domain.eventmodel import Aggregate

_NAMESPACE = uuid5(NAMESPACE_URL, "https://crm-core.dev/ids")


class ReceivedMessage(Aggregate):
    """One inbound message id, and the hash of the type and data it first came with."""

    class Received(Aggregate.Created):
        message_key: str
        message_type: str
        data_hash: str

    @staticmethod
    def create_id(message_key: str, **_: Any) -> UUID:
        return ReceivedMessage.id_for(message_key)

    @staticmethod
    def id_for(message_key: str) -> UUID:
        """The record's id for a message key: a redelivered message finds the same record."""
        return uuid5(_NAMESPACE, "inbound-message:" + message_key)

    @event(Received)
    def __init__(self, message_key: str, message_type: str, data_hash: str) -> None:
        self.message_key = message_key
        self.message_type = message_type
        self.data_hash = data_hash


def data_hash(message_type: str, data: Any) -> str:
    """SHA-256 of the type and the (validated, JSON-ready) data, keys sorted: the same
    data written with another key order or spacing has the same hash."""
    canonical = orjson.dumps([message_type, data], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


class Receipt(Enum):
    """What the inbox knew about a message id when it arrived."""

    NEW = "new"
    #: Seen before with the same data, and its command is stored: nothing to do.
    DUPLICATE = "duplicate"
    #: Seen before with the same data, but its command is not stored (the earlier attempt
    #: crashed, or the CRM refused it): apply it (again).
    RETRY = "retry"


def receive(crm: CRM, message_key: str, message_type: str, digest: str) -> Receipt:
    """Record that ``message_key`` arrived with this type and data hash.

    Raises :class:`IdempotencyKeyReusedError` when the id came before with other data.
    """
    record = ReceivedMessage(message_key=message_key, message_type=message_type, data_hash=digest)
    try:
        crm.app.save(record)
    except RecordConflictError:
        first: ReceivedMessage = crm.app.repository.get(record.id)
        if first.data_hash != digest or first.message_type != message_type:
            raise IdempotencyKeyReusedError(
                message_key,
                f"by a {first.message_type} message with other data "
                f"(sha256 {first.data_hash[:12]}..., now {message_type} {digest[:12]}...); "
                "a sender must give each distinct message its own id",
            ) from None
        if CommandProcessed.id_for(message_key) in crm.app.repository:
            return Receipt.DUPLICATE
        return Receipt.RETRY
    return Receipt.NEW
