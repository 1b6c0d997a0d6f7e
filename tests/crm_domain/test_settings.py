"""One settings object: constructor over environment over TOML file over defaults."""

from __future__ import annotations

from datetime import time
from pathlib import Path

import pytest

from crm_domain import CRM
from crm_domain.errors import ConfigurationError
from crm_domain.settings import DEFAULT_STORE_URL, CRMSettings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No CRM_* variable or ./crm.toml of the developer's machine leaks into these tests."""
    import os

    for name in list(os.environ):
        if name.startswith("CRM_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_defaults_name_an_sqlite_file_in_the_working_directory() -> None:
    settings = CRMSettings.load()
    assert settings.store_url == DEFAULT_STORE_URL
    assert settings.store.backend == "sqlite"
    assert settings.calendar.timezone == "UTC"
    assert settings.kafka.bootstrap is None


def test_environment_overrides_defaults_and_nests_with_double_underscore(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CRM_STORE_URL", "memory://")
    monkeypatch.setenv("CRM_CALENDAR__TIMEZONE", "Asia/Shanghai")
    monkeypatch.setenv("CRM_KAFKA__BOOTSTRAP", "broker:9092")
    monkeypatch.setenv("CRM_KAFKA__SASL_PASSWORD", "s3cret")
    settings = CRMSettings.load()
    assert settings.store.backend == "memory"
    assert settings.calendar.timezone == "Asia/Shanghai"
    assert settings.kafka.bootstrap == "broker:9092"
    assert "s3cret" not in repr(settings)  # secrets never echoed
    assert settings.kafka.client_options()["sasl_plain_password"] == "s3cret"


def test_toml_file_is_below_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "office.toml"
    config.write_text(
        'store_url = "memory://"\nsnapshot_interval = 7\n'
        '[calendar]\ntimezone = "Asia/Shanghai"\nopens = "08:30:00"\n'
        '[kafka]\nbootstrap = "from-file:9092"\nsecurity_protocol = "SASL_SSL"\n'
    )
    monkeypatch.setenv("CRM_CONFIG", str(config))
    monkeypatch.setenv("CRM_KAFKA__BOOTSTRAP", "from-env:9092")
    settings = CRMSettings.load()
    assert settings.snapshot_interval == 7
    assert settings.calendar.opens == time(8, 30)
    assert settings.kafka.security_protocol == "SASL_SSL"
    assert settings.kafka.bootstrap == "from-env:9092"


def test_crm_toml_in_the_working_directory_is_read(tmp_path: Path) -> None:
    (tmp_path / "crm.toml").write_text('store_url = "memory://"\n')
    assert CRMSettings.load().store.backend == "memory"


def test_arguments_override_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_STORE_URL", "sqlite:///from-env.sqlite")
    assert CRMSettings.load(store_url="memory://", snapshot_interval=None).store_url == "memory://"
    crm = CRM("memory://")
    assert crm.settings.store_url == "memory://"
    assert crm.store.backend == "memory"


def test_crm_takes_its_office_calendar_from_the_settings() -> None:
    settings = CRMSettings(store_url="memory://", calendar={"timezone": "Asia/Shanghai"})
    crm = CRM(settings=settings)
    assert crm.sla.calendar.timezone == "Asia/Shanghai"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("CRM_STORE_URL", "oracle://db", "CRM_STORE_URL"),
        ("CRM_SNAPSHOT_INTERVAL", "-1", "CRM_SNAPSHOT_INTERVAL"),
        ("CRM_CALENDAR__TIMEZONE", "Mars/Olympus", "unknown time zone"),
        ("CRM_KAFKA__SECURITY_PROTOCOL", "TLS9", "CRM_KAFKA__SECURITY_PROTOCOL"),
        ("CRM_CALENDAR__TZ", "Asia/Shanghai", "CRM_CALENDAR__TZ"),
    ],
)
def test_a_bad_setting_is_a_configuration_error_naming_it(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError, match=message):
        CRMSettings.load()
    with pytest.raises(ConfigurationError):
        CRM()


def test_a_missing_or_malformed_settings_file_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CRM_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigurationError, match="not a file"):
        CRMSettings.load()
    broken = tmp_path / "broken.toml"
    broken.write_text("store_url = \n")
    monkeypatch.setenv("CRM_CONFIG", str(broken))
    with pytest.raises(ConfigurationError, match=r"broken\.toml"):
        CRMSettings.load()


def test_an_unknown_setting_in_the_file_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "typo.toml"
    config.write_text('stor_url = "memory://"\n')
    monkeypatch.setenv("CRM_CONFIG", str(config))
    with pytest.raises(ConfigurationError, match="stor_url"):
        CRMSettings.load()
