"""The API reference (``make docs``, built by ``docs/api.py``) builds without a warning,
and every public module, class, function and method of ``crm_domain``, ``projections`` and
``adapters`` has a docstring: an undocumented public command fails the build."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load_api() -> ModuleType:
    spec = importlib.util.spec_from_file_location("crm_api_docs", ROOT / "docs" / "api.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


api = _load_api()


def test_every_public_name_has_a_docstring() -> None:
    gaps = api.undocumented()
    assert not gaps, "public names without a docstring (say what each is for):\n" + "\n".join(gaps)


def test_the_checker_finds_an_undocumented_function(monkeypatch: pytest.MonkeyPatch) -> None:
    from crm_domain import consent

    def undocumented_helper() -> None:
        pass

    undocumented_helper.__module__ = consent.__name__
    monkeypatch.setattr(consent, "undocumented_helper", undocumented_helper, raising=False)
    assert "crm_domain.consent.undocumented_helper" in api.undocumented()


def test_the_checker_finds_an_undocumented_method_and_dataclass(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dataclasses import dataclass

    from crm_domain import consent

    @dataclass
    class Undocumented:
        size: int

        def grow(self) -> None:
            self.size += 1

    Undocumented.__module__ = consent.__name__
    monkeypatch.setattr(consent, "Undocumented", Undocumented, raising=False)
    gaps = api.undocumented()
    assert "crm_domain.consent.Undocumented" in gaps  # the generated signature is no docstring
    assert "crm_domain.consent.Undocumented.grow" in gaps


def test_api_reference_builds_without_warnings(tmp_path: Path) -> None:
    pytest.importorskip("pdoc", reason="pdoc is in the dev extra: pip install -e '.[dev]'")
    assert api.build(tmp_path) == []
    page = tmp_path / "crm_domain" / "consent.html"
    assert "Folding never mutates its input" in page.read_text()
    assert (tmp_path / "adapters" / "kafka" / "consent.html").is_file()
    assert (tmp_path / "projections" / "customer360.html").is_file()
