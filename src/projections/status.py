"""How far each read model has got: its position against the head of the log (lag), and
whether it is parked at an event or being rebuilt."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from projections.control import Parked
from projections.readmodel import ReadModel
from projections.runner import log_head, open_view


@dataclass(frozen=True)
class ReadModelStatus:
    """How far one read model is behind the log (``crm projections status``)."""

    name: str
    description: str
    position: int | None
    head: int
    #: The event it stopped at (``crm projections retry|skip`` resume it), or None.
    parked: Parked | None = None
    #: Rebuilds so far; a live runner follows each new one.
    generation: int = 0
    #: When the rebuild holding it began (None: no rebuild holds it).
    rebuilding_since: datetime | None = None

    @property
    def lag(self) -> int:
        """Notifications still to apply (0: current)."""
        return max(0, self.head - (self.position or 0))

    @property
    def current(self) -> bool:
        """True when the read model has applied the whole log and is neither parked nor
        being rebuilt."""
        return self.lag == 0 and self.parked is None and self.rebuilding_since is None

    @property
    def state(self) -> str:
        """One word for the status column: parked, rebuilding, current or behind."""
        if self.parked is not None:
            return "parked"
        if self.rebuilding_since is not None:
            return "rebuilding"
        return "current" if self.lag == 0 else "behind"


def status(
    store_url: str,
    *,
    read_models: Sequence[str | type[ReadModel]] | None = None,
    views_url: str | None = None,
) -> list[ReadModelStatus]:
    """Each read model's position, the log's head, the lag between them, and whether it
    is parked (at which event, why, since when) or being rebuilt."""
    app_name, head = log_head(store_url)
    view = open_view(store_url, read_models=read_models, views_url=views_url)
    try:
        positions = view.positions(app_name)
        states = view.control_states()
        return [
            ReadModelStatus(
                m.name,
                m.description,
                positions[m.name],
                head,
                parked=states[m.name].parked,
                generation=states[m.name].generation,
                rebuilding_since=states[m.name].rebuild_started_at,
            )
            for m in view.read_models
        ]
    finally:
        view.engine.dispose()
