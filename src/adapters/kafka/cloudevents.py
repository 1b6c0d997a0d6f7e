"""Domain events as Kafka records: CloudEvents 1.0 (binary or structured) or Debezium outbox.

Consumers on a shared bus should not need our Python classes, so each event travels in an
open, documented format. ``binary`` (the default) puts the CloudEvents attributes in
``ce_*`` headers and the event's JSON payload, untouched, in the value: consumers that only
want the data read the value, routers read headers without parsing JSON. ``structured``
puts one ``application/cloudevents+json`` document in the value. ``debezium`` mimics the
Debezium outbox event router (headers ``id``, ``aggregatetype``, ``aggregateid``, ``type``;
value = payload) for teams that already consume it. In every mode the key is the aggregate
id, so one aggregate's events stay in one partition, in order.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import cache
from typing import Any, NamedTuple

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from adapters.kafka.eventtypes import EventType
from crm_domain.errors import InboundMessageError, error_details, problems
from crm_domain.eventmodel import ENVELOPE_FIELDS, DomainEvent

SPEC_VERSION = "1.0"
JSON = "application/json"
STRUCTURED_CONTENT_TYPE = "application/cloudevents+json; charset=UTF-8"

#: Metadata keys (see ``crm_domain.context``) and the CloudEvents extension each becomes.
METADATA_EXTENSIONS = {
    "correlation_id": "correlationid",
    "causation_id": "causationid",
    "actor": "actor",
    "source_system": "sourcesystem",
    "command_id": "commandid",
}


_METADATA_HEADERS = tuple((key, f"ce_{ext}") for key, ext in METADATA_EXTENSIONS.items())


class MessageFormat(StrEnum):
    """How an event is laid out in a Kafka record."""

    BINARY = "binary"
    STRUCTURED = "structured"
    DEBEZIUM = "debezium"


Headers = list[tuple[str, bytes]]


@dataclass(frozen=True)
class KafkaRecord:
    """What is handed to the producer: key, value and headers (topic chosen by routing)."""

    key: bytes
    #: None: a tombstone (a compacted topic then drops the key's earlier records).
    value: bytes | None
    headers: Headers = field(default_factory=list)


class CloudEvent(BaseModel):
    """A CloudEvents 1.0 event as read back from Kafka (either content mode)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    specversion: str = Field(pattern=r"^1\.0$")
    id: str = Field(min_length=1)
    source: str = Field(min_length=1)
    type: str = Field(min_length=1)
    subject: str | None = None
    time: AwareDatetime | None = None
    datacontenttype: str | None = None
    dataschema: str | None = None
    data: Any = None

    @property
    def extensions(self) -> dict[str, Any]:
        """Attributes beyond the core ones (correlationid, actor, ...)."""
        return dict(self.model_extra or {})


@cache
def _payload_fields(cls: type[DomainEvent]) -> frozenset[str]:
    return frozenset(cls.model_fields) - ENVELOPE_FIELDS


@cache
def stored_field_order(cls: type[DomainEvent]) -> tuple[str, ...]:
    """The keys, in order, of the stored JSON of a ``cls`` event written by the current code
    (``model_dump(mode="json")``): what :meth:`EventEncoder.encode_stored` relies on."""
    return tuple(cls.model_fields)


def event_data(event: DomainEvent, exclude: Iterable[str] = ()) -> dict[str, Any]:
    """The event's own payload as JSON-ready values (envelope fields left out)."""
    fields = _payload_fields(type(event))
    if exclude:
        fields = fields - set(exclude)
    data: dict[str, Any] = event.model_dump(mode="json", include=set(fields))
    return data


def stored_data(
    cls: type[DomainEvent], state: Mapping[str, Any], exclude: Iterable[str] = ()
) -> dict[str, Any]:
    """:func:`event_data` straight from the stored JSON state of a ``cls`` event (no model)."""
    fields = _payload_fields(cls)
    if exclude:
        fields = fields - set(exclude)
    return {name: value for name, value in state.items() if name in fields}


def _time(event: DomainEvent) -> datetime:
    """When it happened: business time if the event has one, else when it was recorded."""
    occurred: datetime | None = getattr(event, "occurred_at", None)
    return occurred if occurred is not None else event.timestamp


