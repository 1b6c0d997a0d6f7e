"""The rebuild's fast path: fold the whole log into empty read models in memory, write once.

A live runner applies events in small batches, each its own transaction with its own
prefetch queries and position updates. A rebuild starts from empty tables, so none of
that is needed: :func:`fold_log` reads the notification log in large pages, routes each
notification by topic *before* decoding it (a read model never decodes what it neither
handles), hands the handled ones to the read models' own handlers (the same code the live
runner calls: decoded lazily from the stored JSON through
:meth:`~crm_domain.infrastructure.persistence.PydanticMapper.to_event_state`, see
:class:`~projections.readmodel.LoggedEvent`), keeps the read models' *rows* in memory
(:meth:`~projections.readmodel.ReadModel.hold_all_rows`: nothing is read from the
database), and writes each table with one ``executemany`` (``COPY`` on PostgreSQL) at the
end, together with every read model's position, in one transaction: all or nothing. The
live runner carries on from those positions.

Customers' keys are read once, in one query, when the fold starts, and held until it ends
(:meth:`~crm_domain.infrastructure.sealing.PersonalDataSealer.hold_all_keys`): a sealed
event costs no key lookup; reading a ``PersonalDataErased`` drops its customer's key, as it
evicts a cached one.

Memory holds rows, not events. When the rows held pass ``row_budget``, they are written
(in the same, still open transaction) and the read models go back to reading the rows
they need from the database, with their ``prepare`` prefetch, as a live runner does: the
result is the same, only written in chunks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from eventsourcing.persistence import IntegrityError, Mapper, Tracking
from sqlalchemy import Connection, event
from sqlalchemy.orm import Session

from crm_domain.errors import ProjectionError, UnhandledEventError
from crm_domain.infrastructure.sealing import PersonalDataSealer
from projections.control import lock_states
from projections.readmodel import Handler, LoggedEvent, ReadModel
from projections.views import ReadModelView

#: Notifications read from the log per query.
FOLD_PAGE_SIZE = 10_000
#: Read-model rows held in memory before they are written (in the rebuild's transaction).
#: About 1.3 KB each with their values: the default keeps a one-process rebuild within
#: about 400 MB at any size of history (the timeline holds one row per event; a history of
#: 100,000 events fits in one chunk). Measured: docs/where-the-time-goes.md.
DEFAULT_ROW_BUDGET = 200_000

Progress_ = Callable[[int, int], None]


class _Folding:
    """One read model during a fold: its instance, routing sets and bound handlers."""

    __slots__ = ("handlers", "known", "model", "model_class", "topics")

    def __init__(self, model_class: type[ReadModel], model: ReadModel) -> None:
        self.model_class = model_class
        self.model = model
        self.topics = model_class.handled_topics()
        self.known = self.topics | model_class.ignored_topics()
        self.handlers: dict[str, Handler] = model.handlers()


def fold_log(
    view: ReadModelView,
    recorder: Any,
    mapper: Mapper[Any],
    application_name: str,
    head: int,
    *,
    after: int = 0,
    token: str | None = None,
    page_size: int = FOLD_PAGE_SIZE,
    row_budget: int = DEFAULT_ROW_BUDGET,
    on_progress: Progress_ | None = None,
    replace_tables: bool = False,
) -> int:
    """Apply notifications ``after + 1`` to ``head`` of ``recorder``'s log to the view's
    read models and move each one's position from ``after`` to ``head``, in one
    transaction; returns the number of notifications read.

    With ``after`` 0 the read models' tables must be empty with no position (nothing was
    ever projected, or a rebuild has dropped them), or ``replace_tables`` given: then
    the fold drops and creates them empty (their tracking too, secondary indexes left
    out) in its own transaction, when it first uses the database (its first chunk of
    rows, or its commit; it reads nothing before), so a fold that fails or is killed
    leaves the old rows and positions as they were. Rows are held in memory. With
    ``after`` above 0 (catching up read models that are all at that position), the rows
    each page touches are prefetched as a live runner does. The read models must be held
    by the rebuild with ``token`` (or, with ``token`` None, be neither claimed nor
    parked): checked under the read models' control locks, and each position moved by
    compare-and-set, before anything is committed. An event a read model neither handles
    nor ignores, or cannot apply, raises :class:`~crm_domain.errors.UnhandledEventError`
    naming it; nothing is committed.
    """
    if row_budget < 1:
        raise ValueError(f"row_budget must be at least 1, not {row_budget}")
    if replace_tables and after:
        raise ValueError("replace_tables folds the whole log: after must be 0")
    done = 0
    sealer: PersonalDataSealer | None = getattr(mapper, "sealer", None)
    holds_keys = sealer is not None and sealer.hold_all_keys()
    try:
        with view.transaction(commit=True) as session:
            if replace_tables:
                _replace_tables_first(view, session)
            done = _fold(
                view,
                session,
                recorder,
                mapper,
                application_name,
                head,
                after=after,
                token=token,
                page_size=page_size,
                row_budget=row_budget,
                on_progress=on_progress,
            )
    finally:
        if sealer is not None and holds_keys:
            sealer.release_keys()
    return done


def _replace_tables_first(view: ReadModelView, session: Session) -> None:
    """Drop and create the view's read models' tables empty in ``session``'s transaction,
    as it begins on the database (whatever statement comes first: a chunk's rows, an
    erasure's update, the commit's control locks).

    Not at the start of the fold: it reads nothing from those tables (every row is held
    in memory), so until it first writes, the old rows stay as they were for readers
    (and on SQLite the database's write lock stays free for the application's commands,
    as before: a fold that writes no chunk takes it only to commit)."""

    def replace(session: Session, transaction: Any, connection: Connection) -> None:
        for name in view.names:
            view.replace_tables(connection, name, defer_indexes=True)

    event.listen(session, "after_begin", replace, once=True)


def _fold(
    view: ReadModelView,
    session: Any,
    recorder: Any,
    mapper: Mapper[Any],
    application_name: str,
    head: int,
    *,
    after: int,
    token: str | None,
    page_size: int,
    row_budget: int,
    on_progress: Progress_ | None,
) -> int:
    """The body of :func:`fold_log`, in its transaction ``session``."""
    done = 0
    folding = [_Folding(m, m(session)) for m in view.read_models]
    for f in folding:
        f.model.hold_all_rows(after == 0)
    # Events handled since rows were last written: read models append about one row
    # per event between writes (the timeline's entries), besides the rows they hold.
    pending = 0
    start = after + 1
    while start <= head:
        page = recorder.select_notifications(start=start, limit=page_size, stop=head)
        if not page:
            break
        logged = [LoggedEvent(n, mapper) for n in page]
        page_topics = {n.topic for n in page}
        handled_topics: set[str] = set()
        for f in folding:
            unknown = page_topics - f.known
            if unknown:
                first = next(e for e in logged if e.topic in unknown)
                raise UnhandledEventError(
                    read_model=f.model_class.name,
                    topic=first.topic,
                    position=first.position,
                    originator_id=first.originator_id,
                    reason="no handler for this event type, and it is not listed as ignored",
                )
            topics = f.topics
            handled = [e for e in logged if e.topic in topics]
            if not handled:
                continue
            handled_topics |= topics
            _apply(view, f, handled)
        pending += sum(1 for n in page if n.topic in handled_topics)
        done += len(page)
        start = page[-1].id + 1
        if pending + sum(f.model.held_rows() for f in folding) > row_budget:
            for f in folding:
                f.model.finish()
                f.model.hold_all_rows(False)
            pending = 0
        if on_progress is not None:
            on_progress(min(done, head - after), head - after)
    _commit_positions(view, session, folding, application_name, after, head, token)
    return done


def _apply(view: ReadModelView, f: _Folding, handled: Sequence[LoggedEvent]) -> None:
    model = f.model
    if not model.complete:  # rows were written: fetch the ones this page touches
        try:
            model.prepare(handled)
        except Exception as exc:
            if len(handled) == 1:
                raise view._explain(exc, handled[0], f.model_class.name) from exc
            raise
    handlers = f.handlers
    for logged in handled:
        try:
            handlers[logged.topic](logged.event, logged.position)
        except Exception as exc:
            raise view._explain(exc, logged, f.model_class.name) from exc


def _commit_positions(
    view: ReadModelView,
    session: Any,
    folding: Sequence[_Folding],
    application_name: str,
    after: int,
    head: int,
    token: str | None,
) -> None:
    """Take the control locks, check the claim, write the rows and every position."""
    names = [f.model_class.name for f in folding]
    states = lock_states(session, names)
    for name in names:
        if not states[name].writable_by(token):
            raise ProjectionError(
                f"read model {name!r} was taken over by another rebuild "
                f"(generation {states[name].generation}); this rebuild stops"
            )
    last = Tracking(application_name, head)
    for f in folding:
        name = f.model_class.name
        f.model.finish()
        if head > after:
            view._advance_position(session, view.tracking_tables[name], name, after or None, last)


#: Events behind the store at which catching up (before a report) folds the log in one
#: transaction per group of read models rather than following it batch by batch.
FAST_CATCH_UP_LAG = 20_000


def catch_up(
    store_url: str,
    *,
    views_url: str | None = None,
    read_models: Sequence[str | type[ReadModel]] | None = None,
    threshold: int = FAST_CATCH_UP_LAG,
    row_budget: int = DEFAULT_ROW_BUDGET,
    on_progress: Progress_ | None = None,
) -> int:
    """Bring the read models that are ``threshold`` or more events behind the store up to
    its head with :func:`fold_log` (read models at the same position in one transaction);
    returns the number of notifications folded. Read models parked, held by a rebuild,
    or less far behind are left to the live runner, which carries on from wherever
    this leaves them; so are those a live runner moves while they are folded (the fold's
    compare-and-set fails and nothing of it is committed).
    """
    from projections.runner import crm_application_class, open_view

    view = open_view(store_url, read_models=read_models, views_url=views_url)
    app = crm_application_class(store_url)()
    try:
        head = int(app.recorder.max_notification_id() or 0)
        view.release_stale_claims()  # a killed rebuild's: its positions stand
        positions = view.positions(app.name)
        states = view.control_states()
        groups: dict[int, list[type[ReadModel]]] = {}
        for model in view.read_models:
            at = positions[model.name] or 0
            if states[model.name].writable_by(None) and head - at >= threshold:
                groups.setdefault(at, []).append(model)
        total = sum(head - at for at in groups)
        folded = 0
        for at, models in sorted(groups.items()):
            group = open_view(store_url, read_models=models, views_url=views_url)
            offset = folded

            def show(done: int, _: int, offset: int = offset) -> None:
                if on_progress is not None:
                    on_progress(offset + done, total)

            try:
                folded += fold_log(
                    group,
                    app.recorder,
                    app.mapper,
                    app.name,
                    head,
                    after=at,
                    row_budget=row_budget,
                    on_progress=show,
                )
            except IntegrityError:
                # A live runner moved these read models meanwhile: nothing of the fold was
                # committed, and the runner carries them on.
                pass
            finally:
                group.engine.dispose()
        return folded
    finally:
        app.close()
        view.engine.dispose()
