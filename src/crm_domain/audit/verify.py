"""``verify``: walk the event log against its hash chain; report the first thing wrong.

The walk reads the events and the chain rows side by side in position order (one read
transaction) and recomputes every event's hash, the log's chain and each aggregate's
chain. The first difference is classified:

- **modified**: the event at a position is not the one chained there (a payload, topic or
  version byte changed), or the chain row itself was edited;
- **deleted**: the chain has a position the events table no longer holds;
- **inserted**: the events table holds a position the chain never saw;
- **reordered**: the event at a position was chained at another position (rows swapped);
- **snapshot**: a snapshot's state is not the fold of the events it summarises;
- **unchained**: the oldest events were stored before the chain began (an existing store
  upgraded): ``crm audit seal`` chains them once.

The result is a :class:`VerifyReport` value; :meth:`VerifyReport.raise_for_finding` turns a
finding into the error of :mod:`crm_domain.errors` the command line maps to its exit code.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum
from functools import reduce
from typing import TYPE_CHECKING, Any, cast
from uuid import UUID

from eventsourcing.persistence import StoredEvent

from crm_domain.audit.source import EventRow, LinkRow, LogSource, open_source
from crm_domain.audit.verifier import GENESIS, aggregate_link, chain_link, event_hash
from crm_domain.errors import TamperDetectedError, UnchainedHistoryError
from crm_domain.eventmodel import Snapshot

if TYPE_CHECKING:
    from crm_domain.application import CRM


class Finding(StrEnum):
    """What :func:`verify_log` found (``intact``, or the kind of the first problem)."""

    INTACT = "intact"
    MODIFIED = "modified"
    DELETED = "deleted"
    INSERTED = "inserted"
    REORDERED = "reordered"
    SNAPSHOT = "snapshot"
    UNCHAINED = "unchained"


@dataclass(frozen=True)
class VerifyReport:
    """The outcome of a verification: the finding, where, and what was checked."""

    #: Intact, or the kind of the first problem found.
    finding: Finding
    #: The position of the first problem (for ``unchained``: the first chained position,
    #: None when no event is chained); None when intact.
    position: int | None
    #: What is wrong, in words (empty when intact).
    detail: str
    #: Events checked against the chain.
    events: int
    #: Snapshots checked against the fold of their events.
    snapshots: int
    #: The first and last positions checked (None: none).
    first_position: int | None
    last_position: int | None
    #: The chain hash of the last event checked (hex; None: none).
    final_hash: str | None
    #: Seconds the walk took (the snapshots excluded).
    seconds: float

    @property
    def intact(self) -> bool:
        """True when nothing is wrong."""
        return self.finding is Finding.INTACT

    @property
    def events_per_second(self) -> float:
        """How fast the chain walk went."""
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        """One line for people."""
        if self.intact:
            return (
                f"intact: {self.events:,} events (positions {self.first_position}.."
                f"{self.last_position}) and {self.snapshots:,} snapshots verified; "
                f"final hash {self.final_hash}"
            )
        where = f" at position {self.position}" if self.position is not None else ""
        return f"{self.finding.value}{where}: {self.detail}"

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON values (for monitoring)."""
        return {
            "finding": self.finding.value,
            "position": self.position,
            "detail": self.detail,
            "events": self.events,
            "snapshots": self.snapshots,
            "first_position": self.first_position,
            "last_position": self.last_position,
            "final_hash": self.final_hash,
            "events_per_second": round(self.events_per_second),
        }

    def raise_for_finding(self) -> None:
        """Raise :class:`~crm_domain.errors.TamperDetectedError` (or
        :class:`~crm_domain.errors.UnchainedHistoryError`) unless intact."""
        if self.finding is Finding.INTACT:
            return
        if self.finding is Finding.UNCHAINED:
            raise UnchainedHistoryError(self.position, self.detail)
        raise TamperDetectedError(self.finding.value, self.position, self.detail)