def _rfc3339(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


#: What pydantic writes for an aware datetime, and :func:`_rfc3339` would write too.
_CANONICAL_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{6})?(?:Z|[+-]\d\d:\d\d)")
_is_canonical_time = _CANONICAL_TIME.fullmatch


def _rfc3339_text(text: str) -> str:
    """:func:`_rfc3339` of a stored datetime string, without building a datetime if it
    already has that form (it does when pydantic wrote it)."""
    if _is_canonical_time(text) and not text.endswith("+00:00"):
        return text
    return _rfc3339(datetime.fromisoformat(text))


class Envelope(NamedTuple):
    """What an event contributes to a record besides ``data``: ids, times, metadata, as text."""

    event_id: str
    subject: str
    time: str
    recorded: str
    version: int
    metadata: dict[str, str]

    @classmethod
    def of(cls, event: DomainEvent) -> Envelope:
        """From a domain event; ``time`` is its business time if it has one, else when it was
        recorded."""
        return cls(
            event_id=str(event.event_id),
            subject=str(event.originator_id),
            time=_rfc3339(_time(event)),
            recorded=_rfc3339(event.timestamp),
            version=event.originator_version,
            metadata=event.metadata,
        )

    @classmethod
    def from_stored(cls, state: Mapping[str, Any]) -> Envelope:
        """From an event's stored JSON state (what ``model_dump(mode="json")`` wrote)."""
        recorded = _rfc3339_text(state["timestamp"])
        occurred = state.get("occurred_at")
        return cls(
            event_id=state["event_id"],
            subject=state["originator_id"],
            time=recorded if occurred is None else _rfc3339_text(occurred),
            recorded=recorded,
            version=state["originator_version"],
            metadata=state.get("metadata") or {},
        )


def _attributes(
    envelope: Envelope,
    event_type: EventType,
    source: str,
    redacted: Sequence[str],
    dataschema: str | None,
) -> dict[str, str | int]:
    attrs: dict[str, str | int] = {
        "specversion": SPEC_VERSION,
        "id": envelope.event_id,
        "source": source,
        "type": event_type.type,
        "subject": envelope.subject,
        "time": envelope.time,
        "datacontenttype": JSON,
    }
    if dataschema:
        attrs["dataschema"] = dataschema
    for key, extension in METADATA_EXTENSIONS.items():
        value = envelope.metadata.get(key)
        if value:
            attrs[extension] = value
    attrs["aggregatetype"] = event_type.aggregate
    attrs["aggregateversion"] = envelope.version
    attrs["recordedtime"] = envelope.recorded
    if redacted:
        attrs["redacted"] = ",".join(sorted(redacted))
    return attrs


