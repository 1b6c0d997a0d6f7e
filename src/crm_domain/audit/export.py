"""``export``: the chained history as JSON Lines, with a signed manifest.

``DIR/events.jsonl`` holds one event a line in position order (the stored bytes as base64,
the state as JSON for reading, the event and chain hashes); ``DIR/manifest.json`` the count,
first and last positions, final chain hash, Merkle root and the file's SHA-256;
``DIR/manifest.sig`` the raw Ed25519 signature of ``manifest.json``'s bytes.
:func:`crm_domain.audit.verifier.verify_export` checks it all offline.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from eventsourcing.persistence import StoredEvent

from crm_domain.audit.merkle import MerkleTree
from crm_domain.audit.source import open_source
from crm_domain.audit.verifier import EXPORT_FORMAT, GENESIS, format_digest, leaf_hash
from crm_domain.audit.verify import verify_log
from crm_domain.errors import TamperDetectedError
from crm_domain.infrastructure.persistence import PydanticMapper

if TYPE_CHECKING:
    from crm_domain.application import CRM


def _recorded_at(crm: CRM, stored: StoredEvent) -> datetime:
    _cls, state = cast(PydanticMapper, crm.app.mapper).to_event_state(stored)
    return datetime.fromisoformat(state["timestamp"])


def export_log(
    crm: CRM, out: Path, key: Ed25519PrivateKey, *, until: datetime | None = None
) -> dict[str, Any]:
    """Write the signed export of the log (the longest prefix recorded at or before
    ``until``, default all) into the directory ``out``; return the manifest.

    The log is verified first: an export of a log that does not verify is refused
    (:class:`~crm_domain.errors.TamperDetectedError`, or UnchainedHistoryError)."""
    verify_log(crm, snapshots=False).raise_for_finding()
    out.mkdir(parents=True, exist_ok=True)
    events_path = out / "events.jsonl"
    leaves: list[bytes] = []
    link = GENESIS
    file_digest = hashlib.sha256()
    first: int | None = None
    last: int | None = None
    with open_source(crm.store) as source, events_path.open("wb") as lines:
        for event, chained in zip(source.events(1), source.links(1), strict=False):
            position, oid, version, topic, state = event
            if chained[0] != position:  # written since the verification: stop there
                raise TamperDetectedError("modified", position, "the log changed during export")
            stored = StoredEvent(
                originator_id=oid, originator_version=version, topic=topic, state=state
            )
            if until is not None and _recorded_at(crm, stored) > until:
                break
            try:
                readable: Any = orjson.loads(state)
            except orjson.JSONDecodeError:
                readable = None
            record = {
                "position": position,
                "originator_id": oid,
                "originator_version": version,
                "topic": topic,
                "state_b64": base64.b64encode(state).decode(),
                "state": readable,
                "event_hash": chained[3].hex(),
                "chain_hash": chained[5].hex(),
            }
            line = orjson.dumps(record) + b"\n"
            lines.write(line)
            file_digest.update(line)
            leaves.append(leaf_hash(position, chained[3]))
            link = chained[5]
            first = position if first is None else first
            last = position
    root = MerkleTree(leaves).root()
    manifest = {
        "format": EXPORT_FORMAT,
        "created_at": datetime.now(UTC).isoformat(),
        "until": until.isoformat() if until else None,
        "count": len(leaves),
        "first_position": first,
        "last_position": last,
        "previous_hash": GENESIS.hex(),
        "final_hash": link.hex(),
        "root_hash": root.hex(),
        "digest": format_digest(len(leaves), root),
        "events_sha256": file_digest.hexdigest(),
    }
    manifest_bytes = json.dumps(manifest, indent=2).encode() + b"\n"
    (out / "manifest.json").write_bytes(manifest_bytes)
    (out / "manifest.sig").write_bytes(key.sign(manifest_bytes))
    return manifest
