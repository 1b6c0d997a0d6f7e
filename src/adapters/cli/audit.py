"""``crm audit ...``: what auditors ask of the history.

``history ID|CODE`` (every event with its metadata and field-level changes), ``show ID
--as-of T | --version N`` (the state then), ``replay --until T --into URL`` (the read
models as they stood at T, in a database of their own) and ``denials`` (the access audit
log). Other audit commands (tamper evidence, erasure) join the same group: each module
adds its commands with a ``register(audit_app)`` function.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Annotated, Any

import typer

from adapters.cli.options import Format, OutputFormat, Store, existing_crm, load_settings
from adapters.cli.render import Section, render
from adapters.cli.tamper import register as register_tamper_evidence
from crm_domain.errors import InvalidCommandError

audit_app = typer.Typer(
    name="audit",
    help="For auditors: history with diffs, state as of a time, read models as of a time, "
    "access denials; tamper evidence (verify the hash chain, signed exports, digests and "
    "proofs).",
    no_args_is_help=True,
)


def parse_time(value: str, what: str = "time") -> datetime:
    """An ISO 8601 time with its offset (``2026-03-01T00:00+08:00``); a date alone is
    refused, as is a time without an offset: an audit must not guess the time zone."""
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidCommandError(
            f"invalid {what} {value!r}: give ISO 8601 with an offset, e.g. 2026-03-01T00:00+08:00"
        ) from None
    if when.tzinfo is None:
        raise InvalidCommandError(
            f"invalid {what} {value!r}: give its UTC offset, e.g. {value}+08:00 or {value}Z"
        )
    return when


def _json(document: Any) -> None:
    json.dump(document, sys.stdout, indent=2, ensure_ascii=False, default=str)
    sys.stdout.write("\n")


def _value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


Ref = Annotated[
    str, typer.Argument(metavar="ID|CODE", help="customer or account id, or customer code")
]


def register(app: typer.Typer) -> None:
    """Add ``history``, ``show``, ``replay`` and ``denials`` to the ``audit`` group."""
    app.command("history")(history)
    app.command("show")(show)
    app.command("replay")(replay)
    app.command("denials")(denials)


def history(ref: Ref, store: Store = None, fmt: Format = OutputFormat.TABLE) -> None:
    """Every event of a customer or account, oldest first: record and business time,
    actor, source system, correlation and command id, and the fields it changed."""
    with existing_crm(store) as crm:
        entries = crm.audit_history(ref)
    if fmt is OutputFormat.JSON:
        _json(
            [
                {
                    "version": e.version,
                    "event_type": e.event_type,
                    "recorded_at": e.recorded_at.isoformat(),
                    "occurred_at": e.occurred_at.isoformat(),
                    "actor": e.actor,
                    "source_system": e.source_system,
                    "correlation_id": e.correlation_id,
                    "causation_id": e.causation_id,
                    "command_id": e.command_id or None,
                    "payload": e.payload,
                    "changes": [
                        {"field": c.path, "before": c.before, "after": c.after} for c in e.changes
                    ],
                }
                for e in entries
            ]
        )
        return
    section = Section(
        f"History of {ref} ({len(entries)} events)",
        (
            "version",
            "recorded",
            "occurred",
            "event",
            "actor",
            "source",
            "correlation",
            "command id",
            "changes",
        ),
    )
    for e in entries:
        changes = "\n".join(f"{c.path}: {_value(c.before)} -> {_value(c.after)}" for c in e.changes)
        section.add(
            e.version,
            e.recorded_at.isoformat(timespec="seconds"),
            e.occurred_at.isoformat(timespec="seconds"),
            e.event_type,
            e.actor,
            e.source_system,
            e.correlation_id,
            e.command_id or None,
            changes or "-",
        )
    render([section], fmt)


def show(
    ref: Ref,
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", metavar="TIME", help="ISO 8601 with offset, record time"),
    ] = None,
    version: Annotated[
        int | None, typer.Option("--version", metavar="N", min=1, help="the state at version N")
    ] = None,
    store: Store = None,
    fmt: Format = OutputFormat.TABLE,
) -> None:
    """A customer or account as it stood at a time (what the CRM knew then) or version."""
    from crm_domain.timetravel import flatten, state_of

    when = parse_time(as_of, "--as-of") if as_of is not None else None
    with existing_crm(store) as crm:
        found = crm.state_at(ref, when=when, version=version)
    state = state_of(found)
    header = {
        "id": str(found.id),
        "kind": type(found).__name__.lower(),
        "version": found.version,
        "recorded_at": found.modified_on.isoformat(),
        "as_of": when.isoformat() if when else None,
    }
    if fmt is OutputFormat.JSON:
        _json({**header, "state": state})
        return
    title = f"{header['kind']} {found.id} at version {found.version}"
    if when is not None:
        title += f" (as of {when.isoformat()})"
    section = Section(title, ("field", "value"), measures=True)
    section.add("last recorded change", found.modified_on)
    for path, value in sorted(flatten(state).items()):
        section.add(path, _value(value))
    render([section], fmt)


def replay(
    until: Annotated[
        str, typer.Option("--until", metavar="TIME", help="ISO 8601 with offset, record time")
    ],
    into: Annotated[
        str,
        typer.Option(
            "--into", metavar="URL", help="database for the replayed read models (not the store's)"
        ),
    ],
    store: Store = None,
) -> None:
    """Rebuild the read models as they stood at a time into a separate database; the live
    ones stay untouched. Then: crm report ... --store URL."""
    from projections.replay import replay as run_replay

    when = parse_time(until, "--until")
    settings = load_settings(store)
    from crm_domain.infrastructure.storage import StoreURL

    StoreURL.parse(into)
    result = run_replay(settings.store_url, into, until=when)
    typer.echo(
        f"replayed {result.events:,} events (up to position {result.position:,}, recorded by "
        f"{when.isoformat()}) into {StoreURL.parse(into).display}: "
        f"{', '.join(result.read_models)}. Read them with: crm report ... --store {into}"
    )


def denials(
    store: Store = None,
    fmt: Format = OutputFormat.TABLE,
    since: Annotated[
        str | None, typer.Option("--since", metavar="TIME", help="ISO 8601 with offset")
    ] = None,
    actor: Annotated[str | None, typer.Option("--actor", help="only this actor's")] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, metavar="N", help="the last N only")
    ] = None,
) -> None:
    """Commands and actions the access policy denied (the access audit log)."""
    with existing_crm(store) as crm:
        found = crm.access.log.read(
            since=parse_time(since, "--since") if since else None, actor=actor, limit=limit
        )
    section = Section(
        f"Access denials ({len(found)})",
        ("#", "when", "actor", "roles", "source", "command", "target", "reason", "correlation"),
        empty_note="nothing was denied",
    )
    for d in found:
        section.add(
            d.position,
            d.denied_at,
            d.actor,
            ", ".join(d.roles) or "-",
            d.source_system,
            d.command,
            d.target,
            d.reason,
            d.correlation_id,
        )
    render([section], fmt)


register(audit_app)
register_tamper_evidence(audit_app)