class EventEncoder:
    """Turns a stored domain event into a :class:`KafkaRecord` in one :class:`MessageFormat`.

    :meth:`encode` takes the domain event; :meth:`encode_stored` takes its stored JSON state
    instead (the relay's fast path: no model is built). Both share everything after that, so
    they give the same record for the same event.
    """

    def __init__(
        self,
        source: str,
        message_format: MessageFormat = MessageFormat.BINARY,
        schema_base_uri: str | None = None,
    ) -> None:
        self.source = source
        self.format = MessageFormat(message_format)
        self.schema_base_uri = schema_base_uri.rstrip("/") if schema_base_uri else None
        self._header_cache: dict[str, Headers] = {}
        self._payload_names: dict[tuple[str, tuple[str, ...]], tuple[str, ...]] = {}

    def encode(
        self, event: DomainEvent, event_type: EventType, redacted: Sequence[str] = ()
    ) -> KafkaRecord:
        """The record of a domain event, leaving out the ``redacted`` fields (those a customer's
        consent does not cover)."""
        data = event_data(event, exclude=redacted)
        return self._record(Envelope.of(event), event_type, data, redacted)

    def encode_stored(
        self, state: Mapping[str, Any], event_type: EventType, redacted: Sequence[str] = ()
    ) -> KafkaRecord:
        """The record of an event from its stored JSON state, without building the model.

        ``state`` must be what the current event class writes (``model_dump(mode="json")``:
        same keys in the same order, see :func:`stored_field_order`); the caller checks that
        and uses :meth:`encode` otherwise (events stored before a field was added, upcasts).
        """
        key, value, headers = self.stored_parts(state, event_type, redacted)
        return KafkaRecord(key, value, headers)

    def stored_parts(
        self, state: Mapping[str, Any], event_type: EventType, redacted: Sequence[str] = ()
    ) -> tuple[bytes, bytes, Headers]:
        """:meth:`encode_stored` as (key, value, headers): the relay's hot path, per message.

        Binary mode (the default) is written out in one function: no :class:`Envelope`, no
        record object, the constant headers copied from a per-type list and the key's bytes
        reused for ``ce_subject``. The result is the same as :meth:`_record` gives (a test
        compares them for every event type, with and without redaction).
        """
        if self.format is not MessageFormat.BINARY:
            record = self._record(
                Envelope.from_stored(state),
                event_type,
                stored_data(event_type.cls, state, exclude=redacted),
                redacted,
            )
            assert record.value is not None  # an event always has a value; tombstones don't
            return record.key, record.value, record.headers
        names = self._payload_names.get((event_type.type, tuple(redacted)))
        if names is None:
            names = self._payload_names_of(event_type, redacted)
        try:
            data = {name: state[name] for name in names}
        except KeyError:  # not the current class's layout after all: take what it has
            data = stored_data(event_type.cls, state, exclude=redacted)
        key: bytes = state["originator_id"].encode()
        recorded = _rfc3339_text(state["timestamp"])
        occurred = state.get("occurred_at")
        headers = self._constant_headers(event_type).copy()
        headers.append(("ce_id", state["event_id"].encode()))
        headers.append(("ce_subject", key))
        headers.append(
            ("ce_time", (recorded if occurred is None else _rfc3339_text(occurred)).encode())
        )
        metadata = state.get("metadata")
        if metadata:
            for name, extension in _METADATA_HEADERS:
                text = metadata.get(name)
                if text:
                    headers.append((extension, text.encode()))
        headers.append(("ce_aggregateversion", str(state["originator_version"]).encode()))
        headers.append(("ce_recordedtime", recorded.encode()))
        if redacted:
            headers.append(("ce_redacted", ",".join(sorted(redacted)).encode()))
        return key, orjson.dumps(data), headers

    def _payload_names_of(self, event_type: EventType, redacted: Sequence[str]) -> tuple[str, ...]:
        """The payload keys of ``event_type``'s stored JSON, in stored order, less
        ``redacted``: what :func:`stored_data` keeps, looked up once per type and redaction."""
        left_out = set(redacted)
        fields = _payload_fields(event_type.cls)
        names = tuple(
            name
            for name in stored_field_order(event_type.cls)
            if name in fields and name not in left_out
        )
        self._payload_names[(event_type.type, tuple(redacted))] = names
        return names

    def _record(
        self,
        envelope: Envelope,
        event_type: EventType,
        data: dict[str, Any],
        redacted: Sequence[str],
    ) -> KafkaRecord:
        key = envelope.subject.encode()
        if self.format is MessageFormat.BINARY:
            headers = self._binary_headers(envelope, event_type, redacted)
            return KafkaRecord(key, orjson.dumps(data), headers)
        if self.format is MessageFormat.DEBEZIUM:
            return KafkaRecord(
                key, orjson.dumps(data), self._debezium_headers(envelope, event_type)
            )
        dataschema = (
            f"{self.schema_base_uri}/{event_type.type}.json" if self.schema_base_uri else None
        )
        attrs = _attributes(envelope, event_type, self.source, redacted, dataschema)
        document = {**attrs, "data": data}
        return KafkaRecord(
            key, orjson.dumps(document), [("content-type", STRUCTURED_CONTENT_TYPE.encode())]
        )

    def _binary_headers(
        self, envelope: Envelope, event_type: EventType, redacted: Sequence[str]
    ) -> Headers:
        """``ce_*`` headers; the parts that depend only on the event type are cached."""
        headers = [
            *self._constant_headers(event_type),
            ("ce_id", envelope.event_id.encode()),
            ("ce_subject", envelope.subject.encode()),
            ("ce_time", envelope.time.encode()),
        ]
        metadata = envelope.metadata
        if metadata:
            for key, extension in _METADATA_HEADERS:
                value = metadata.get(key)
                if value:
                    headers.append((extension, value.encode()))
        headers.append(("ce_aggregateversion", str(envelope.version).encode()))
        headers.append(("ce_recordedtime", envelope.recorded.encode()))
        if redacted:
            headers.append(("ce_redacted", ",".join(sorted(redacted)).encode()))
        return headers

    def _constant_headers(self, event_type: EventType) -> Headers:
        cached = self._header_cache.get(event_type.type)
        if cached is None:
            cached = [
                ("content-type", JSON.encode()),
                ("ce_specversion", SPEC_VERSION.encode()),
                ("ce_source", self.source.encode()),
                ("ce_type", event_type.type.encode()),
                ("ce_aggregatetype", event_type.aggregate.encode()),
            ]
            if self.schema_base_uri:
                cached.append(
                    ("ce_dataschema", f"{self.schema_base_uri}/{event_type.type}.json".encode())
                )
            self._header_cache[event_type.type] = cached
        return cached

    def _debezium_headers(self, envelope: Envelope, event_type: EventType) -> Headers:
        headers: Headers = [
            ("id", envelope.event_id.encode()),
            ("aggregatetype", event_type.aggregate.encode()),
            ("aggregateid", envelope.subject.encode()),
            ("type", event_type.type.encode()),
        ]
        headers.extend(
            (key, value.encode())
            for key, value in envelope.metadata.items()
            if key in METADATA_EXTENSIONS
        )
        return headers


