"""The unit layer: pure code and files under tmp_path, no servers and no MLflow store."""

import pytest

from tests import conftest as shared


@pytest.fixture(autouse=True)
def _projects_without_an_mlflow_store(monkeypatch):
    """Unit tests never open MLflow, so their projects start without a store: making the empty one
    that projects copy costs seconds in every test process."""
    monkeypatch.setattr(shared, "NEW_STORE_BY_DEFAULT", False)
