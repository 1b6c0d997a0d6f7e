"""Digests of the log and the proofs built on them: one customer's events, or a later
digest extending an earlier one.

A digest (``SIZE:ROOT``) is the RFC 6962 root over the first SIZE chained events. Publish
it elsewhere (the ERP topic, a ticket, an e-mail to the auditor); later:

- :func:`prove_customer` exports one customer's events with an inclusion proof each, which
  :func:`crm_domain.audit.verifier.verify_proof` checks against the digest alone, without
  any other customer's data;
- :func:`consistency` proves the log at a later digest extends the log at an earlier one
  (nothing before the earlier one was changed since).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from uuid import UUID

import orjson

from crm_domain.audit.merkle import MerkleTree
from crm_domain.audit.source import open_source
from crm_domain.audit.verifier import (
    PROOF_FORMAT,
    VerificationFailedError,
    format_digest,
    leaf_hash,
    parse_digest,
    verify_consistency,
)
from crm_domain.errors import AuditEvidenceError, ConfigurationError

if TYPE_CHECKING:
    from crm_domain.application import CRM


@dataclass(frozen=True)
class Digest:
    """The log's Merkle root over its first ``size`` chained events."""

    size: int
    root: bytes

    def __str__(self) -> str:
        return format_digest(self.size, self.root)

    @classmethod
    def parse(cls, text: str) -> Digest:
        """``SIZE:ROOT-HEX`` as printed by ``crm audit digest``."""
        try:
            size, root = parse_digest(text)
        except VerificationFailedError as exc:
            raise ConfigurationError(str(exc)) from None
        return cls(size, root)


@dataclass(frozen=True)
class LogTree:
    """The Merkle tree of the chained log, with each leaf's position and aggregate."""

    tree: MerkleTree
    positions: list[int]
    originators: list[str]
    versions: list[int]

    def digest(self, size: int | None = None) -> Digest:
        """The digest of the first ``size`` events (default: all)."""
        size = self.tree.size if size is None else size
        return Digest(size, self.tree.root(size))

    def check(self, digest: Digest) -> None:
        """Raise :class:`AuditEvidenceError` unless the log still has ``digest``."""
        if digest.size > self.tree.size:
            raise AuditEvidenceError(
                f"digest {digest} is of {digest.size:,} events; the log holds {self.tree.size:,}"
            )
        if self.tree.root(digest.size) != digest.root:
            raise AuditEvidenceError(
                f"the log's first {digest.size:,} events no longer hash to digest {digest}: "
                "history was changed since it was published (run `crm audit verify`)"
            )


def log_tree(crm: CRM) -> LogTree:
    """Read the chain and build its tree."""
    positions: list[int] = []
    originators: list[str] = []
    versions: list[int] = []
    leaves: list[bytes] = []
    with open_source(crm.store) as source:
        for position, oid, version, event, _aggregate, _link in source.links(1):
            positions.append(position)
            originators.append(oid)
            versions.append(version)
            leaves.append(leaf_hash(position, event))
    return LogTree(MerkleTree(leaves), positions, originators, versions)


def current_digest(crm: CRM) -> Digest:
    """The digest of the whole chained log as it stands."""
    return log_tree(crm).digest()


def prove_customer(crm: CRM, customer: UUID, digest: Digest) -> dict[str, Any]:
    """One aggregate's events within ``digest``, each with its inclusion proof: the
    document :func:`crm_domain.audit.verifier.verify_proof` checks."""
    tree = log_tree(crm)
    tree.check(digest)
    wanted = customer.hex
    # Where the chain put each of its events (within the digest); their bytes come from
    # the events table.
    index_of = {tree.versions[i]: i for i in range(digest.size) if tree.originators[i] == wanted}
    events = []
    for stored in crm.app.recorder.select_events(customer):
        index = index_of.get(stored.originator_version)
        if index is None:
            continue
        position = tree.positions[index]
        try:
            state: Any = orjson.loads(stored.state)
        except orjson.JSONDecodeError:
            state = None
        events.append(
            {
                "position": position,
                "leaf_index": index,
                "originator_id": wanted,
                "originator_version": stored.originator_version,
                "topic": stored.topic,
                "state_b64": base64.b64encode(stored.state).decode(),
                "state": state,
                "inclusion_proof": [h.hex() for h in tree.tree.inclusion_proof(index, digest.size)],
            }
        )
    return {
        "format": PROOF_FORMAT,
        "digest": str(digest),
        "aggregate": str(customer),
        "events": events,
    }


def consistency(crm: CRM, old: Digest, new: Digest) -> list[bytes]:
    """The RFC 6962 proof that ``new`` extends ``old``, after checking the log still has
    both; raise :class:`AuditEvidenceError` if it does not."""
    if old.size > new.size:
        raise AuditEvidenceError(f"digest {old} is larger than {new}: it cannot be the older")
    tree = log_tree(crm)
    tree.check(old)
    tree.check(new)
    proof = tree.tree.consistency_proof(old.size, new.size)
    if not verify_consistency(old.size, new.size, old.root, new.root, proof):
        raise AuditEvidenceError(f"digest {new} does not extend {old}")
    return proof
