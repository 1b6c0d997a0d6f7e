"""How events are stored: pydantic models as JSON (orjson), with upcasting on read.

Follows the eventsourcing project's pydantic example (aggregate7's ``PydanticMapper`` and
``OrjsonTranscoder``), plus the library's ``class_version``/``upcast_vN_vM`` convention, so
an event class can change shape without rewriting stored history.
"""

from __future__ import annotations

from typing import Any, cast

import orjson
from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import Mapper, StoredEvent, Transcoder
from eventsourcing.utils import get_topic, resolve_topic
from pydantic import BaseModel


class OrjsonTranscoder(Transcoder):
    """JSON bytes via orjson (pydantic has already turned values into JSON types)."""

    def encode(self, obj: Any) -> bytes:
        return orjson.dumps(obj)

    def decode(self, data: bytes) -> Any:
        return orjson.loads(data)


class PydanticMapper(Mapper[Any]):
    """Maps pydantic domain events to stored events and back."""

    def to_stored_event(self, domain_event: DomainEventProtocol[Any]) -> StoredEvent:
        topic = get_topic(domain_event.__class__)
        state = cast(BaseModel, domain_event).model_dump(mode="json")
        class_version = getattr(type(domain_event), "class_version", 1)
        if class_version > 1:
            state["class_version"] = class_version
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

    def to_domain_event(self, stored_event: StoredEvent) -> DomainEventProtocol[Any]:
        stored_state = self._plain_state(stored_event)
        cls = resolve_topic(stored_event.topic)
        event: DomainEventProtocol[Any]
        if getattr(cls, "class_version", 1) == 1 and isinstance(self.transcoder, OrjsonTranscoder):
            # Nothing to upcast: let pydantic parse and validate the JSON in one pass.
            event = cls.model_validate_json(stored_state)
            return event
        event = cls.model_validate(self._upcast(cls, self.transcoder.decode(stored_state)))
        return event

    def to_event_state(self, stored_event: StoredEvent) -> tuple[type[Any], dict[str, Any]]:
        """The event's class and its stored state as JSON values, upcast to the class's
        current version but not validated into a model: for readers (projections) that
        use a few fields of many events and would rather not build every model."""
        cls = resolve_topic(stored_event.topic)
        state = self._upcast(cls, self.transcoder.decode(self._plain_state(stored_event)))
        return cls, state

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