class _Walk:
    """The state of one walk through the log."""

    def __init__(self, source: LogSource, start: int) -> None:
        self.source = source
        self.start = start
        previous = source.link_before(start) if start > 1 else None
        self.link = previous or GENESIS
        self.from_start = previous is None
        self.chained = previous is not None
        self.aggregates: dict[str, bytes] = {}
        self.count = 0
        self.first: int | None = None
        self.last: int | None = None
        self.unchained: list[int] = []

    def run(self) -> tuple[Finding, int | None, str]:
        events, links = self.source.events(self.start), self.source.links(self.start)
        event, link = next(events, None), next(links, None)
        while event is not None or link is not None:
            if link is None or (event is not None and event[0] < link[0]):
                assert event is not None
                if self.chained:
                    return Finding.INSERTED, event[0], "the chain never saw this event"
                self.unchained.append(event[0])
                event = next(events, None)
                continue
            if event is None or link[0] < event[0]:
                return (
                    Finding.DELETED,
                    link[0],
                    (f"version {link[2]} of {UUID(link[1])} was chained here and is gone"),
                )
            found = self.check(event, link)
            if found is not None:
                return found
            event, link = next(events, None), next(links, None)
        if self.unchained:
            first, last = self.unchained[0], self.unchained[-1]
            chained = self.first
            return (
                Finding.UNCHAINED,
                chained,
                (
                    f"{len(self.unchained):,} events (positions {first}..{last}) were stored "
                    "before the hash chain began; `crm audit seal` chains them"
                    + (f"; positions {chained}..{self.last} verified" if chained else "")
                ),
            )
        return Finding.INTACT, None, ""

    def check(self, event: EventRow, link: LinkRow) -> tuple[Finding, int, str] | None:
        position, oid, version, topic, state = event
        digest = event_hash(topic, oid, version, state)
        if (oid, version) != (link[1], link[2]):
            elsewhere = self.source.chained_position(oid, version)
            if elsewhere is not None:
                return (
                    Finding.REORDERED,
                    position,
                    (f"version {version} of {UUID(oid)} was chained at position {elsewhere}"),
                )
            return (
                Finding.MODIFIED,
                position,
                (
                    f"version {link[2]} of {UUID(link[1])} was chained here; the row now holds "
                    f"version {version} of {UUID(oid)}"
                ),
            )
        if digest != link[3]:
            return (
                Finding.MODIFIED,
                position,
                (f"version {version} of {UUID(oid)}: its stored bytes differ from those chained"),
            )
        expected = chain_link(self.link, position, digest)
        if expected != link[5]:
            return Finding.MODIFIED, position, "the chain record at this position was altered"
        previous = self.aggregates.get(oid)
        if previous is None and self.from_start:
            previous = GENESIS
        if previous is not None and aggregate_link(previous, digest) != link[4]:
            return (
                Finding.MODIFIED,
                position,
                (f"the aggregate chain record of version {version} of {UUID(oid)} was altered"),
            )
        self.aggregates[oid] = link[4]
        self.link = link[5]
        self.chained = True
        self.count += 1
        if self.first is None:
            self.first = position
        self.last = position
        return None


def _check_snapshots(crm: CRM, source: LogSource) -> tuple[int, tuple[Finding, int | None, str]]:
    """Each snapshot against the fold of the events it summarises."""
    mapper = crm.app.mapper
    checked = 0
    for oid, version, topic, state in source.snapshots():
        uuid = UUID(oid)
        try:
            snapshot = mapper.to_domain_event(
                StoredEvent(
                    originator_id=uuid, originator_version=version, topic=topic, state=state
                )
            )
            events = list(crm.app.events.get(uuid, lte=version))
            aggregate = reduce(lambda agg, ev: cast(Any, ev).mutate(agg), events, None)
            folded = Snapshot.take(aggregate) if aggregate is not None else None
        except Exception as exc:  # an edit that no longer even parses
            return checked, (
                Finding.SNAPSHOT,
                source.chained_position(oid, version),
                f"snapshot of {uuid} at version {version} cannot be read: {exc}",
            )
        assert isinstance(snapshot, Snapshot)
        if (
            folded is None
            or folded.originator_version != version
            or folded.topic != snapshot.topic
            or folded.state != snapshot.state
        ):
            fields = _differing(snapshot.state, folded.state if folded else {})
            return checked, (
                Finding.SNAPSHOT,
                source.chained_position(oid, version),
                f"snapshot of {uuid} at version {version} differs from the fold of its "
                f"events ({', '.join(fields) or 'version or type'})",
            )
        checked += 1
    return checked, (Finding.INTACT, None, "")


def _differing(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))


def verify_log(crm: CRM, *, start: int = 1, snapshots: bool = True) -> VerifyReport:
    """Verify the log of ``crm``'s store from position ``start`` (the chain link before it
    is taken as given) and, with ``snapshots``, every snapshot. Never raises for a
    finding: the report says it (see :meth:`VerifyReport.raise_for_finding`)."""
    with open_source(crm.store) as source:
        began = time.perf_counter()
        walk = _Walk(source, start)
        finding, position, detail = walk.run()
        seconds = time.perf_counter() - began
        checked = 0
        if snapshots and finding in (Finding.INTACT, Finding.UNCHAINED):
            checked, found = _check_snapshots(crm, source)
            if found[0] is not Finding.INTACT:
                finding, position, detail = found
    return VerifyReport(
        finding=finding,
        position=position,
        detail=detail,
        events=walk.count,
        snapshots=checked,
        first_position=walk.first,
        last_position=walk.last,
        final_hash=walk.link.hex() if walk.count else None,
        seconds=seconds,
    )
