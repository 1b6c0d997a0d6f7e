"""What every command declares, so one entry point (:meth:`CRM.handle`) can run them all.

A command is a frozen, validated value (pydantic) naming one change to one customer or
account. Beside its fields it declares, as class variables:

``command_name``
    The CRM name of the command (``"log_contact"``). Stored in the ``CommandProcessed``
    records of idempotent commands, so it never changes once released.
``aggregate``
    The aggregate it changes (:class:`~crm_domain.customer.Customer` or
    :class:`~crm_domain.account.Account`), found by the field named by ``target``;
    or, with ``creates = True``, the one it creates.
``concurrency``
    What happens when another writer changed the same aggregate meanwhile:
    :data:`EXCLUSIVE` (refuse with :class:`~crm_domain.errors.ConcurrencyConflictError`),
    :data:`COMMUTES` (decide again on fresh state) or :func:`conflicts_on`
    (decide again unless the other write touched the same entity, e.g. the same ticket).

Its handler, :meth:`Command.decide` (or :meth:`Command.create`), sits in the same class:
it calls the aggregate method that holds the rule, so a reader finds command, handler and
rule in one step. The idempotency key is the ``command_id`` of the command context (or the
command's own ``command_id`` field, for callers that send commands as messages).

Messages become commands generically: ``command_named("log_contact").model_validate(
payload)``; bad input raises :class:`~crm_domain.errors.InvalidCommandError` naming the
command and each bad field.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, ValidationError

from crm_domain.account import Account
from crm_domain.customer import Customer
from crm_domain.errors import (
    ConcurrencyConflictError,
    CRMError,
    InvalidCommandError,
    UnknownValueError,
    invalid,
)
from crm_domain.eventmodel import Aggregate

if TYPE_CHECKING:
    from crm_domain.application import CRM

R = TypeVar("R")


@dataclass(frozen=True)
class Concurrency:
    """How a command meets a concurrent write to its aggregate.

    ``commutes``: decide again on the fresh state (the rules are checked again).
    ``conflicts_on``: unless a concurrent event carries the same value of this field
    (e.g. the same ``ticket_id``): then it is a real conflict.
    """

    commutes: bool
    conflicts_on: str | None = None

    def __str__(self) -> str:
        if not self.commutes:
            return "exclusive"
        return f"conflicts on {self.conflicts_on}" if self.conflicts_on else "commutes"


#: Any concurrent write to the aggregate makes the command fail (decisions on the whole).
EXCLUSIVE = Concurrency(commutes=False)
#: The command is decided again on fresh state after a concurrent write.
COMMUTES = Concurrency(commutes=True)


def conflicts_on(field: str) -> Concurrency:
    """Commutes, except with a concurrent change to the same entity (``field``'s value)."""
    return Concurrency(commutes=True, conflicts_on=field)


_REGISTRY: dict[str, type[Command[Any]]] = {}


class Command(BaseModel, Generic[R]):
    """One change to one customer or account, as a frozen, validated value.

    ``R`` is what the command returns (a new id, a derived class, or ``None``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    command_name: ClassVar[str] = ""
    aggregate: ClassVar[type[Aggregate]]
    #: The field holding the id of the aggregate the command changes.
    target: ClassVar[str] = ""
    #: True if the command creates its aggregate instead of changing one.
    creates: ClassVar[bool] = False
    concurrency: ClassVar[Concurrency] = EXCLUSIVE

    #: Idempotency key sent with the command (else the context's ``command_id``).
    command_id: str | None = None

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise invalid(exc, what=type(self).command_name or None) from exc

    @classmethod
    def model_validate(cls, obj: Any, *, strict: bool | None = None, **kwargs: Any) -> Any:
        """The command from a message's payload (a mapping of its fields): ``cls(**obj)``.

        Bad input raises :class:`InvalidCommandError` naming the command and each field.
        """
        if isinstance(obj, cls):
            return obj
        if not isinstance(obj, Mapping):
            raise InvalidCommandError(
                f"invalid {cls.command_name}: expected an object of fields, "
                f"got {type(obj).__name__}"
            )
        return cls(**{str(key): value for key, value in obj.items()})

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        name = cls.__dict__.get("command_name")
        if not name:
            return
        if name in _REGISTRY and _REGISTRY[name].__qualname__ != cls.__qualname__:
            raise TypeError(f"two commands are named {name!r}")
        _REGISTRY[name] = cls

    # ----- what the handling machinery reads ----------------------------------------
    def aggregate_id(self) -> UUID:
        """The id of the customer or account this command changes."""
        value: UUID = getattr(self, self.target)
        return value

    def conflict_value(self) -> Any:
        """The entity id a concurrent write must not have touched (see ``concurrency``)."""
        field = self.concurrency.conflicts_on
        return None if field is None else getattr(self, field)

    def request_hash(self) -> str:
        """A digest of the request (name and fields, not the idempotency key): a command id
        sent again with another request is refused instead of answered with the first."""
        body = self.model_dump_json(exclude={"command_id"})
        return hashlib.sha256(f"{self.command_name}:{body}".encode()).hexdigest()

    # ----- the handler ----------------------------------------------------------------
    def check(self, crm: CRM) -> None:
        """Checks against other aggregates, before the command runs (default: none)."""

    def decide(self, aggregate: Any, crm: CRM) -> R:
        """Apply the command to its loaded aggregate; the aggregate's method holds the rule."""
        raise NotImplementedError(f"{self.command_name} does not change an aggregate")

    def create(self, crm: CRM) -> Aggregate:
        """Create the aggregate (commands with ``creates = True``)."""
        raise NotImplementedError(f"{self.command_name} does not create an aggregate")

    def also_save(self, created: Aggregate) -> list[Aggregate]:
        """Aggregates saved in the same transaction as the created one (e.g. a code claim)."""
        return []

    def on_conflict(self, error: ConcurrencyConflictError) -> CRMError:
        """The error to report when a concurrent write defeated the command."""
        return error

    def result_of_creation(self, created: Aggregate) -> R:
        """What a creating command returns: the new aggregate's id."""
        result: R = created.id  # type: ignore[assignment]
        return result


class CustomerCommand(Command[R], Generic[R]):
    """A command that changes one customer (``customer_id``)."""

    aggregate: ClassVar[type[Aggregate]] = Customer
    target: ClassVar[str] = "customer_id"

    customer_id: UUID


class AccountCommand(Command[R], Generic[R]):
    """A command that changes one account (``account_id``)."""

    aggregate: ClassVar[type[Aggregate]] = Account
    target: ClassVar[str] = "account_id"

    account_id: UUID


def command_named(name: str) -> type[Command[Any]]:
    """The command class with that CRM name, e.g. for a message whose type names it::

    command = command_named(message["type"]).model_validate(message["data"])
    crm.handle(command)
    """
    import crm_domain.commands  # noqa: F401  (registers every command)

    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownValueError(
            f"unknown command {name!r}; known: {', '.join(sorted(_REGISTRY))}"
        ) from None


def all_commands() -> list[type[Command[Any]]]:
    """Every command class, by name."""
    import crm_domain.commands  # noqa: F401

    return [_REGISTRY[name] for name in sorted(_REGISTRY)]
