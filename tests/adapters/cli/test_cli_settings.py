"""One settings object behind every command: the environment, crm.toml, Kafka security."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from adapters.cli import main
from adapters.cli.kafka import kafka_settings
from adapters.kafka.settings import RelaySettings
from crm_domain.application import CRM


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_demo_uses_the_store_in_the_environment(
    tmp_path: Path,
    clean_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store = f"sqlite:///{tmp_path / 'mine.sqlite'}"
    monkeypatch.setenv("CRM_STORE_URL", store)
    code, out, err = run(["demo", "--customers", "3"], capsys)
    assert code == 0, err
    assert f"database: {store}" in out
    assert not (clean_env / "crm-demo.sqlite").exists()
    crm = CRM(store)
    try:
        assert (crm.app.recorder.max_notification_id() or 0) > 0
    finally:
        crm.close()


def test_demo_on_a_reused_store_labels_this_run_and_the_whole_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = f"sqlite:///{tmp_path / 'reused.sqlite'}"
    assert run(["demo", "--customers", "3", "--store", store], capsys)[0] == 0
    code, out, _ = run(["demo", "--customers", "3", "--store", store], capsys)
    assert code == 0
    assert "figures of this run" in out
    assert "(with earlier runs)" in out
    assert "whole store, earlier runs included" in out


def test_settings_show_masks_secrets_and_says_where_each_came_from(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CRM_KAFKA__SASL_PASSWORD", "hunter2")
    monkeypatch.setenv("CRM_KAFKA__BOOTSTRAP", "broker:9093")
    (clean_env / "crm.toml").write_text(
        'snapshot_interval = 20\n[calendar]\ntimezone = "Asia/Shanghai"\n'
    )
    code, out, _ = run(["settings", "show", "--store", "memory://", "-f", "json"], capsys)
    assert code == 0
    rows = {r["setting"]: (r["value"], r["from"]) for r in json.loads(out)[0]["rows"]}
    assert "hunter2" not in out
    assert rows["kafka.sasl_password"] == ("**********", "$CRM_KAFKA__SASL_PASSWORD")
    assert rows["kafka.bootstrap"] == ("broker:9093", "$CRM_KAFKA__BOOTSTRAP")
    assert rows["store_url"] == ("memory://", "command line")
    assert rows["snapshot_interval"] == ("20", "crm.toml")
    assert rows["calendar.timezone"] == ("Asia/Shanghai", "crm.toml")
    assert rows["max_event_bytes"][1] == "default"


def test_settings_show_masks_a_store_password(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # the URL on one line (80 columns fold it)
    store = "postgresql://crm:s3cret@db.example:5432/crm"
    code, out, _ = run(["settings", "show", "--store", store], capsys)
    assert code == 0
    assert "s3cret" not in out
    assert "crm:***@db.example" in out


def test_kafka_security_comes_from_options_environment_and_a_password_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRM_KAFKA__SASL_USERNAME", "crm-relay")
    monkeypatch.setenv("CRM_KAFKA__SSL_CHECK_HOSTNAME", "false")
    secret = tmp_path / "kafka.pw"
    secret.write_text("p@ss word\n")
    settings = kafka_settings(
        "memory://",
        bootstrap="b1:9093,b2:9093",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username=None,
        sasl_password_file=secret,
        ssl_cafile=None,
        ssl_certfile=None,
        ssl_keyfile=None,
        client_id="crm-eu",
    )
    config = RelaySettings.from_settings(settings.kafka).producer_config()
    assert config["bootstrap_servers"] == ["b1:9093", "b2:9093"]
    assert config["security_protocol"] == "SASL_SSL"
    assert config["sasl_mechanism"] == "SCRAM-SHA-512"
    assert config["sasl_plain_username"] == "crm-relay"
    assert config["sasl_plain_password"] == "p@ss word"
    assert config["ssl_check_hostname"] is False
    assert config["client_id"] == "crm-eu"
    assert config["acks"] == "all"  # the relay's guarantees are kept
    assert "p@ss" not in repr(settings)


def test_kafka_client_logs_are_quiet_unless_asked_for(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["settings", "show"]) == 0
    assert logging.getLogger("kafka").getEffectiveLevel() == logging.CRITICAL
    assert main(["-v", "settings", "show"]) == 0
    assert logging.getLogger("kafka").getEffectiveLevel() == logging.WARNING
    assert logging.getLogger("adapters").getEffectiveLevel() == logging.INFO
    assert main(["-vv", "settings", "show"]) == 0
    assert logging.getLogger("kafka").getEffectiveLevel() == logging.INFO
    capsys.readouterr()


def test_kafka_choices_are_the_adapters_own() -> None:
    """The CLI lists the choices without importing the Kafka client; they must not drift."""
    from adapters.cli import kafka as cli_kafka
    from adapters.kafka.cloudevents import MessageFormat
    from adapters.kafka.routing import WithoutConsent

    assert [m.value for m in cli_kafka.MessageFormat] == [m.value for m in MessageFormat]
    assert [w.value for w in cli_kafka.WithoutConsent] == [w.value for w in WithoutConsent]


def test_commands_other_than_kafka_start_without_the_kafka_client() -> None:
    import subprocess
    import sys

    script = "import sys, adapters.cli; print('kafka' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.stdout.strip() == "False", result.stderr
