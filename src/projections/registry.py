"""The read models this library ships, by name, in the order they are listed to users."""

from __future__ import annotations

from collections.abc import Sequence

from crm_domain.errors import UnknownReadModelError
from projections.readmodel import ReadModel


def all_read_models() -> dict[str, type[ReadModel]]:
    """Every shipped read model, keyed by name."""
    from projections.customer360 import Customer360
    from projections.customer_value import CustomerValue
    from projections.handover import ManagerHandover
    from projections.pipeline import SalesPipeline
    from projections.service_desk import ServiceDesk
    from projections.timeline import ActivityTimeline

    models: list[type[ReadModel]] = [
        Customer360,
        ActivityTimeline,
        SalesPipeline,
        ServiceDesk,
        CustomerValue,
        ManagerHandover,
    ]
    return {m.name: m for m in models}


def select_read_models(
    selection: Sequence[str | type[ReadModel]] | None = None,
) -> list[type[ReadModel]]:
    """Resolve names (or classes) to read-model classes; ``None`` means all of them."""
    if selection is None:
        return list(all_read_models().values())
    chosen: list[type[ReadModel]] = []
    for item in selection:
        if isinstance(item, str):
            known = all_read_models()
            if item not in known:
                raise UnknownReadModelError(item, list(known))
            model = known[item]
        else:
            model = item
        if model not in chosen:
            chosen.append(model)
    if not chosen:
        raise UnknownReadModelError("", list(all_read_models()))
    return chosen
