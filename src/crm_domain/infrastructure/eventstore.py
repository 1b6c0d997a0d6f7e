"""The event store under the CRM: eventsourcing's ``Application``, configured for crm-core.

:class:`~crm_domain.CRM` composes one (``crm.app``) rather than being one, so the CRM's
own API stays about customers and accounts. Projections and the Kafka relay use
``crm.app`` directly: its ``recorder`` (the notification log), ``mapper`` (stored events
to domain events) and ``events`` / ``repository``.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar
from uuid import UUID

from eventsourcing.application import Application, ProcessingEvent
from eventsourcing.utils import EnvType, get_topic

from crm_domain.account import Account
from crm_domain.customer import Customer
from crm_domain.eventmodel import Snapshot
from crm_domain.infrastructure.persistence import OrjsonTranscoder, PydanticMapper
from crm_domain.infrastructure.storage import StoreURL

log = logging.getLogger(__name__)


class CRMEventStore(Application[UUID]):
    """Customers' and accounts' events as stored (pydantic events as JSON via orjson).

    Named ``"CRM"``: eventsourcing names PostgreSQL tables after the application, and every
    reader (projections, relay) must find the same ``crm_events``.
    """

    name = "CRM"
    env: ClassVar[dict[str, str]] = {
        "TRANSCODER_TOPIC": get_topic(OrjsonTranscoder),
        "MAPPER_TOPIC": get_topic(PydanticMapper),
    }
    snapshot_class = Snapshot

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Keep the store's name in subclasses (e.g. a runner's) unless they name another.
        if "name" not in cls.__dict__:
            cls.name = CRMEventStore.name
        super().__init_subclass__(**kwargs)

    def __init__(
        self,
        env: EnvType | None = None,
        *,
        name: str | None = None,
        snapshot_interval: int | None = None,
        store: StoreURL | None = None,
    ) -> None:
        #: Where the events live (followers keep their positions in the same database).
        self.store = store
        if name is not None:
            self.name = name
        if snapshot_interval:
            self.snapshotting_intervals = {  # type: ignore[misc]
                Customer: snapshot_interval,
                Account: snapshot_interval,
            }
        super().__init__(env)

    def _take_snapshots(self, processing_event: ProcessingEvent[UUID]) -> None:
        """Snapshots are taken after the events committed: a failure to write one must not
        turn a stored command into a reported failure. Log it; the next one will do.

        Per aggregate that the saved events take past a snapshot point, one snapshot is
        taken (a bulk save passes many; loading needs the latest), of the saved aggregate
        itself at its version, rather than replayed from the store (what the library does,
        and what made bulk imports spend a fifth of their time here)."""
        try:
            self._take_latest_snapshots(processing_event)
        except Exception:
            log.warning(
                "snapshot not stored (the events were): aggregates %s",
                ", ".join(str(i) for i in processing_event.aggregates),
                exc_info=True,
            )

    def _take_latest_snapshots(self, processing_event: ProcessingEvent[UUID]) -> None:
        if not self.snapshots or not self.snapshotting_intervals:
            return
        latest: dict[UUID, int] = {}
        for event in processing_event.events:
            aggregate = processing_event.aggregates.get(event.originator_id)
            if aggregate is None:
                continue
            interval = self.snapshotting_intervals.get(type(aggregate))
            if interval is not None and event.originator_version % interval == 0:
                latest[event.originator_id] = event.originator_version
        for aggregate_id in latest:
            # The saved aggregate at its version (at or after the point): a load reads the
            # latest snapshot at or before the version it wants, so one a few events later
            # than the interval's multiple only saves replaying them.
            aggregate = processing_event.aggregates[aggregate_id]
            snapshot_class = getattr(type(aggregate), "Snapshot", type(self).snapshot_class)
            assert snapshot_class is not None
            self.snapshots.put([snapshot_class.take(aggregate)])
