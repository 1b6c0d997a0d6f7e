"""``crm consume kafka`` and ``crm relay kafka`` on typer still stop cleanly on SIGINT."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kafka import KafkaAdminClient
from kafkatools import unique

pytestmark = pytest.mark.kafka

CRM_SCRIPT = Path(sys.executable).with_name("crm")


def _wait_for_topics(bootstrap: str, names: set[str], proc: subprocess.Popen[str]) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            if names <= set(admin.list_topics()):
                return
            time.sleep(0.2)
    finally:
        admin.close()
    raise AssertionError(f"topics {names} never appeared (exit code {proc.poll()})")


@pytest.mark.parametrize("command", ["consume", "relay"])
def test_sigint_stops_the_adapter_with_exit_code_0(
    command: str, kafka_bootstrap: str, sqlite_url: str
) -> None:
    if command == "consume":
        inbound, dead = unique("erp.in"), unique("dlq")
        topics = {inbound, dead}
        extra = ["--topic", inbound, "--dead-letter-topic", dead]
    else:
        erp, mkt = unique("crm.erp"), unique("crm.mkt")
        topics = {erp, mkt}
        extra = ["--erp-topic", erp, "--marketing-topic", mkt]
    proc = subprocess.Popen(
        [
            str(CRM_SCRIPT),
            command,
            "kafka",
            "--store",
            sqlite_url,
            "--bootstrap",
            kafka_bootstrap,
            "--create-topics",
            "--partitions",
            "1",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for_topics(kafka_bootstrap, topics, proc)
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:  # pragma: no cover - only when the test fails
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "stopped" in out
    assert "Traceback" not in err
    assert "WARNING" not in err  # the Kafka client's log lines stay out of normal output
