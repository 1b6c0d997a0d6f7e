"""Resume a parked read model: ``retry`` the event it stopped at, or ``skip`` it (audited).

A read model that cannot apply an event is parked by the runner (see
:mod:`projections.control`): its position stays before the event, the event and the error
are recorded, the other read models go on. Once the cause is fixed (a deployed handler, a
repaired row), :func:`retry` applies the event again and catches the read model up to the
log's head; if the event is to be left out for good, :func:`skip` moves the read model past
it and records who skipped it, when and why, for auditors. Both work beside a running
``crm projections run``: they catch up in this process, and exactly-once tracking keeps
the two from applying an event twice.
"""

from __future__ import annotations

import getpass
import time

from eventsourcing.persistence import Tracking

from crm_domain.errors import InvalidCommandError, ProjectionLagError, ReadModelParkedError
from projections import control
from projections.control import Parked, Skip
from projections.readmodel import ReadModel
from projections.registry import select_read_models
from projections.runner import follow, log_head, open_view
from projections.status import ReadModelStatus, status
from projections.views import ReadModelView

#: Seconds :func:`retry` and :func:`skip` wait for the read model to reach the log's head.
CATCH_UP_TIMEOUT = 300.0


def retry(
    store_url: str,
    name: str | type[ReadModel],
    *,
    views_url: str | None = None,
    timeout: float = CATCH_UP_TIMEOUT,
) -> ReadModelStatus:
    """Unpark read model ``name`` and apply the log from its position to the head.

    Returns its status afterwards: ``parked`` is set again (with the new error and time)
    if the event still fails. Raises :class:`ReadModelParkedError` if it is not parked
    or a rebuild holds it.
    """
    (model,) = select_read_models([name])
    name = model.name
    view = open_view(store_url, read_models=[model], views_url=views_url)
    try:
        with view.transaction(commit=True) as session:
            state = control.lock_states(session, [name])[name]
            _check_parked(name, state.parked, state.rebuilding, state.interrupted)
            control.unpark(session, name)
    finally:
        view.engine.dispose()
    return catch_up(store_url, model, views_url=views_url, timeout=timeout)


def skip(
    store_url: str,
    name: str | type[ReadModel],
    *,
    position: int,
    reason: str,
    actor: str | None = None,
    views_url: str | None = None,
    timeout: float = CATCH_UP_TIMEOUT,
) -> ReadModelStatus:
    """Move parked read model ``name`` past the event it stopped at, then catch it up.

    ``position`` must be the parked event's position (what ``status`` shows), so an
    operator skips exactly the event they looked at. The skip is recorded (read model,
    position, event, error, ``reason``, ``actor`` (default: the OS user), time) in
    ``read_model_skips``, in the same transaction as the new position. Raises
    :class:`ReadModelParkedError` if it is not parked at ``position``, and
    :class:`InvalidCommandError` for an empty reason.
    """
    (model,) = select_read_models([name])
    name = model.name
    if not reason.strip():
        raise InvalidCommandError(f"skipping an event of read model {name!r} needs a reason")
    who = (actor or _os_user()).strip()
    if not who:
        raise InvalidCommandError("skipping an event needs the name of who skips it")
    app_name, _ = log_head(store_url)
    view = open_view(store_url, read_models=[model], views_url=views_url)
    try:
        with view.transaction(commit=True) as session:
            state = control.lock_states(session, [name])[name]
            parked = _check_parked(name, state.parked, state.rebuilding, state.interrupted)
            if parked.position != position:
                raise ReadModelParkedError(
                    f"read model {name!r} is parked at position {parked.position}, "
                    f"not {position}: nothing skipped"
                )
            table = view.tracking_tables[name]
            current = view._read_position(session, table, app_name)
            ReadModelView._advance_position(
                session, table, name, current, Tracking(app_name, position)
            )
            control.record_skip(session, name, parked, reason.strip(), who)
            control.unpark(session, name)
    finally:
        view.engine.dispose()
    return catch_up(store_url, model, views_url=views_url, timeout=timeout)


def skips(store_url: str, name: str | None = None, *, views_url: str | None = None) -> list[Skip]:
    """The skipped events (of read model ``name``, or of all), oldest first."""
    view = open_view(store_url, views_url=views_url)
    try:
        return control.skips_of(view.engine, name)
    finally:
        view.engine.dispose()


def catch_up(
    store_url: str,
    name: str | type[ReadModel],
    *,
    views_url: str | None = None,
    timeout: float = CATCH_UP_TIMEOUT,
) -> ReadModelStatus:
    """Run read model ``name`` in this process until it reaches the log's head or parks."""
    (model,) = select_read_models([name])
    name = model.name
    with follow(store_url, read_models=[model], views_url=views_url) as runner:
        head = runner.head()
        deadline = time.monotonic() + timeout
        while True:
            state = runner.view.control_states()[name]
            # positions(): never waits for a rebuild's locked tables
            position = runner.view.positions(runner.app_name)[name] or 0
            if position >= head or state.parked is not None or state.rebuilding:
                break
            runner.run_forever(timeout=0.05)  # re-raises the runner's error, if any
            if time.monotonic() > deadline:
                raise ProjectionLagError(
                    f"read model {name!r} did not reach {head} in {timeout} seconds"
                )
    (found,) = status(store_url, read_models=[model], views_url=views_url)
    return found


def _check_parked(
    name: str, parked: Parked | None, rebuilding: bool, interrupted: bool = False
) -> Parked:
    if interrupted:
        raise ReadModelParkedError(
            f"read model {name!r} is held by a rebuild that was killed (not parked): "
            "`crm projections run` releases it and carries on, nothing changed"
        )
    if rebuilding:
        raise ReadModelParkedError(f"read model {name!r} is being rebuilt: nothing changed")
    if parked is None:
        raise ReadModelParkedError(f"read model {name!r} is not parked: nothing changed")
    return parked


def _os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # pragma: no cover - no user name in this environment
        return "unknown"
