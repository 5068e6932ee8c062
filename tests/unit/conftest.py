"""Fixtures shared by the unit tests that need an MLflow store or a small saved model."""

from __future__ import annotations

import os
import shutil

import lightgbm as lgb
import mlflow
import numpy as np
import pandas as pd
import pytest

from icpkit.models.preprocessing import Preprocessor
from icpkit.models.propensity import PropensityModel
from icpkit.registry.store import default_tracking_uri


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


# --- a small propensity problem with known answers ------------------------------------------
def propensity_frame(n: int = 300, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Accounts with a planted fintech / size effect, missing numbers and missing categories."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {
            "employees": rng.lognormal(4, 1, n),
            "industry": pd.Series(rng.choice(["fintech", "retail", "media"], n), dtype="str"),
            "seats": rng.integers(1, 50, n).astype("float64"),
        }
    )
    X.loc[::13, "employees"] = np.nan
    X.loc[::17, "industry"] = None
    logit = -1 + 1.5 * (X["industry"] == "fintech") + 0.4 * np.log(X["employees"].fillna(50)) - 1.2
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int).to_numpy()
    return X, y


def lightgbm_model(X: pd.DataFrame, y: np.ndarray, outcome: str = "win") -> PropensityModel:
    enc = Preprocessor().fit(X)
    booster = lgb.train(
        {"objective": "binary", "verbosity": -1, "deterministic": True, "seed": 1, "num_threads": 1},
        lgb.Dataset(enc.transform(X), y, categorical_feature=enc.categorical_columns_),
        num_boost_round=8,
    )
    return PropensityModel(outcome, "lightgbm", enc, booster=booster, calibration=(0.9, 0.05))


def logistic_model(X: pd.DataFrame, coef_sign: float = 1.0, outcome: str = "win") -> PropensityModel:
    enc = Preprocessor().fit(X)
    coef = coef_sign * np.linspace(-0.8, 0.8, len(enc.design_sources()))
    return PropensityModel(outcome, "logistic", enc, coef=coef.tolist(), intercept=-0.3)


@pytest.fixture(scope="module")
def data():
    """Training rows and a holdout with edge cases (missing numbers, missing / unseen categories)."""
    X, y = propensity_frame(300, seed=0)
    Xh, yh = propensity_frame(120, seed=1)
    Xh.loc[0, "employees"] = np.nan
    Xh.loc[1, "industry"] = None
    Xh.loc[2, "industry"] = "never-seen"
    Xh.loc[3, ["employees", "seats"]] = np.nan
    return X, y, Xh, yh


@pytest.fixture(scope="module")
def models(data, tmp_path_factory):
    """``{kind: (model, saved folder)}`` for a LightGBM, a logistic and a deliberately bad model."""
    X, y, _, _ = data
    root = tmp_path_factory.mktemp("models")
    built = {"lightgbm": lightgbm_model(X, y), "logistic": logistic_model(X), "bad": logistic_model(X, -1.0)}
    return {kind: (model, model.save(root / kind)) for kind, model in built.items()}