def _header_map(headers: Iterable[tuple[str, bytes | None]]) -> dict[str, str]:
    """Header values as text; a value that is not UTF-8 makes the record malformed."""
    result: dict[str, str] = {}
    for name, value in headers:
        if value is not None:
            try:
                result[name.lower()] = value.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InboundMessageError(
                    f"header {name!r} is not UTF-8 text (byte {exc.start}: "
                    f"{value[exc.start : exc.start + 1]!r})"
                ) from None
    return result


def decode_cloudevent(
    value: bytes | None, headers: Iterable[tuple[str, bytes | None]] = ()
) -> CloudEvent:
    """Read a CloudEvent from a Kafka record in binary or structured content mode.

    Raises :class:`InboundMessageError` when the record is neither, or is invalid.
    """
    header_map = _header_map(headers)
    content_type = header_map.get("content-type", "")
    try:
        if "ce_specversion" in header_map:
            attrs: dict[str, Any] = {
                name[3:]: text for name, text in header_map.items() if name.startswith("ce_")
            }
            if content_type:
                attrs["datacontenttype"] = content_type
            if value is not None:
                attrs["data"] = orjson.loads(value) if _is_json(content_type) else value
            return CloudEvent.model_validate(attrs)
        if content_type.startswith("application/cloudevents+json") or (
            not content_type and value is not None and value[:1] == b"{"
        ):
            document = orjson.loads(value or b"")
            if not isinstance(document, dict) or "specversion" not in document:
                raise InboundMessageError("JSON value is not a structured-mode CloudEvent")
            return CloudEvent.model_validate(document)
    except orjson.JSONDecodeError as exc:
        raise InboundMessageError(f"CloudEvent value is not valid JSON: {exc}") from exc
    except ValidationError as exc:
        raise InboundMessageError(
            f"invalid CloudEvent: {exc.error_count()} problem(s): {problems(exc)}",
            errors=error_details(exc),
        ) from exc
    raise InboundMessageError(
        "record is not a CloudEvent: no ce_specversion header and no "
        "application/cloudevents+json value"
    )


def _is_json(content_type: str) -> bool:
    base = content_type.split(";", 1)[0].strip().lower()
    return base == JSON or base.endswith("+json") or base == ""


def decode_debezium(
    value: bytes | None, headers: Iterable[tuple[str, bytes | None]]
) -> tuple[Mapping[str, str], Any]:
    """The outbox headers and the payload of a Debezium-layout record."""
    header_map = _header_map(headers)
    missing = [h for h in ("id", "aggregatetype", "aggregateid", "type") if h not in header_map]
    if missing:
        raise InboundMessageError(f"not a Debezium outbox record: missing header(s) {missing}")
    try:
        payload = orjson.loads(value or b"null")
    except orjson.JSONDecodeError as exc:
        raise InboundMessageError(f"outbox payload is not valid JSON: {exc}") from exc
    return header_map, payload
