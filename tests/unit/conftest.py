"""Fixtures shared by the unit tests that need an MLflow store."""

from __future__ import annotations

import os
import shutil

import mlflow
import pytest

from icpkit.registry.tracking import default_tracking_uri


@pytest.fixture(scope="module")
def template_db(tmp_path_factory):
    """An initialised, empty MLflow SQLite store (creating one runs migrations: ~2 s)."""
    root = tmp_path_factory.mktemp("mlflow-template")
    uri = default_tracking_uri(root)
    mlflow.MlflowClient(tracking_uri=uri).search_experiments()
    return root / "mlruns" / "mlflow.db"


@pytest.fixture
def tracking_uri(tmp_path, template_db, monkeypatch):
    """A private SQLite tracking store per test, with no MLFLOW_* variables leaking in."""
    for key in list(os.environ):
        if key.startswith("MLFLOW_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    monkeypatch.chdir(tmp_path)  # MLflow's own default store would be ./mlflow.db: must stay unused
    (tmp_path / "mlruns").mkdir()
    shutil.copy(template_db, tmp_path / "mlruns" / "mlflow.db")
    yield default_tracking_uri(tmp_path)
    assert not (tmp_path / "mlflow.db").exists(), "something used MLflow's global default store"
