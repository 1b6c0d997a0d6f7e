"""Every use of a library's internals, in one place, each with why it is needed.

crm-core builds on eventsourcing, kafka-python and SQLAlchemy through their public APIs,
except for the few places below, where the public API has no way to do what is needed.
Private attributes change without notice, so each is wrapped here by a function and
checked by ``tests/test_compat.py`` against the library versions in
:data:`CHECKED_AGAINST`; that test fails when an installed version leaves the checked
release line, which is the moment to re-read the library and update this module.

The library modules are imported only for type checking: importing ``crm_domain`` does not
import kafka-python.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from traceback import format_exc
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID, SafeUUID
from warnings import warn

if TYPE_CHECKING:
    from eventsourcing.persistence import ListenNotifySubscription
    from eventsourcing.projection import ApplicationSubscription, Projection, ProjectionRunner
    from kafka import KafkaProducer
    from sqlalchemy.sql.compiler import SQLCompiler

#: The release each wrapper below was read against and tested with. The test accepts any
#: later release of the same line (``~=``, e.g. 9.5.x from 9.5.6).
CHECKED_AGAINST: Mapping[str, str] = {
    "eventsourcing": "9.5.6",
    "eventsourcing-sqlalchemy": "1.0.1",
    "kafka-python": "3.0.12",
    "SQLAlchemy": "2.0.58",
}

TRunner = TypeVar("TRunner", bound="type[ProjectionRunner[Any, Any]]")

#: What a projection runner's event loop does with its subscription and projection.
EventsLoop = Callable[["ApplicationSubscription[Any]", "Projection[Any]"], None]


# ----- eventsourcing ------------------------------------------------------------------
def has_buffered_notifications(subscription: Any) -> bool:
    """True if the subscription's next notification is already in memory (so reading it
    will not wait for the database).

    eventsourcing's ``ListenNotifySubscription`` (used by every backend) keeps the page it
    is reading in ``_notifications`` at ``_notifications_index``, and pages pulled ahead in
    ``_notifications_queue``; it offers no public "would block" test. A subscription of
    another kind counts as empty, which only makes the read models' batches smaller.
    """
    notifications = getattr(subscription, "_notifications", None)
    index = getattr(subscription, "_notifications_index", None)
    queue = getattr(subscription, "_notifications_queue", None)
    if notifications is None or index is None or queue is None:
        return False
    return bool(index < len(notifications) or not queue.empty())


def wake_subscription(subscription: ListenNotifySubscription[Any]) -> None:
    """Make a ``ListenNotifySubscription`` pull what was committed since it last looked.

    The subscription's pull loop waits on its private ``_has_been_notified`` event, which
    the PostgreSQL recorder sets on ``NOTIFY`` and the in-memory one on insert; SQLite has
    neither, so :mod:`crm_domain.infrastructure.sqlite_subscription` sets it on a timer.
    """
    has_been_notified: threading.Event = subscription._has_been_notified
    has_been_notified.set()


def with_events_loop(process: EventsLoop) -> Callable[[TRunner], TRunner]:
    """Class decorator: a ``ProjectionRunner`` subclass whose processing thread runs
    ``process(subscription, projection)`` instead of the library's one-event-at-a-time loop.

    ``ProjectionRunner`` starts its thread on the private static method
    ``_process_events_loop(subscription, projection, is_stopping, runner)``, and reports
    a failure by setting the runner's private ``_thread_error`` (re-raised by ``wait``,
    ``run_forever`` and ``__exit__``) and then ``is_stopping``. This reproduces that
    contract around ``process``, so the read models can commit events in batches.
    """

    def loop(
        subscription: ApplicationSubscription[Any],
        projection: Projection[Any],
        is_stopping: threading.Event,
        runner: weakref.ReferenceType[ProjectionRunner[Any, Any]],
    ) -> None:
        try:
            process(subscription, projection)
        except BaseException as error:
            still_there = runner()
            if still_there is not None:
                still_there._thread_error = error
            else:  # pragma: no cover - the runner was garbage collected first
                warn(
                    f"runner gone before error could be assigned:\n{format_exc()}",
                    RuntimeWarning,
                    stacklevel=2,
                )
        finally:
            is_stopping.set()

    def install(runner_class: TRunner) -> TRunner:
        runner_class._process_events_loop = staticmethod(loop)  # type: ignore[assignment]
        return runner_class

    return install


def before_inserting_events(recorder: Any, step: Callable[[Any, Sequence[Any]], None]) -> bool:
    """Run ``step(cursor, stored_events)`` inside the transaction that inserts events, just
    before they are inserted, on an SQLite or PostgreSQL application recorder; False (and
    nothing done) for a recorder without the hook (e.g. the in-memory one).

    The erasure key store inserts a new customer's key in the transaction of their first
    events (:mod:`crm_domain.infrastructure.sealing`). eventsourcing's recorders call
    ``_insert_events(cursor, stored_events, **kwargs)`` within the write transaction
    (SQLite: the events' own insert; PostgreSQL: a no-op hook "to do other things first")
    and expose nothing public for it. The wrapper is set on the instance, so it composes
    with any recorder subclass's own ``_insert_events``.
    """
    if not hasattr(recorder, "datastore") or not hasattr(recorder, "_insert_events"):
        return False
    insert_events = recorder._insert_events

    def _insert_events(cursor: Any, stored_events: Sequence[Any], **kwargs: Any) -> Any:
        step(cursor, stored_events)
        return insert_events(cursor, stored_events, **kwargs)

    recorder._insert_events = _insert_events
    return True


#: Per event class: its ``@event`` method and parameter names, or None (see event_method).
_EVENT_METHODS: dict[type[Any], tuple[Callable[..., None], tuple[str, ...]] | None] = {}


def event_method(event_class: type[Any]) -> tuple[Callable[..., None], tuple[str, ...]] | None:
    """The method an ``@event``-decorated event class applies, and the names of its
    parameters after ``self``; None for a class the library applies otherwise (no
    decorated method, or an ``apply`` of its own in between).

    eventsourcing applies such an event (``DecoratedFuncCaller.apply``) by looking up the
    method in its private registry ``decorated_funcs`` and filtering every field of the
    event against the method's signature, each time; :class:`~crm_domain.eventmodel.
    Aggregate.Event` does the same with the names looked up once per class.
    """
    try:
        return _EVENT_METHODS[event_class]
    except KeyError:
        pass
    import inspect
    from types import FunctionType

    from eventsourcing.domain import CanMutateAggregate, DecoratedFuncCaller, decorated_funcs

    found: tuple[Callable[..., None], tuple[str, ...]] | None = None
    method = decorated_funcs.get(event_class)
    appliers = [c for c in event_class.__mro__ if "apply" in vars(c)]
    if isinstance(method, FunctionType) and appliers == [DecoratedFuncCaller, CanMutateAggregate]:
        names = tuple(inspect.signature(method).parameters)[1:]
        found = (method, names)
    _EVENT_METHODS[event_class] = found
    return found


class _EventMethod:
    """An aggregate's ``@event`` method, called as eventsourcing's bound decorator is
    (``BoundCommandMethodDecorator.trigger``): the arguments become the event's fields and
    ``trigger_event`` creates, applies and keeps the event.

    The library builds a bound decorator object per call and coerces and filters the
    arguments against two signatures each time; a call naming every parameter by keyword
    (how the CRM's rules call them) is mapped here with the names looked up once. Any other
    call (positional arguments, defaults to fill, unknown names) goes the library's way,
    with its errors.
    """

    def __init__(self, decorator: Any, event_class: type[Any]) -> None:
        import inspect

        self.decorator = decorator
        self.event_class = event_class
        method = decorator.decorated_func
        self.parameters = frozenset(tuple(inspect.signature(method).parameters)[1:])
        self.fields = frozenset(inspect.signature(event_class).parameters)
        self.__doc__ = method.__doc__
        self.__name__ = method.__name__

    def __get__(self, instance: Any, owner: type[Any]) -> Any:
        if instance is None:
            return self.decorator.__get__(instance, owner)
        return partial(self.trigger, instance)

    def trigger(self, aggregate: Any, /, *args: Any, **kwargs: Any) -> None:
        if args or kwargs.keys() != self.parameters:
            self.decorator.__get__(aggregate, type(aggregate))(*args, **kwargs)
            return
        fields = self.fields
        aggregate.trigger_event(
            self.event_class, **{k: v for k, v in kwargs.items() if k in fields}
        )


def install_event_methods(aggregate_class: type[Any]) -> None:
    """Replace the ``@event`` methods an aggregate class defines (eventsourcing's
    ``CommandMethodDecorator`` descriptors, registered in its private
    ``decorated_func_callers``) by :class:`_EventMethod` ones, which trigger the same event
    class with the same fields without the library's per-call argument handling. Run
    after the library has processed the class (``__init_subclass__``); ``__init__``,
    properties and anything the library did not register are left as they are."""
    from eventsourcing.domain import CommandMethodDecorator, decorated_func_callers

    for name, value in list(vars(aggregate_class).items()):
        if not isinstance(value, CommandMethodDecorator) or value.decorated_property:
            continue
        if value.decorated_func.__name__ in ("__init__", "_"):
            continue
        event_class = decorated_func_callers.get(value)
        if event_class is not None:
            setattr(aggregate_class, name, _EventMethod(value, event_class))


#: Statements an SQLite connection of the store keeps prepared (Python's own default).
SQLITE_CACHED_STATEMENTS = 128


def cache_sqlite_statements(datastore: Any, size: int = SQLITE_CACHED_STATEMENTS) -> bool:
    """Make the SQLite connections ``datastore`` opens from now on keep ``size`` prepared
    statements; False (nothing done) for a datastore without an SQLite connection pool.

    eventsourcing's ``SQLiteConnectionPool._create_connection`` opens each connection with
    ``cached_statements=True``, which Python's sqlite3 takes as a cache of ONE statement:
    every statement of a write (``BEGIN``, the events' ``INSERT``, the chain's, the key
    store's, ``COMMIT``) and of a read was compiled again each time. The library offers no
    setting for it, so the pool's connection factory is replaced on the instance by the
    same body (9.5.6) with a real cache; connections already open keep theirs.
    """
    from eventsourcing.persistence import InterfaceError
    from eventsourcing.sqlite import (
        SQLITE3_DEFAULT_LOCK_TIMEOUT,
        SQLiteConnection,
        SQLiteConnectionPool,
    )

    pool = getattr(datastore, "pool", None)
    if not isinstance(pool, SQLiteConnectionPool):
        return False

    def _create_connection() -> SQLiteConnection:
        try:
            connection = sqlite3.connect(
                database=pool.db_name,
                uri=True,
                check_same_thread=False,
                isolation_level=None,  # auto-commit mode, as the library's
                cached_statements=size,
                timeout=pool.lock_timeout or SQLITE3_DEFAULT_LOCK_TIMEOUT,
            )
        except (sqlite3.Error, TypeError) as e:
            raise InterfaceError(e) from e
        if not pool.is_sqlite_memory_mode and not pool.is_journal_mode_wal:
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode;")
            if cursor.fetchone()[0].lower() != "wal":
                cursor.execute("PRAGMA journal_mode=WAL;")
                pool.journal_mode_was_changed_to_wal = True
            pool.is_journal_mode_wal = True
        connection.row_factory = sqlite3.Row
        return SQLiteConnection(sqlite_conn=connection, max_age=pool.max_age)

    pool._create_connection = _create_connection  # type: ignore[method-assign]
    return True


# ----- the standard library ----------------------------------------------------------
class _RandomBytes:
    """Bytes from ``os.urandom``, read 4 KiB at a time and handed out 16 at a time; thread
    safe, and emptied in a forked child (which must not repeat its parent's ids)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data = b""
        self._at = 0

    def reset(self) -> None:
        self._lock = threading.Lock()
        self._data, self._at = b"", 0

    def next_int(self) -> int:
        with self._lock:
            at = self._at
            if at >= len(self._data):
                self._data, at = os.urandom(4096), 0
            self._at = at + 16
            return int.from_bytes(self._data[at : at + 16])


_RANDOM = _RandomBytes()
os.register_at_fork(after_in_child=_RANDOM.reset)
#: The version (4) and variant (RFC 4122) bits of a random UUID, and the mask clearing them.
_UUID4_BITS = (4 << 76) | (0x8000 << 48)
_UUID4_MASK = ~((0xF000 << 64) | (0xC000 << 48))


def random_uuid() -> UUID:
    """A random UUID (version 4), as ``uuid.uuid4()`` makes: 122 bits from ``os.urandom``.

    About twice as fast, for the ids made with every event (``event_id``) and many
    entities: the random bytes are read from the OS in 4 KiB blocks, not 16 bytes per
    call, and the UUID is made as ``UUID.__init__`` itself finishes (its ``int`` and
    ``is_safe`` slots set with ``object.__setattr__``; CPython 3.8 to 3.13), without the
    argument checks of its five input forms.
    """
    value = _RANDOM.next_int() & _UUID4_MASK | _UUID4_BITS
    made = object.__new__(UUID)
    object.__setattr__(made, "int", value)
    object.__setattr__(made, "is_safe", SafeUUID.unknown)
    return made


# ----- kafka-python -------------------------------------------------------------------
def force_close_sender(producer: KafkaProducer) -> bool:
    """Stop a producer's sender thread at once, failing every batch it still holds.

    kafka-python's ``close(timeout=0)`` flushes first, so a producer that must not send
    anything more (the relay after a failed checkpoint) has to force-close its private
    ``_sender`` thread, as ``close`` itself does when its timeout runs out. False if the
    producer has no sender (already closed).
    """
    sender = getattr(producer, "_sender", None)
    if sender is None:
        return False
    sender.force_close()
    return True


# ----- SQLAlchemy ---------------------------------------------------------------------
def bind_names_in_order(compiled: SQLCompiler) -> Sequence[str] | None:
    """The names of a compiled statement's parameters in the order its SQL takes them, for
    a positional paramstyle (``?``, ``$1``); ``None`` for a named one.

    SQLAlchemy keeps that order in ``SQLCompiler.positiontup``, which it uses to build the
    DBAPI parameters itself; :mod:`projections.rows` builds them directly, much faster.
    """
    order: Sequence[str] | None = compiled.positiontup
    return order
