"""Fixtures of the projections tests (the known history lives in projection_history)."""

from __future__ import annotations

import pytest
from projection_history import Known, known_history, project

from crm_domain.application import CRM
from projections.views import ReadModelView


@pytest.fixture
def crm() -> CRM:
    return CRM("memory://")


@pytest.fixture
def known(crm: CRM) -> Known:
    return known_history(crm)


@pytest.fixture
def view(crm: CRM, known: Known) -> ReadModelView:
    """Every read model, built from the known history."""
    return project(crm)
