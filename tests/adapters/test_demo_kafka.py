"""``crm demo --kafka HOST:PORT`` publishes the demo's events to the ERP and marketing topics."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from kafkatools import read_topic

from adapters.kafka.routing import DEFAULT_ERP_TOPIC, DEFAULT_MARKETING_TOPIC

pytestmark = pytest.mark.kafka


def test_demo_publishes_to_kafka(tmp_path: Path, kafka_bootstrap: str) -> None:
    before = (
        {
            t: len(read_topic(kafka_bootstrap, t, timeout=5.0))
            for t in (DEFAULT_ERP_TOPIC, DEFAULT_MARKETING_TOPIC)
        }
        if _topics_exist(kafka_bootstrap)
        else {DEFAULT_ERP_TOPIC: 0, DEFAULT_MARKETING_TOPIC: 0}
    )
    env = {**os.environ, "COLUMNS": "160"}
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("crm")),
            "demo",
            "--customers",
            "8",
            "--kafka",
            kafka_bootstrap,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    match = re.search(r"kafka: ([\d,]+) messages", result.stdout)
    assert match, result.stdout
    published = int(match.group(1).replace(",", ""))
    erp = read_topic(kafka_bootstrap, DEFAULT_ERP_TOPIC)[before[DEFAULT_ERP_TOPIC] :]
    marketing = read_topic(kafka_bootstrap, DEFAULT_MARKETING_TOPIC)[
        before[DEFAULT_MARKETING_TOPIC] :
    ]
    assert len(erp) + len(marketing) == published
    assert erp
    assert marketing
    types = {r.headers["ce_type"].decode() for r in erp}
    assert any("order_confirmation_requested" in t for t in types), types
    for record in erp[:50]:
        json.loads(record.value)
        assert record.key


def _topics_exist(bootstrap: str) -> bool:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    try:
        return DEFAULT_ERP_TOPIC in consumer.topics()
    finally:
        consumer.close()
