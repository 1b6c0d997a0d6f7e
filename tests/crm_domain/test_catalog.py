"""The event catalog in docs/ is generated from the code and must match it."""

from __future__ import annotations

from pathlib import Path

from crm_domain.account import Account
from crm_domain.customer import Customer
from crm_domain.infrastructure.catalog import DEFAULT_PATH, event_classes, render


def test_docs_events_md_matches_the_code() -> None:
    assert Path(__file__).resolve().parents[2] / "docs" / "events.md" == DEFAULT_PATH
    assert DEFAULT_PATH.read_text(encoding="utf-8") == render(), (
        "docs/events.md is stale: run `python -m crm_domain.infrastructure.catalog --write`"
    )


def test_every_event_is_documented_with_a_docstring_and_topic() -> None:
    text = render()
    for aggregate in (Customer, Account):
        classes = list(event_classes(aggregate))
        assert len(classes) > 10
        for cls in classes:
            assert f"### {aggregate.__name__}.{cls.__name__}\n\n" in text
            section = text.split(f"### {aggregate.__name__}.{cls.__name__}\n\n", 1)[1]
            first_line = section.split("\n", 1)[0]
            assert first_line, f"{cls} has no docstring"
            assert not first_line.startswith("Topic"), f"{cls} has no docstring"
