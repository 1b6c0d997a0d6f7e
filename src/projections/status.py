"""How far each read model has got: its position against the head of the log (lag)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from projections.readmodel import ReadModel
from projections.runner import log_head, open_view


@dataclass(frozen=True)
class ReadModelStatus:
    """How far one read model is behind the log (``crm projections status``)."""

    name: str
    description: str
    position: int | None
    head: int

    @property
    def lag(self) -> int:
        """Notifications still to apply (0: current)."""
        return max(0, self.head - (self.position or 0))

    @property
    def current(self) -> bool:
        """True when the read model has applied the whole log."""
        return self.lag == 0


def status(
    store_url: str,
    *,
    read_models: Sequence[str | type[ReadModel]] | None = None,
    views_url: str | None = None,
) -> list[ReadModelStatus]:
    """Each read model's position, the log's head and the lag between them."""
    app_name, head = log_head(store_url)
    view = open_view(store_url, read_models=read_models, views_url=views_url)
    try:
        positions = view.positions(app_name)
        return [
            ReadModelStatus(m.name, m.description, positions[m.name], head)
            for m in view.read_models
        ]
    finally:
        view.engine.dispose()
