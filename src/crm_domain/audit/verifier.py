"""The offline verifier: the hash definitions, Merkle proofs and signed exports, standalone.

This one file imports nothing but the standard library and ``cryptography`` (for Ed25519),
so an auditor can copy it out of the package and check an export or a proof with no
database and no other CRM code::

    python verifier.py export DIR --public-key audit.pub.pem
    python verifier.py proof customer.json --digest 1042:9f2c...
    python verifier.py consistency extends.json --old 1042:9f2c...

What is hashed (all SHA-256; integers big-endian):

- an event's **hash** covers the bytes as stored: ``u32 len(topic) || topic ||
  u32 len(id) || id || u64 version || u32 len(state) || state``, where ``id`` is the
  originator id as 32 lowercase hex digits and ``state`` the stored state bytes (ciphertext
  where a field is encrypted, so an erasure leaves every hash as it was);
- the **chain** link at notification position ``p``: ``SHA-256(previous link || u64 p ||
  event hash)``, the first link's previous being 32 zero bytes;
- the **aggregate** link: ``SHA-256(previous link of the same aggregate || event hash)``;
- the **Merkle tree** is RFC 6962's (RFC 9162 section 2.1) over the chained events in
  position order, with leaf data ``u64 p || event hash``: leaf hash ``SHA-256(0x00 ||
  data)``, node hash ``SHA-256(0x01 || left || right)``. A **digest** is ``SIZE:ROOT``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: The link before the first event (of the log, or of an aggregate).
GENESIS = bytes(32)
#: The export format this verifier reads.
EXPORT_FORMAT = "crm-audit-export/1"
#: The proof format this verifier reads.
PROOF_FORMAT = "crm-audit-proof/1"
#: The consistency proof format this verifier reads.
CONSISTENCY_FORMAT = "crm-audit-consistency/1"

_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")


class VerificationFailedError(Exception):
    """An export, a proof or a digest does not verify; the message says where and why."""


def event_hash(topic: str, originator_id: str, version: int, state: bytes) -> bytes:
    """The hash of one stored event (``originator_id`` as 32 lowercase hex digits)."""
    t = topic.encode()
    o = originator_id.encode()
    return hashlib.sha256(
        b"".join(
            (_U32.pack(len(t)), t, _U32.pack(len(o)), o, _U64.pack(version), _U32.pack(len(state)))
        )
        + state
    ).digest()


def chain_link(previous: bytes, position: int, event: bytes) -> bytes:
    """The log's chain hash at ``position``, given the previous link and the event's hash."""
    return hashlib.sha256(previous + _U64.pack(position) + event).digest()


def aggregate_link(previous: bytes, event: bytes) -> bytes:
    """The aggregate's chain hash, given its previous link and the event's hash."""
    return hashlib.sha256(previous + event).digest()


def leaf_hash(position: int, event: bytes) -> bytes:
    """The Merkle leaf hash of the event at ``position`` (RFC 6962: 0x00 prefix)."""
    return hashlib.sha256(b"\x00" + _U64.pack(position) + event).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """An interior Merkle node (RFC 6962: 0x01 prefix)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """The RFC 6962 root of these leaf hashes (the hash of the empty string for none).

    Pairs nodes level by level, carrying an odd last node up unchanged: the same tree as
    the RFC's split at the largest power of two smaller than the size.
    """
    if not leaves:
        return hashlib.sha256(b"").digest()
    level = list(leaves)
    while len(level) > 1:
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """RFC 9162 section 2.1.3.2: is ``leaf`` the ``index``-th of the tree ``size``/``root``?"""
    if index >= size or index < 0:
        return False
    fn, sn = index, size - 1
    r = leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 section 2.1.4.2: does the tree ``new_size``/``new_root`` extend the tree
    ``old_size``/``old_root``?"""
    if old_size > new_size or old_size < 0:
        return False
    if old_size == new_size:
        return old_root == new_root and not proof
    if old_size == 0:
        return not proof
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is the first node
        path.insert(0, old_root)
    if not path:
        return False
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0


def parse_digest(text: str) -> tuple[int, bytes]:
    """``SIZE:ROOT`` (a digest as ``crm audit digest`` prints it) as ``(size, root)``."""
    size, sep, root = text.strip().partition(":")
    try:
        if not sep:
            raise ValueError
        value = (int(size), bytes.fromhex(root))
    except ValueError:
        raise VerificationFailedError(f"not a digest (SIZE:ROOT-HEX): {text!r}") from None
    if value[0] < 0 or len(value[1]) != 32:
        raise VerificationFailedError(f"not a digest (SIZE:ROOT-HEX): {text!r}")
    return value


def format_digest(size: int, root: bytes) -> str:
    """A digest as text: ``SIZE:ROOT-HEX``."""
    return f"{size}:{root.hex()}"


def _record_hash(record: dict[str, Any]) -> tuple[int, bytes]:
    state = base64.b64decode(record["state_b64"])
    digest = event_hash(
        record["topic"], record["originator_id"], int(record["originator_version"]), state
    )
    return int(record["position"]), digest


def verify_signature(public_key_pem: bytes, message: bytes, signature: bytes) -> None:
    """Check an Ed25519 signature (``cryptography``); raise :class:`VerificationFailedError`."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    key = load_pem_public_key(public_key_pem)
    if not isinstance(key, Ed25519PublicKey):
        raise VerificationFailedError("the public key is not an Ed25519 key")
    try:
        key.verify(signature, message)
    except InvalidSignature:
        raise VerificationFailedError(
            "manifest.sig is not a valid signature of manifest.json"
        ) from None


