"""``seal``: chain, once, the history a store held before it had a hash chain.

A store written by an earlier release has events with no chain rows; every event written
since is chained, starting from those. :func:`seal_log` verifies what is chained, then,
holding the store's write lock, recomputes the chain over the whole log from its first
event and replaces the chain rows. Nothing proves the events sealed this way were not
edited *before* the seal: take the seal's digest as the baseline and publish it. Digests
published before a seal no longer match (the tree gains leaves in front): seal first.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from crm_domain.audit.source import EventRow, LinkRow, open_source
from crm_domain.audit.verifier import GENESIS, aggregate_link, chain_link, event_hash
from crm_domain.audit.verify import Finding, _Walk
from crm_domain.errors import TamperDetectedError

if TYPE_CHECKING:
    from crm_domain.application import CRM


@dataclass(frozen=True)
class SealReport:
    """What :func:`seal_log` did."""

    #: Events that had no chain row and now have one (0: nothing to seal).
    sealed: int
    #: Chain rows after the seal (every event of the log).
    chained: int


def rechain(events: Iterable[EventRow]) -> Iterator[LinkRow]:
    """The chain rows of a whole log, from its first event."""
    link = GENESIS
    aggregates: dict[str, bytes] = {}
    for position, oid, version, topic, state in events:
        digest = event_hash(topic, oid, version, state)
        aggregate = aggregate_link(aggregates.get(oid, GENESIS), digest)
        aggregates[oid] = aggregate
        link = chain_link(link, position, digest)
        yield position, oid, version, digest, aggregate, link


def seal_log(crm: CRM) -> SealReport:
    """Chain the events stored before the chain began, under the store's write lock.

    A log whose chained part does not verify is not sealed
    (:class:`~crm_domain.errors.TamperDetectedError`): sealing would launder the edit."""
    with open_source(crm.store, write=True) as source:
        walk = _Walk(source, 1)
        finding, position, detail = walk.run()
        if finding is Finding.INTACT:
            return SealReport(sealed=0, chained=walk.count)
        if finding is not Finding.UNCHAINED:
            raise TamperDetectedError(finding.value, position, detail)
        unchained = len(walk.unchained)
        chained = source.replace_chain(rechain(source.events(1)))
    return SealReport(sealed=unchained, chained=chained)
