"""``crm audit verify|seal|keygen|export|verify-export|digest|prove|verify-proof|
consistency|verify-consistency``: tamper evidence for auditors (the hash chain, signed
exports, digests and proofs), added to the ``audit`` group by :func:`register`.

Each check ends with an exit code of its own (``adapters.exit_codes``): 0 intact, 10-14 the
kind of the first tampered event, 15 history stored before the chain began, 16 evidence
(an export, a proof, a digest) that does not verify.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID

import typer

from adapters.cli.options import Store, existing_crm
from crm_domain.application import CRM
from crm_domain.audit import verifier
from crm_domain.audit.export import export_log
from crm_domain.audit.keys import generate_key_pair, load_signing_key
from crm_domain.audit.proofs import Digest, consistency, current_digest, prove_customer
from crm_domain.audit.seal import seal_log
from crm_domain.audit.verify import verify_log
from crm_domain.errors import AuditEvidenceError, ConfigurationError

_commands = typer.Typer()


def register(app: typer.Typer) -> None:
    """Add the tamper-evidence commands to the ``audit`` group ``app``."""
    app.registered_commands.extend(_commands.registered_commands)


def _emit(document: Any, out: Path | None, written: str) -> None:
    """Print ``document`` as JSON, or write it to ``out`` and say so (``written``)."""
    text = json.dumps(document, indent=2)
    if out is None:
        typer.echo(text)
    else:
        out.write_text(text + "\n", encoding="utf-8")
        typer.echo(written)


def _aggregate(crm: CRM, ref: str) -> UUID:
    try:
        return UUID(ref)
    except ValueError:
        return crm.customer_by_code(ref).id


def _aware(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigurationError(f"--until {text!r} is not an ISO 8601 time") from None
    if value.tzinfo is None:
        raise ConfigurationError(f"--until {text} needs a UTC offset (e.g. +08:00)")
    return value


@_commands.command("verify")
def verify(
    store: Store = None,
    start: Annotated[
        int, typer.Option("--from", metavar="POSITION", help="start at this position")
    ] = 1,
    snapshots: Annotated[
        bool, typer.Option("--snapshots/--no-snapshots", help="check snapshots too")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="the report as JSON")] = False,
) -> None:
    """Walk the log against its hash chain; report the first event modified, deleted,
    inserted or reordered (exit 10-13), a snapshot edited (14), history not yet chained (15),
    or that the log is intact (0)."""
    with existing_crm(store) as crm:
        report = verify_log(crm, start=start, snapshots=snapshots)
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
    else:
        typer.echo(report.summary())
        typer.echo(f"{report.events:,} events checked at {report.events_per_second:,.0f} events/s")
    report.raise_for_finding()


@_commands.command("seal")
def seal(store: Store = None) -> None:
    """Chain, once, the events stored before the hash chain existed (an upgraded store);
    refuses a log whose chained part does not verify. Publish the digest it prints."""
    with existing_crm(store) as crm:
        report = seal_log(crm)
        digest = current_digest(crm)
    if report.sealed:
        typer.echo(f"sealed {report.sealed:,} events; {report.chained:,} events chained")
    else:
        typer.echo(f"nothing to seal: all {report.chained:,} events are chained")
    typer.echo(f"digest {digest}")


@_commands.command("keygen")
def keygen(
    out: Annotated[
        Path, typer.Option("--out", metavar="PREFIX", help="writes PREFIX.pem and PREFIX.pub.pem")
    ],
) -> None:
    """Make the Ed25519 key pair that signs exports (PREFIX.pem private, PREFIX.pub.pem public)."""
    private, public = Path(f"{out}.pem"), Path(f"{out}.pub.pem")
    generate_key_pair(private, public)
    typer.echo(f"private key {private} (keep it safe); public key {public} (give it to auditors)")


@_commands.command("export")
def export(
    out: Annotated[Path, typer.Option("--out", metavar="DIR", help="directory to write")],
    key: Annotated[Path, typer.Option("--key", metavar="FILE", help="Ed25519 private key (PEM)")],
    until: Annotated[
        str | None,
        typer.Option(
            "--until", metavar="TIME", help="only events recorded by then (ISO 8601 with offset)"
        ),
    ] = None,
    store: Store = None,
) -> None:
    """Write the verified history as JSON Lines with a signed manifest."""
    cut = _aware(until) if until is not None else None
    with existing_crm(store) as crm:
        crm.authorize("audit.export")
        manifest = export_log(crm, out, load_signing_key(key), until=cut)
    typer.echo(
        f"exported {manifest['count']:,} events (positions {manifest['first_position']}.."
        f"{manifest['last_position']}) to {out}; digest {manifest['digest']}"
    )


@_commands.command("verify-export")
def verify_export(
    directory: Annotated[Path, typer.Argument(metavar="DIR")],
    public_key: Annotated[Path, typer.Option("--public-key", metavar="FILE")],
) -> None:
    """Check an export offline (no database): signature, hashes, chain, counts, root."""
    try:
        manifest = verifier.verify_export(directory, public_key.read_bytes())
    except (verifier.VerificationFailedError, OSError, ValueError, KeyError) as exc:
        raise AuditEvidenceError(f"export {directory} does not verify: {exc}") from None
    typer.echo(
        f"export verified: {manifest['count']:,} events, positions {manifest['first_position']}.."
        f"{manifest['last_position']}, final hash {manifest['final_hash']}"
    )


@_commands.command("digest")
def digest(store: Store = None) -> None:
    """Print the log's current digest (SIZE:ROOT), for publishing elsewhere."""
    with existing_crm(store) as crm:
        typer.echo(str(current_digest(crm)))


