"""Marketing consent per purpose and channel, folded from the consent events in one place.

Three readers need "which purposes, on which channels, has this customer agreed to": the
``Customer`` aggregate (outbound marketing contact needs it), the customer 360 read model,
and the Kafka relay's ledger (personal data reaches marketing only with it). They all fold
``ConsentGranted`` / ``ConsentWithdrawn`` with :func:`apply` (the aggregate, whose event
methods receive the event's fields, with :func:`granted` and :func:`withdrawn`), so they
cannot disagree.

:data:`Consents` maps a purpose to the channels consented on, sorted; a purpose whose last
channel was withdrawn is absent. Folding never mutates its input.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from crm_domain.values import Channel

#: Purpose -> channels consented on (sorted, no duplicates); purposes without one are absent.
Consents = dict[str, list[Channel]]


def granted(
    consents: Mapping[str, Iterable[Channel | str]], purpose: str, channel: Channel | str
) -> Consents:
    """``consents`` after consent for ``purpose`` on ``channel`` was granted."""
    state = _copy(consents)
    state[purpose] = sorted({*state.get(purpose, ()), Channel(channel)})
    return state


def withdrawn(
    consents: Mapping[str, Iterable[Channel | str]], purpose: str, channel: Channel | str
) -> Consents:
    """``consents`` after consent for ``purpose`` on ``channel`` was withdrawn."""
    state = _copy(consents)
    remaining = [c for c in state.get(purpose, ()) if c is not Channel(channel)]
    if remaining:
        state[purpose] = remaining
    else:
        state.pop(purpose, None)
    return state


def is_consent_change(event: object) -> bool:
    """True for the events :func:`apply` folds (a grant or a withdrawal)."""
    granted_cls, withdrawn_cls = _consent_events()
    return isinstance(event, granted_cls | withdrawn_cls)


def apply(consents: Mapping[str, Iterable[Channel | str]], event: Any) -> Consents:
    """``consents`` after one event; any other event than a consent change leaves them as
    they were. ``event`` may be a decoded event or a read model's lazy one."""
    granted_cls, withdrawn_cls = _consent_events()
    if isinstance(event, granted_cls):
        return granted(consents, event.purpose, event.channel)
    if isinstance(event, withdrawn_cls):
        return withdrawn(consents, event.purpose, event.channel)
    return _copy(consents)


def allows(
    consents: Mapping[str, Iterable[Channel | str]], purpose: str, channel: Channel | str | None
) -> bool:
    """True if ``consents`` cover ``purpose`` on ``channel`` (``None``: on any channel)."""
    channels = [Channel(c) for c in consents.get(purpose, ())]
    return bool(channels) if channel is None else Channel(channel) in channels


def _copy(consents: Mapping[str, Iterable[Channel | str]]) -> Consents:
    return {purpose: [Channel(c) for c in channels] for purpose, channels in consents.items()}


def _consent_events() -> tuple[type[Any], type[Any]]:
    # The events are declared on the aggregate, which folds with this module: import late.
    from crm_domain.customer import Customer

    return Customer.ConsentGranted, Customer.ConsentWithdrawn