def verify_export(directory: Path, public_key_pem: bytes) -> dict[str, Any]:
    """Check an export (``manifest.json``, ``manifest.sig``, ``events.jsonl``) offline:
    the signature, the file's SHA-256, every event's hash and chain link, the count, the
    first and last positions, the final hash and (for an export from the first chained
    event) the Merkle root. Return the manifest; raise :class:`VerificationFailedError`."""
    manifest_bytes = (directory / "manifest.json").read_bytes()
    verify_signature(public_key_pem, manifest_bytes, (directory / "manifest.sig").read_bytes())
    manifest: dict[str, Any] = json.loads(manifest_bytes)
    if manifest.get("format") != EXPORT_FORMAT:
        raise VerificationFailedError(f"unknown export format {manifest.get('format')!r}")
    events_path = directory / "events.jsonl"
    file_digest = hashlib.sha256()
    with events_path.open("rb") as whole:
        for block in iter(lambda: whole.read(1 << 20), b""):
            file_digest.update(block)
    if file_digest.hexdigest() != manifest["events_sha256"]:
        raise VerificationFailedError("events.jsonl does not match the SHA-256 in the manifest")
    link = bytes.fromhex(manifest["previous_hash"])
    leaves: list[bytes] = []
    count, first, last = 0, None, None
    with events_path.open("rb") as lines:
        for number, line in enumerate(lines, 1):
            record = json.loads(line)
            position, digest = _record_hash(record)
            if last is not None and position <= last:
                raise VerificationFailedError(f"line {number}: position {position} is out of order")
            if digest.hex() != record["event_hash"]:
                raise VerificationFailedError(
                    f"line {number} (position {position}): event modified"
                )
            link = chain_link(link, position, digest)
            if link.hex() != record["chain_hash"]:
                raise VerificationFailedError(f"line {number} (position {position}): chain broken")
            leaves.append(leaf_hash(position, digest))
            count += 1
            first = position if first is None else first
            last = position
    expected = (manifest["count"], manifest["first_position"], manifest["last_position"])
    if (count, first, last) != expected:
        raise VerificationFailedError(
            f"the manifest says {expected[0]} events at positions {expected[1]}..{expected[2]}; "
            f"events.jsonl holds {count} at {first}..{last}"
        )
    if link.hex() != manifest["final_hash"]:
        raise VerificationFailedError("the last chain hash differs from the manifest's final_hash")
    if manifest.get("root_hash") is not None and (
        merkle_root(leaves).hex() != manifest["root_hash"]
    ):
        raise VerificationFailedError("the Merkle root differs from the manifest's root_hash")
    return manifest


