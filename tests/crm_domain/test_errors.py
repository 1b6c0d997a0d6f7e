"""One error tree: every error is rejected or infrastructure, documented, and picklable."""

from __future__ import annotations

import inspect
import pickle
import re
from uuid import uuid4

import pytest
from pydantic import BaseModel, Field, ValidationError

from crm_domain import errors
from crm_domain.errors import (
    CRMError,
    InfrastructureError,
    InvalidCommandError,
    RejectedError,
    UnknownValueError,
    invalid,
    problems,
)
from crm_domain.values import Channel

ALL_ERRORS = [
    cls
    for _, cls in inspect.getmembers(errors, inspect.isclass)
    if issubclass(cls, CRMError) and cls.__module__ == errors.__name__
]


def test_every_error_is_either_rejected_or_infrastructure_not_both() -> None:
    for cls in ALL_ERRORS:
        if cls in (CRMError, RejectedError, InfrastructureError):
            continue
        assert issubclass(cls, RejectedError) != issubclass(cls, InfrastructureError), cls


def test_the_module_docstring_draws_every_error() -> None:
    tree = errors.__doc__ or ""
    drawn = set(re.findall(r"\b([A-Z][A-Za-z]+Error)\b", tree))
    assert {cls.__name__ for cls in ALL_ERRORS} <= drawn


def test_no_error_carries_an_exit_code() -> None:
    assert not [cls for cls in ALL_ERRORS if hasattr(cls, "exit_code")]


def _sample(cls: type[CRMError]) -> CRMError:
    """An instance built from its constructor's parameters (ids, names, positions)."""
    values = {
        "aggregate_id": uuid4(),
        "opportunity_id": uuid4(),
        "quote_id": uuid4(),
        "owner_id": uuid4(),
        "originator_id": uuid4(),
        "position": 7,
        "seconds": 1.5,
        "topics": ["a", "b"],
        "known": ["x"],
        "cause": ValueError("boom"),
        "errors": [{"loc": ("name",), "msg": "bad"}],
    }
    params = inspect.signature(cls.__init__).parameters
    kwargs = {}
    for name, param in params.items():
        if name == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        kwargs[name] = values.get(name, f"{name}-value")
    if list(kwargs) == ["args"] or not kwargs:
        return cls("something went wrong")
    return cls(**kwargs)


@pytest.mark.parametrize("cls", ALL_ERRORS, ids=lambda c: c.__name__)
def test_every_error_survives_pickling_with_its_message(cls: type[CRMError]) -> None:
    """Rebuild workers report errors across processes: they must come back whole."""
    error = _sample(cls)
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is cls
    assert str(again) == str(error)


class _Registration(BaseModel):
    name: str = Field(min_length=1)
    age: int


class _Contact(BaseModel):
    channel: Channel


def test_invalid_says_unknown_value_when_only_a_choice_is_wrong() -> None:
    with pytest.raises(ValidationError) as info:
        _Contact.model_validate({"channel": "pigeon"})
    error = invalid(info.value, what="log_contact")
    assert isinstance(error, UnknownValueError)
    assert "channel" in str(error)


def test_invalid_names_the_command_and_each_field() -> None:
    with pytest.raises(ValidationError) as info:
        _Registration.model_validate({"name": "", "age": "old"})
    error = invalid(info.value, what="register_customer")
    assert isinstance(error, InvalidCommandError)
    assert str(error).startswith("invalid register_customer: ")
    assert "name: String should have at least 1 character" in str(error)
    assert "age: " in str(error)
    assert [e["loc"] for e in error.errors] == [("name",), ("age",)]
    assert problems(info.value, limit=1).count(";") == 0
