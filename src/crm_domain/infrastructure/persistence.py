"""How events are stored: pydantic models as JSON (orjson), with upcasting on read.

Follows the eventsourcing project's pydantic example (aggregate7's ``PydanticMapper`` and
``OrjsonTranscoder``), plus the library's ``class_version``/``upcast_vN_vM`` convention, so
an event class can change shape without rewriting stored history.

Writing, the mapper refuses an event larger than ``max_event_bytes`` (the setting of the
same name) with an :class:`~crm_domain.errors.InvalidCommandError`, before anything is
stored: one huge event must not hold the event store's write lock, nor exceed what a
Kafka broker takes (see ``docs/limits.md``). Reading, stored events are validated under
:data:`~crm_domain.eventmodel.STORED_EVENT_CONTEXT`: history is read as it was written, even
if a field's bound has since been tightened.

Personal fields of customers' events and snapshots are encrypted per data subject on the
way in and decrypted (or, once the subject's key is destroyed, left redacted) on the way
out, in all three directions alike (:meth:`PydanticMapper.to_stored_event`,
:meth:`~PydanticMapper.to_domain_event`, :meth:`~PydanticMapper.to_event_state`): see
:mod:`crm_domain.infrastructure.sealing`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import orjson
from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import Mapper, StoredEvent, Transcoder
from eventsourcing.utils import get_topic, resolve_topic
from pydantic import BaseModel

from crm_domain.errors import InvalidCommandError
from crm_domain.eventmodel import STORED_EVENT_CONTEXT, Snapshot

if TYPE_CHECKING:
    from crm_domain.infrastructure.sealing import PersonalDataSealer


#: How a sealed event's JSON names its encrypted personal fields (see
#: :data:`crm_domain.infrastructure.sealing.SEALED`): events without it are read fast.
SEALED_BYTES = b'"__sealed__"'


class OrjsonTranscoder(Transcoder):
    """JSON bytes via orjson (pydantic has already turned values into JSON types)."""

    def encode(self, obj: Any) -> bytes:
        return orjson.dumps(obj)

    def decode(self, data: bytes) -> Any:
        return orjson.loads(data)


class PydanticMapper(Mapper[Any]):
    """Maps pydantic domain events to stored events and back."""

    #: The largest event (bytes of its JSON) this mapper writes; None: no limit. Snapshots
    #: are exempt: they are derived from events already accepted, and refusing one would
    #: refuse every later command on the aggregate.
    max_event_bytes: int | None = None
    #: Encrypts customers' personal fields (set by the CRM's event store); None: stored
    #: and read as they are.
    sealer: PersonalDataSealer | None = None

    def to_stored_event(self, domain_event: DomainEventProtocol[Any]) -> StoredEvent:
        cls = type(domain_event)
        topic = get_topic(cls)
        class_version = getattr(cls, "class_version", 1)
        sealer = self.sealer
        if (
            class_version == 1
            and (sealer is None or not sealer.may_seal(domain_event))
            and isinstance(self.transcoder, OrjsonTranscoder)
        ):
            # Nothing to add or seal: pydantic writes the JSON itself, the same bytes as
            # orjson of ``model_dump(mode="json")`` in one pass instead of two.
            model = cast(BaseModel, domain_event)
            stored_state = model.__pydantic_serializer__.to_json(model)
            self._check_size(domain_event, stored_state)
        else:
            state = cast(BaseModel, domain_event).model_dump(mode="json")
            if class_version > 1:
                state["class_version"] = class_version
            stored_state = self.transcoder.encode(state)
            # The limit applies to the event as written (what Kafka carries), before its
            # personal fields are sealed (which takes them about 1.4 times the room).
            self._check_size(domain_event, stored_state)
            if sealer is not None and sealer.seal(domain_event, state):
                stored_state = self.transcoder.encode(state)
        if self.compressor:
            stored_state = self.compressor.compress(stored_state)
        if self.cipher:
            stored_state = self.cipher.encrypt(stored_state)
        return StoredEvent(
            originator_id=domain_event.originator_id,
            originator_version=domain_event.originator_version,
            topic=topic,
            state=stored_state,
        )

    def _check_size(self, domain_event: DomainEventProtocol[Any], encoded: bytes) -> None:
        limit = self.max_event_bytes
        if limit is None or len(encoded) <= limit or isinstance(domain_event, Snapshot):
            return
        raise InvalidCommandError(
            f"event {type(domain_event).__qualname__} of {domain_event.originator_id} is "
            f"{len(encoded):,} bytes; the largest event a command may store is {limit:,} "
            "bytes (setting max_event_bytes); nothing was stored"
        )

    def to_domain_event(self, stored_event: StoredEvent) -> DomainEventProtocol[Any]:
        stored_state = self._plain_state(stored_event)
        cls = resolve_topic(stored_event.topic)
        event: DomainEventProtocol[Any]
        sealer = self.sealer
        if sealer is not None:
            sealer.saw(cls, stored_event.originator_id)
            if SEALED_BYTES in stored_state:
                state = sealer.open(cls, self.transcoder.decode(stored_state))
                if getattr(cls, "class_version", 1) == 1:
                    # Parsing JSON is pydantic's fast path (dates, ids): faster than a dict.
                    event = cls.model_validate_json(
                        orjson.dumps(state), context=STORED_EVENT_CONTEXT
                    )
                    return event
                event = cls.model_validate(self._upcast(cls, state), context=STORED_EVENT_CONTEXT)
                return event
        if getattr(cls, "class_version", 1) == 1 and isinstance(self.transcoder, OrjsonTranscoder):
            # Nothing to upcast: let pydantic parse and validate the JSON in one pass.
            event = cls.model_validate_json(stored_state, context=STORED_EVENT_CONTEXT)
            return event
        event = cls.model_validate(
            self._upcast(cls, self.transcoder.decode(stored_state)), context=STORED_EVENT_CONTEXT
        )
        return event

    def to_event_state(self, stored_event: StoredEvent) -> tuple[type[Any], dict[str, Any]]:
        """The event's class and its stored state as JSON values, upcast to the class's
        current version but not validated into a model: for readers (projections) that
        use a few fields of many events and would rather not build every model."""
        cls = resolve_topic(stored_event.topic)
        plain = self._plain_state(stored_event)
        state = self.transcoder.decode(plain)
        sealer = self.sealer
        if sealer is not None:
            sealer.saw(cls, stored_event.originator_id)
            if SEALED_BYTES in plain:  # else nothing to open (most events: read fast)
                state = sealer.open(cls, state)
        return cls, self._upcast(cls, state)

    def _plain_state(self, stored_event: StoredEvent) -> bytes:
        stored_state = stored_event.state
        if self.cipher:
            stored_state = self.cipher.decrypt(stored_state)
        if self.compressor:
            stored_state = self.compressor.decompress(stored_state)
        return stored_state

    @staticmethod
    def _upcast(cls: type[Any], state: dict[str, Any]) -> dict[str, Any]:
        class_version = getattr(cls, "class_version", 1)
        from_version = state.pop("class_version", 1)
        while from_version < class_version:
            getattr(cls, f"upcast_v{from_version}_v{from_version + 1}")(state)
            from_version += 1
        return state


def limit_event_size(mapper: Mapper[Any], max_event_bytes: int) -> None:
    """Make ``mapper`` refuse events larger than ``max_event_bytes`` (a
    :class:`PydanticMapper`; other mappers are left as they are)."""
    if isinstance(mapper, PydanticMapper):
        mapper.max_event_bytes = max_event_bytes
