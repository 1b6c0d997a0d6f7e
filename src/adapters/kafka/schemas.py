"""JSON Schema of every event ``data`` payload, generated from the pydantic models.

Downstream teams validate against ``docs/schemas/<type>.json`` (outbound, one per event
type, e.g. ``crm.customer.contact_logged.v1.json``) and ``docs/schemas/inbound/<type>.json``
(what ERP and marketing send). The files are generated, never hand-edited:
``python -m adapters.kafka.schemas docs/schemas`` writes them, ``--check`` fails when the
committed files and the code disagree (the test suite runs the check). Fields the event
class declares personal (:func:`crm_domain.personal.personal_data`) carry
``"x-personal-data": true``; a message published without consent lacks them and
names them in its ``redacted`` extension.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson

from adapters.kafka.eventtypes import EventType, EventTypeRegistry, crm_event_types
from adapters.kafka.messages import INBOUND_PAYLOADS
from crm_domain.eventmodel import ENVELOPE_FIELDS
from crm_domain.infrastructure.catalog import describe
from crm_domain.personal import personal_fields

DRAFT = "https://json-schema.org/draft/2020-12/schema"
DEFAULT_DIR = Path("docs/schemas")


def event_schema(event_type: EventType) -> dict[str, Any]:
    """The schema of ``data`` for one published event type."""
    schema = event_type.cls.model_json_schema(mode="serialization")
    properties: dict[str, Any] = schema.get("properties", {})
    for name in ENVELOPE_FIELDS:
        properties.pop(name, None)
    required = [r for r in schema.get("required", []) if r not in ENVELOPE_FIELDS]
    if required:
        schema["required"] = required
    else:
        schema.pop("required", None)
    for name in personal_fields(event_type.cls) or ():
        if name in properties:
            properties[name]["x-personal-data"] = True
    schema["additionalProperties"] = False
    return {
        "$schema": DRAFT,
        "$id": f"{event_type.type}.json",
        **schema,
        "title": event_type.type,
        "description": describe(event_type.cls) or f"data of a {event_type.type} CloudEvent",
    }


def inbound_schema(type_: str) -> dict[str, Any]:
    """The schema of ``data`` for one inbound message type (what ERP or marketing send)."""
    cls = INBOUND_PAYLOADS[type_]
    schema = cls.model_json_schema(mode="validation")
    return {"$schema": DRAFT, "$id": f"inbound/{type_}.json", **schema, "title": type_}


def all_schemas(registry: EventTypeRegistry | None = None) -> dict[str, dict[str, Any]]:
    """Relative file path -> schema, for every outbound event type and inbound message."""
    registry = registry or crm_event_types()
    files = {f"{et.type}.json": event_schema(et) for et in registry}
    files.update({f"inbound/{t}.json": inbound_schema(t) for t in sorted(INBOUND_PAYLOADS)})
    return files


def render(schema: Mapping[str, Any]) -> bytes:
    """A schema as the committed file holds it: indented, keys sorted, newline-terminated."""
    return orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def write_schemas(directory: Path = DEFAULT_DIR) -> list[Path]:
    """Write every schema under ``directory``; remove stale generated ones."""
    files = all_schemas()
    written = []
    for relative, schema in files.items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(render(schema))
        written.append(path)
    for stale in differences(directory)[1]:
        (directory / stale).unlink()
    return written


def differences(directory: Path = DEFAULT_DIR) -> tuple[list[str], list[str]]:
    """(files missing or different, generated-looking files that should not exist)."""
    files = all_schemas()
    changed = [
        rel
        for rel, schema in files.items()
        if not (directory / rel).is_file() or (directory / rel).read_bytes() != render(schema)
    ]
    present = {
        str(p.relative_to(directory))
        for p in directory.rglob("*.json")
        if p.name.startswith(("crm.", "erp.", "marketing."))
    }
    extra = sorted(present - set(files))
    return changed, extra


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: write the schemas, or ``--check`` them; the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m adapters.kafka.schemas",
        description="Generate (or --check) the JSON Schemas of the Kafka messages.",
    )
    parser.add_argument("directory", nargs="?", default=str(DEFAULT_DIR))
    parser.add_argument("--check", action="store_true", help="fail if the files are stale")
    args = parser.parse_args(argv)
    directory = Path(args.directory)
    if args.check:
        changed, extra = differences(directory)
        for rel in changed:
            print(f"stale or missing: {directory / rel}", file=sys.stderr)
        for rel in extra:
            print(f"no longer generated: {directory / rel}", file=sys.stderr)
        return 1 if changed or extra else 0
    for path in write_schemas(directory):
        print(path)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
