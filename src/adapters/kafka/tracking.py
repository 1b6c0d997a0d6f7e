"""Where a follower of the event store (the relay) records how far it got.

The position lives in the same database as the events, in a table named after the
follower (``kafka_relay_tracking``), so a relay never shares a row with a projection that
follows the same application, and backing up the store backs up the position with it.
SQLite and PostgreSQL use eventsourcing-sqlalchemy's ``SQLAlchemyTrackingRecorder``; an
in-memory store gets an in-memory recorder (it lives as long as the process anyway).
"""

from __future__ import annotations

import warnings
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import TrackingRecorder
from eventsourcing.popo import POPOTrackingRecorder

from crm_domain.infrastructure.storage import StoreURL


def tracking_recorder_for(app: Application[UUID], name: str) -> TrackingRecorder:
    """A tracking recorder named ``name`` in the application's own store."""
    store: StoreURL | None = getattr(app, "store", None)
    if store is None or store.backend == "memory":
        return POPOTrackingRecorder()
    return sqlalchemy_tracking_recorder(store.sqlalchemy_url, f"{name}_tracking")


def sqlalchemy_tracking_recorder(url: str, table_name: str) -> TrackingRecorder:
    """A tracking recorder in its own table of the database at ``url`` (the relay's checkpoint)."""
    from eventsourcing_sqlalchemy.datastore import SQLAlchemyDatastore
    from eventsourcing_sqlalchemy.recorders import SQLAlchemyTrackingRecorder

    datastore: Any = SQLAlchemyDatastore(url=url)
    with warnings.catch_warnings():
        # eventsourcing-sqlalchemy names every tracking record class alike; SQLAlchemy warns
        # when a second one (another follower's table) joins its registry. Harmless here.
        warnings.filterwarnings("ignore", message=".*NotificationTrackingRecord.*")
        recorder: TrackingRecorder = SQLAlchemyTrackingRecorder(
            datastore=datastore, tracking_table_name=table_name
        )
    recorder.create_table()  # type: ignore[attr-defined]
    return recorder
