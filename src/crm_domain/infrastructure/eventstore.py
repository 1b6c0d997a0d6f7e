"""The event store under the CRM: eventsourcing's ``Application``, configured for crm-core.

:class:`~crm_domain.CRM` composes one (``crm.app``) rather than being one, so the CRM's
own API stays about customers and accounts. Projections and the Kafka relay use
``crm.app`` directly: its ``recorder`` (the notification log), ``mapper`` (stored events
to domain events) and ``events`` / ``repository``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any, ClassVar, cast
from uuid import UUID

from eventsourcing.application import Application, ProcessingEvent
from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import EventStore
from eventsourcing.utils import EnvType, get_topic

from crm_domain.account import Account
from crm_domain.customer import Customer
from crm_domain.eventmodel import Snapshot
from crm_domain.infrastructure.persistence import OrjsonTranscoder, PydanticMapper
from crm_domain.infrastructure.storage import StoreURL

log = logging.getLogger(__name__)


class CurrentSnapshots(EventStore[UUID]):
    """The snapshot store: gives only snapshots taken in today's state shape
    (:meth:`Snapshot.is_current`). An older one is passed over, so the repository folds the
    aggregate from its events instead of trusting a state that lacks later fields."""

    def get(
        self,
        originator_id: UUID,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Iterator[DomainEventProtocol[UUID]]:
        """Snapshots of ``originator_id`` as eventsourcing's ``EventStore.get``, less those of
        another shape."""
        found = super().get(originator_id, gt=gt, lte=lte, desc=desc, limit=limit)
        return (s for s in found if cast(Snapshot, s).is_current())


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

    def construct_snapshot_store(self) -> EventStore[UUID]:
        """Snapshots through :class:`CurrentSnapshots` (eventsourcing's store otherwise)."""
        recorder = self.factory.aggregate_recorder(purpose="snapshots")
        return CurrentSnapshots(mapper=self.mapper, recorder=recorder)

    def _take_snapshots(self, processing_event: ProcessingEvent[UUID]) -> None:
        """Snapshots are taken after the events committed: a failure to write one must not
        turn a stored command into a reported failure. Log it; the next one will do."""
        try:
            super()._take_snapshots(processing_event)
        except Exception:
            log.warning(
                "snapshot not stored (the events were): aggregates %s",
                ", ".join(str(i) for i in processing_event.aggregates),
                exc_info=True,
            )
