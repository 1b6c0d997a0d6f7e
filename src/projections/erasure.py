"""Read models drop an erased customer's personal data at once (``PersonalDataErased``).

Once a customer's key is destroyed, their events read redacted, so a rebuild projects no
personal value. A live read model must not wait for one: each read model handles
``Customer.PersonalDataErased`` by overwriting the customer's personal columns with
:data:`~crm_domain.personal.REDACTED` (or ``NULL`` where the marker does not fit, e.g. an
e-mail column), in the batch's transaction, with :func:`erase_rows`.

On SQLite the overwritten values must not linger in the file either: the update runs with
``secure_delete`` (freed cell content is zeroed) and, once the batch commits, a
``wal_checkpoint(TRUNCATE)`` copies the new pages into the database file and empties the
write-ahead log, which still held the old page images.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import Table, event, text, update
from sqlalchemy.orm import Session

from crm_domain.personal import REDACTED
from projections.readmodel import ReadModel

__all__ = ["REDACTED", "erase_rows"]


def erase_rows(
    model: ReadModel, table: Table, customer_id: UUID, values: dict[str, Any], *where: Any
) -> None:
    """Overwrite ``values`` in every row of ``table`` about ``customer_id``.

    Rows the batch holds so far are written first (the read model's ``finish``; writing
    them again at the end of the batch is harmless), so the update covers them too and a
    row cached earlier in the batch cannot bring the old values back.
    """
    model.finish()
    session = model.session
    sqlite = session.get_bind().dialect.name == "sqlite"
    if sqlite:
        session.execute(text("PRAGMA secure_delete = ON"))
    stmt = update(table).where(table.c.customer_id == customer_id, *where).values(**values)
    session.execute(stmt)
    if sqlite and not session.info.get(_CHECKPOINT):
        session.info[_CHECKPOINT] = True
        event.listen(session, "after_commit", _checkpoint, once=True)


_CHECKPOINT = "erasure_checkpoint"


def _checkpoint(session: Session) -> None:
    """After the erasing batch committed: empty SQLite's write-ahead log (best effort:
    a reader still holding old pages only delays it to a later checkpoint)."""
    session.info.pop(_CHECKPOINT, None)
    engine = session.get_bind().engine
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    except Exception:  # pragma: no cover - a busy database: a later checkpoint does it
        pass
