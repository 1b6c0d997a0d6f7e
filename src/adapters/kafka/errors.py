"""Typed errors of the Kafka adapters: what went wrong, in words an operator can act on.

Every error is a :class:`~crm_domain.errors.CRMError`, and carries the exit code the
``crm relay kafka`` / ``crm consume kafka`` commands return for it (the ``crm`` script's
scheme: 1 a CRM error, 2 configuration/usage, 3 an unreachable service), so a supervisor
can tell "fix the configuration" from "the broker is down, retry later".
"""

from __future__ import annotations

from crm_domain.errors import CRMError


class KafkaAdapterError(CRMError):
    """Base class of the Kafka adapter errors."""

    #: Process exit code of the CLI when this error stops it.
    exit_code: int = 1


class KafkaConfigError(KafkaAdapterError, ValueError):
    """A setting, routing table or mapping is invalid (fix the configuration)."""

    exit_code = 2


class BrokerUnavailableError(KafkaAdapterError):
    """The broker could not be reached, or did not acknowledge, within the allowed time."""

    exit_code = 3

    def __init__(self, bootstrap: str, seconds: float, detail: str = "") -> None:
        message = f"Kafka broker {bootstrap} unavailable for more than {seconds:g}s"
        super().__init__(f"{message}: {detail}" if detail else message)
        self.bootstrap = bootstrap
        self.seconds = seconds


class MissingTopicError(KafkaAdapterError):
    """A topic the adapter needs does not exist, and creating topics is not allowed."""

    exit_code = 2

    def __init__(self, topics: list[str], bootstrap: str) -> None:
        names = ", ".join(sorted(topics))
        super().__init__(
            f"missing Kafka topic(s) {names} on {bootstrap}; create them, "
            "or allow the adapter to create topics (--create-topics)"
        )
        self.topics = sorted(topics)


class PublishError(KafkaAdapterError):
    """The broker refused a message for a reason retrying cannot fix (too large, denied)."""

    exit_code = 1

    def __init__(self, topic: str, event_type: str, event_id: str, cause: BaseException) -> None:
        super().__init__(
            f"broker refused {event_type} {event_id} for topic {topic}: "
            f"{type(cause).__name__}: {cause}"
        )
        self.topic = topic
        self.event_type = event_type
        self.event_id = event_id


class InboundMessageError(KafkaAdapterError, ValueError):
    """An inbound message is malformed (not JSON, unknown type, invalid fields)."""

    def __init__(self, message: str, errors: list[dict[str, object]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []
