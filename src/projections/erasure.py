"""Read models drop an erased customer's personal data at once (``PersonalDataErased``).

Once a customer's key is destroyed, their events read redacted, so a rebuild projects no
personal value. A live read model must not wait for one: each read model handles
``Customer.PersonalDataErased`` by overwriting the customer's personal columns with
:data:`~crm_domain.personal.REDACTED` (or ``NULL`` where the marker does not fit, e.g. an
e-mail column), in the batch's transaction, with :func:`erase_rows`.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import Table, update

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
    stmt = update(table).where(table.c.customer_id == customer_id, *where).values(**values)
    model.session.execute(stmt)