def verify_proof(proof: dict[str, Any], digest: str) -> int:
    """Check a customer's proof file (``crm audit prove``) against a digest alone: each
    event's hash and its inclusion in the tree; the versions must run 1, 2, 3... Return the
    number of events checked; raise :class:`VerificationFailedError`."""
    if proof.get("format") != PROOF_FORMAT:
        raise VerificationFailedError(f"unknown proof format {proof.get('format')!r}")
    size, root = parse_digest(digest)
    if proof["digest"] != format_digest(size, root):
        raise VerificationFailedError(f"the proof is against {proof['digest']}, not {digest}")
    for number, record in enumerate(proof["events"], 1):
        position, event = _record_hash(record)
        if int(record["originator_version"]) != number:
            raise VerificationFailedError(f"event {number}: version {record['originator_version']}")
        path = [bytes.fromhex(h) for h in record["inclusion_proof"]]
        if not verify_inclusion(leaf_hash(position, event), record["leaf_index"], size, path, root):
            raise VerificationFailedError(
                f"event at position {position} is not in the digested log"
            )
    return len(proof["events"])


def verify_consistency_proof(document: dict[str, Any], old: str | None = None) -> str:
    """Check a consistency proof file (``crm audit consistency --out``): the log at its
    ``new`` digest extends the log at its ``old`` one (which must be ``old`` if given, the
    digest the auditor kept). Return the new digest; raise :class:`VerificationFailedError`."""
    if document.get("format") != CONSISTENCY_FORMAT:
        raise VerificationFailedError(f"unknown consistency format {document.get('format')!r}")
    if old is not None and parse_digest(old) != parse_digest(document["old"]):
        raise VerificationFailedError(f"the proof starts from {document['old']}, not {old}")
    old_size, old_root = parse_digest(document["old"])
    new_size, new_root = parse_digest(document["new"])
    proof = [bytes.fromhex(h) for h in document["consistency_proof"]]
    if not verify_consistency(old_size, new_size, old_root, new_root, proof):
        raise VerificationFailedError(f"{document['new']} does not extend {document['old']}")
    return str(document["new"])


def main(argv: Sequence[str] | None = None) -> int:
    """``python verifier.py export DIR --public-key FILE`` or ``... proof FILE --digest D``:
    0 when it verifies, 1 (and the reason on stderr) when it does not."""
    import argparse

    parser = argparse.ArgumentParser(prog="verifier", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    export = sub.add_parser("export", help="check a signed export directory")
    export.add_argument("directory", type=Path)
    export.add_argument("--public-key", type=Path, required=True)
    proof = sub.add_parser("proof", help="check a customer's proof file against a digest")
    proof.add_argument("file", type=Path)
    proof.add_argument("--digest", required=True)
    extends = sub.add_parser("consistency", help="check that a new digest extends an old one")
    extends.add_argument("file", type=Path)
    extends.add_argument("--old", help="the digest you kept (default: the file's)")
    args = parser.parse_args(argv)
    try:
        if args.what == "export":
            manifest = verify_export(args.directory, args.public_key.read_bytes())
            print(
                f"export verified: {manifest['count']} events, positions "
                f"{manifest['first_position']}..{manifest['last_position']}, "
                f"final hash {manifest['final_hash']}"
            )
        elif args.what == "proof":
            count = verify_proof(json.loads(args.file.read_bytes()), args.digest)
            print(f"proof verified: {count} events included in {args.digest}")
        else:
            new = verify_consistency_proof(json.loads(args.file.read_bytes()), args.old)
            print(f"consistency verified: {new} extends the old digest")
    except (VerificationFailedError, OSError, ValueError, KeyError) as exc:
        print(f"NOT VERIFIED: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
