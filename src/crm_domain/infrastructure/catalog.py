"""The event catalog, generated from the code: ``docs/events.md``.

Consumers of the event stream (projections, ERP, marketing) read the catalog; a test
regenerates it and fails when it and the code disagree, so it cannot go stale.
Run ``python -m crm_domain.infrastructure.catalog --write`` after changing an event.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from eventsourcing.utils import get_topic
from pydantic import BaseModel

from crm_domain.account import Account
from crm_domain.customer import Customer
from crm_domain.eventmodel import ENVELOPE_FIELDS, event_classes

AGGREGATES: tuple[type[Any], ...] = (Customer, Account)
DEFAULT_PATH = Path(__file__).resolve().parents[3] / "docs" / "events.md"


def describe(cls: type[Any]) -> str:
    """The event's docstring (declared on the class the aggregate redefines)."""
    for klass in cls.__mro__:
        doc = klass.__dict__.get("__doc__")
        if doc and klass.__module__ == cls.__module__:
            return " ".join(doc.split())
    return ""


def _schema_type(prop: dict[str, Any], defs: dict[str, Any]) -> str:
    """A short human type from a JSON Schema property (enums spelled out)."""
    if "$ref" in prop:
        name = str(prop["$ref"]).rsplit("/", 1)[-1]
        target = defs.get(name, {})
        if "enum" in target:
            return " \\| ".join(f"`{v}`" for v in target["enum"])
        return name
    if "anyOf" in prop:
        parts = [_schema_type(p, defs) for p in prop["anyOf"]]
        return " or ".join(dict.fromkeys(p for p in parts if p != "null")) + (
            " (optional)" if any(p.get("type") == "null" for p in prop["anyOf"]) else ""
        )
    if "enum" in prop:
        return " \\| ".join(f"`{v}`" for v in prop["enum"])
    kind = prop.get("type", "any")
    if kind == "array":
        return f"list of {_schema_type(prop.get('items', {}), defs)}"
    if kind == "object":
        return "object"
    fmt = prop.get("format")
    if kind == "string" and fmt:
        return {"uuid": "UUID", "date-time": "datetime (tz-aware)"}.get(str(fmt), str(fmt))
    return str(kind)


def _field_lines(model: type[BaseModel]) -> list[str]:
    schema = model.model_json_schema()
    defs = schema.get("$defs", {})
    required = set(schema.get("required", []))
    lines = []
    for name, prop in schema.get("properties", {}).items():
        if name in ENVELOPE_FIELDS:
            continue
        if name in required:
            need = "required"
        else:
            need = f"default `{model.model_fields[name].get_default()!r}`"
        type_text = _schema_type(prop, defs)
        if prop.get("anyOf") and any(p.get("type") == "number" for p in prop["anyOf"]):
            type_text = "decimal (string or number)"
        lines.append(f"| `{name}` | {type_text} | {need} |")
    return lines


def render() -> str:
    """The catalog as Markdown: every event of every aggregate with its fields."""
    lines = [
        "# Event catalog",
        "",
        "Generated from the code by `python -m crm_domain.infrastructure.catalog --write`; "
        "do not edit by hand.",
        "",
        "Every event also carries the envelope: `originator_id` (the aggregate id),",
        "`originator_version`, `timestamp` (when it was recorded), `occurred_at` (when it",
        "happened in the business), `event_id`, and `metadata` (`actor`, `correlation_id`,",
        "`causation_id`, `source_system`, and `command_id` for idempotent commands).",
        "The stored topic is `module:Aggregate.Event`; renaming or moving a class needs",
        "`eventsourcing.utils.register_topic` for its old topic.",
        "",
    ]
    for aggregate in AGGREGATES:
        lines += [f"## {aggregate.__name__}", "", describe(aggregate), ""]
        for cls in event_classes(aggregate):
            model: type[BaseModel] = cls
            lines += [
                f"### {aggregate.__name__}.{cls.__name__}",
                "",
                describe(cls),
                "",
                f"Topic `{get_topic(cls)}`, version {getattr(cls, 'class_version', 1)}.",
                "",
            ]
            fields = _field_lines(model)
            if fields:
                lines += ["| field | type | |", "|---|---|---|", *fields, ""]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    """Command line: print the catalog, or ``--write`` it to ``docs/events.md``; the exit code."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true", help=f"write {DEFAULT_PATH}")
    parser.add_argument("--path", type=Path, default=DEFAULT_PATH)
    args = parser.parse_args(argv)
    text = render()
    if args.write:
        args.path.parent.mkdir(parents=True, exist_ok=True)
        args.path.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
