"""How far each read model has got: its position against the head of the log (lag), and
whether it is parked at an event or being rebuilt (or was, by a rebuild that was killed)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from projections.control import ClaimHolder, Parked
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
    #: Who holds the rebuild's claim (host and process; unknown for an old claim).
    rebuilt_by: ClaimHolder | None = None
    #: The rebuild holding it was killed (its process is gone from this host): a live
    #: runner or a report's catch-up releases the claim and carries on from ``position``.
    interrupted: bool = False

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
    def rebuild_advice(self) -> str:
        """What to do about the rebuild holding it ("" if none does)."""
        if self.rebuilding_since is None:
            return ""
        if self.interrupted:
            return (
                "killed: `crm projections run` (or a report) releases it and carries on "
                f"from position {self.position or 0:,}; or rebuild it again"
            )
        if self.rebuilt_by is not None and self.rebuilt_by.known:
            return "running: wait for it (a live runner catches up afterwards)"
        return "holder unknown (an older version's claim): if no rebuild runs, rebuild again"

    @property
    def rebuild_note(self) -> str:
        """Who holds the rebuild's claim, since when, and what to do ("" if none does)."""
        if self.rebuilding_since is None:
            return ""
        since = self.rebuilding_since.isoformat(timespec="seconds")
        return f"rebuild by {self.rebuilt_by} since {since}: {self.rebuild_advice}"

    @property
    def state(self) -> str:
        """One word for the status column: parked, interrupted (a killed rebuild's claim),
        rebuilding, current or behind."""
        if self.parked is not None:
            return "parked"
        if self.interrupted:
            return "interrupted"
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
    is parked (at which event, why, since when) or being rebuilt (by whom, since when,
    and whether that rebuild was killed)."""
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
                rebuilt_by=states[m.name].holder,
                interrupted=states[m.name].interrupted,
            )
            for m in view.read_models
        ]
    finally:
        view.engine.dispose()
