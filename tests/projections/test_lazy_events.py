"""Read models see stored events through :class:`LazyEvent`: the same values as decoded
events, field by field, and every row a batch touches is prefetched."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson
from projection_history import Known, project

from crm_domain.application import CRM
from crm_domain.infrastructure.persistence import PydanticMapper
from projections.lazyevent import LazyEvent, json_state
from projections.readmodel import LoggedEvent
from projections.rows import RowCache
from projections.timeline import describe


def _logged(app: CRM) -> list[LoggedEvent]:
    return [
        LoggedEvent(n, mapper=app.app.mapper)
        for n in app.app.recorder.select_notifications(start=1, limit=10_000)
    ]


def test_lazy_events_read_as_the_decoded_events(crm: CRM, known: Known) -> None:
    assert isinstance(crm.app.mapper, PydanticMapper)
    logged = _logged(crm)
    assert len(logged) > 50
    for item in logged:
        lazy: Any = item.event
        decoded: Any = crm.app.mapper.to_domain_event(item.notification)
        assert type(lazy) is LazyEvent
        assert isinstance(lazy, type(decoded))
        assert lazy.__class__ is type(decoded)
        for name in type(decoded).model_fields:
            assert getattr(lazy, name) == getattr(decoded, name), name
            assert type(getattr(lazy, name)) is type(getattr(decoded, name)), name
        assert json_state(lazy) == json_state(decoded) == decoded.model_dump(mode="json")
        assert describe(lazy) == describe(decoded)


def test_every_row_a_batch_touches_is_prefetched(crm: CRM, known: Known) -> None:
    before = RowCache.single_row_reads
    for batch_size in (100_000, 7, 1):
        project(crm, batch_size=batch_size)
    assert RowCache.single_row_reads == before


def test_a_field_missing_from_an_old_event_reads_as_its_default(crm: CRM, known: Known) -> None:
    opened = next(
        n
        for n in crm.app.recorder.select_notifications(start=1, limit=10_000)
        if n.topic.endswith("Account.OpportunityOpened")
    )
    state = orjson.loads(opened.state)
    del state["forecast_category"]
    old = replace(opened, state=orjson.dumps(state))
    lazy: Any = LoggedEvent(old, mapper=crm.app.mapper).event
    decoded: Any = crm.app.mapper.to_domain_event(old)
    assert lazy.forecast_category is None is decoded.forecast_category
    assert json_state(lazy) == decoded.model_dump(mode="json")
    assert list(json_state(lazy)) == list(type(decoded).model_fields)