@_commands.command("prove")
def prove(
    customer: Annotated[str, typer.Argument(metavar="ID|CODE")],
    digest: Annotated[str, typer.Option("--digest", metavar="SIZE:ROOT")],
    out: Annotated[Path | None, typer.Option("--out", metavar="FILE")] = None,
    store: Store = None,
) -> None:
    """Export one customer's (or account's) events with inclusion proofs against a digest."""
    with existing_crm(store) as crm:
        proof = prove_customer(crm, _aggregate(crm, customer), Digest.parse(digest))
    _emit(proof, out, f"{len(proof['events'])} events with inclusion proofs written to {out}")


@_commands.command("verify-proof")
def verify_proof(
    file: Annotated[Path, typer.Argument(metavar="FILE")],
    digest: Annotated[str, typer.Option("--digest", metavar="SIZE:ROOT")],
) -> None:
    """Check a proof file against a digest alone (no database)."""
    try:
        count = verifier.verify_proof(json.loads(file.read_bytes()), digest)
    except (verifier.VerificationFailedError, OSError, ValueError, KeyError) as exc:
        raise AuditEvidenceError(f"proof {file} does not verify: {exc}") from None
    typer.echo(f"proof verified: {count} events included in {digest}")


@_commands.command("consistency")
def consistency_proof(
    old: Annotated[str, typer.Argument(metavar="OLD")],
    new: Annotated[str, typer.Argument(metavar="NEW")],
    out: Annotated[Path | None, typer.Option("--out", metavar="FILE")] = None,
    store: Store = None,
) -> None:
    """Prove the log at digest NEW extends the log at digest OLD (the proof, as JSON)."""
    old_digest, new_digest = Digest.parse(old), Digest.parse(new)
    with existing_crm(store) as crm:
        proof = consistency(crm, old_digest, new_digest)
    document = {
        "format": verifier.CONSISTENCY_FORMAT,
        "old": str(old_digest),
        "new": str(new_digest),
        "consistency_proof": [h.hex() for h in proof],
    }
    _emit(document, out, f"{new_digest} extends {old_digest}: proof written to {out}")


@_commands.command("verify-consistency")
def verify_consistency(
    file: Annotated[Path, typer.Argument(metavar="FILE")],
    old: Annotated[
        str | None, typer.Option("--old", metavar="SIZE:ROOT", help="the digest you kept")
    ] = None,
) -> None:
    """Check a consistency proof file offline: its new digest extends the old one."""
    try:
        new = verifier.verify_consistency_proof(json.loads(file.read_bytes()), old)
    except (verifier.VerificationFailedError, OSError, ValueError, KeyError) as exc:
        raise AuditEvidenceError(f"consistency proof {file} does not verify: {exc}") from None
    typer.echo(f"consistency verified: {new} extends the old digest")
