"""The projection: gathers notifications into batches and hands each batch to the view.

The stock ``ProjectionRunner`` calls ``process_event`` once per decoded event; that still
works here (each call is its own transaction). :class:`~projections.runner.ReadModelRunner`
instead feeds :meth:`ReadModelProjection.collect` raw notifications and calls
:meth:`ReadModelProjection.flush` whenever the subscription has nothing more buffered or a
batch is full, so catch-up and rebuild commit hundreds of events per transaction while a
live runner still commits each event as soon as it arrives.
"""

from __future__ import annotations

from typing import Any

from eventsourcing.persistence import Mapper, Notification, Tracking
from eventsourcing.projection import Projection

from projections.readmodel import LoggedEvent
from projections.views import ReadModelView

#: Events per transaction during catch-up and rebuild.
DEFAULT_BATCH_SIZE = 1000


class ReadModelProjection(Projection[ReadModelView]):
    """Projects the CRM's notification log into the read models of its view."""

    name = "projections"
    #: Empty: every notification is read, so positions reach the head of the log; topics
    #: no read model wants are skipped without being decoded.
    topics: tuple[str, ...] = ()
    batch_size: int = DEFAULT_BATCH_SIZE

    def __init__(self, view: ReadModelView) -> None:
        super().__init__(view)
        self._pending: list[LoggedEvent] = []
        self._application_name = ""
        self._wanted = frozenset().union(*(m.handled_topics() for m in view.read_models))

    def process_event(self, domain_event: Any, tracking: Tracking) -> None:
        """Apply one decoded event and its position in one transaction (stock runner path)."""
        notification = Notification(
            id=tracking.notification_id,
            originator_id=domain_event.originator_id,
            originator_version=domain_event.originator_version,
            topic=_topic_of(domain_event),
            state=b"",
        )
        self.view.record(
            tracking.application_name, [LoggedEvent(notification, decoded=domain_event)]
        )

    def collect(
        self, application_name: str, notification: Notification, mapper: Mapper[Any]
    ) -> None:
        """Add one notification to the current batch (decoded later, only if wanted)."""
        self._application_name = application_name
        wanted = notification.topic in self._wanted
        self._pending.append(LoggedEvent(notification, mapper=mapper if wanted else None))

    @property
    def batch_is_full(self) -> bool:
        """True when the collected events fill a batch (time to flush)."""
        return len(self._pending) >= self.batch_size

    def flush(self) -> None:
        """Commit the current batch (read-model rows and positions in one transaction)."""
        if self._pending:
            batch, self._pending = self._pending, []
            self.view.record(self._application_name, batch)


def _topic_of(domain_event: Any) -> str:
    from eventsourcing.utils import get_topic

    return get_topic(type(domain_event))
