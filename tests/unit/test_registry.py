"""Pickle-free pyfunc models and the champion gate, against real MLflow SQLite stores."""

import os
from pathlib import Path

import lightgbm as lgb
import mlflow
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from icpkit.models.preprocessing import Preprocessor
from icpkit.models.propensity import PropensityModel
from icpkit.registry import (
    Tracker,
    champion_score_on,
    champion_version,
    gate_decision,
    load_champion,
    loaders,
    log_model,
    logged_model_dir,
    register_loader,
    register_with_gate,
    to_model_input,
    use_tracking_uri,
)

# Fixtures template_db and tracking_uri live in tests/unit/conftest.py.


def _frame(n=300, seed=0):
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


@pytest.fixture(scope="module")
def data():
    X, y = _frame(300, seed=0)
    Xh, yh = _frame(120, seed=1)
    # Holdout edge cases: missing numbers, missing / unseen categories.
    Xh.loc[0, "employees"] = np.nan
    Xh.loc[1, "industry"] = None
    Xh.loc[2, "industry"] = "never-seen"
    Xh.loc[3, ["employees", "seats"]] = np.nan
    return X, y, Xh, yh


def _lightgbm(X, y):
    enc = Preprocessor().fit(X)
    booster = lgb.train(
        {"objective": "binary", "verbosity": -1, "deterministic": True, "seed": 1, "num_threads": 1},
        lgb.Dataset(enc.transform(X), y, categorical_feature=enc.categorical_columns_),
        num_boost_round=8,
    )
    return PropensityModel("win", "lightgbm", enc, booster=booster, calibration=(0.9, 0.05))


def _logistic(X, coef_sign=1.0):
    enc = Preprocessor().fit(X)
    coef = coef_sign * np.linspace(-0.8, 0.8, len(enc.design_sources()))
    return PropensityModel("win", "logistic", enc, coef=coef.tolist(), intercept=-0.3)


@pytest.fixture(scope="module")
def models(data, tmp_path_factory):
    X, y, _, _ = data
    root = tmp_path_factory.mktemp("models")
    out = {}
    for name, model in {
        "lightgbm": _lightgbm(X, y),
        "logistic": _logistic(X),
        "bad": _logistic(X, coef_sign=-1.0),
    }.items():
        out[name] = (model, model.save(root / name))
    return out


def _no_pickles(folder: Path):
    return not [p for p in folder.rglob("*") if p.suffix.lower() in {".pkl", ".pickle", ".joblib"}]


# --- tests ----------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["lightgbm", "logistic"])
def test_champion_loads_without_pickles_and_matches_in_memory(tracking_uri, data, models, kind, monkeypatch):
    X, _, Xh, yh = data
    model, model_dir = models[kind]
    tracker = Tracker(tracking_uri, "icpkit-test")
    with tracker.start_training("train", params={}, tags={}), tracker.start_outcome("win"):
        uri = log_model(tracker, model_dir, "win", X)
        run_id = tracker.run_id
    assert uri.startswith("models:/m-")
    assert os.environ.get("MLFLOW_TRACKING_URI") is None  # global URI restored
    folder = logged_model_dir(tracking_uri, uri)
    assert (folder / "MLmodel").is_file() and (folder / "pyfunc_model.py").is_file()
    assert _no_pickles(folder) and _no_pickles(Path(tracking_uri.removeprefix("sqlite:///")).parent)
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    assert client.get_logged_model(uri.removeprefix("models:/")).source_run_id == run_id

    result = register_with_gate(tracking_uri, "icp-win", uri, candidate_score=0.7, champion_score=None)
    assert (result.version, result.alias, result.reason) == ("1", "champion", "no champion yet")

    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    with use_tracking_uri(tracking_uri):
        loaded = mlflow.pyfunc.load_model("models:/icp-win@champion")
        schema = loaded.metadata.get_input_schema()
    assert {c.name: c.type.name for c in schema.inputs} == {
        "employees": "double",
        "industry": "string",
        "seats": "double",
    }

    expected = model.predict_proba(Xh)
    # The frame as icpkit builds it (pandas str dtype with NaN) ...
    out = loaded.predict(Xh)
    assert list(out.columns) == ["win_propensity"]
    np.testing.assert_allclose(out["win_propensity"].to_numpy(), expected, rtol=1e-12)
    # ... and a plain object frame with None; int64 numbers go through to_model_input (MLflow
    # refuses int64 -> double as "not safe").
    with_ints = Xh.assign(seats=Xh["seats"].fillna(0).astype("int64"))
    plain = to_model_input(with_ints)
    assert plain["industry"].dtype == object and plain["seats"].dtype == "float64"
    np.testing.assert_allclose(
        loaded.predict(plain)["win_propensity"].to_numpy(),
        model.predict_proba(plain),
        rtol=1e-12,
    )
    assert plain["industry"].isna().sum() > 0 and np.isnan(Xh["employees"].to_numpy()).any()

    champ = load_champion(tracking_uri, "icp-win")
    np.testing.assert_allclose(champ.predict(Xh)["win_propensity"].to_numpy(), expected, rtol=1e-12)
    score = champion_score_on(tracking_uri, "icp-win", Xh, yh, roc_auc_score)
    assert score == pytest.approx(roc_auc_score(yh, expected), rel=1e-12)


def test_gate_champion_challenger_on_same_holdout(tracking_uri, data, models):
    X, _, Xh, yh = data
    tracker = Tracker(tracking_uri, "icpkit-test")
    uris = {}
    with tracker.start_training("train", params={}, tags={}), tracker.start_outcome("win"):
        for kind in ["logistic", "lightgbm", "bad"]:
            uris[kind] = log_model(tracker, models[kind][1], kind, X)

    def holdout_auc(kind):
        return roc_auc_score(yh, models[kind][0].predict_proba(Xh))

    assert load_champion(tracking_uri, "icp-win") is None
    assert champion_score_on(tracking_uri, "icp-win", Xh, yh, roc_auc_score) is None

    first = register_with_gate(tracking_uri, "icp-win", uris["logistic"], holdout_auc("logistic"), None)
    assert (first.version, first.alias) == ("1", "champion")

    # The better LightGBM model, compared with the champion scored on the same holdout.
    assert holdout_auc("lightgbm") > holdout_auc("logistic") > holdout_auc("bad")
    champ_score = champion_score_on(tracking_uri, "icp-win", Xh, yh, roc_auc_score)
    assert champ_score == pytest.approx(holdout_auc("logistic"), rel=1e-12)
    second = register_with_gate(
        tracking_uri, "icp-win", uris["lightgbm"], holdout_auc("lightgbm"), champ_score
    )
    assert (second.version, second.alias, second.previous_champion_version) == ("2", "champion", "1")
    assert champion_version(tracking_uri, "icp-win") == "2"

    # A deliberately worse model: challenger, the champion alias stays on version 2.
    champ_score = champion_score_on(tracking_uri, "icp-win", Xh, yh, roc_auc_score)
    third = register_with_gate(tracking_uri, "icp-win", uris["bad"], holdout_auc("bad"), champ_score)
    assert (third.version, third.alias) == ("3", "challenger")
    assert champion_version(tracking_uri, "icp-win") == "2"
    assert champion_version(tracking_uri, "icp-win", "challenger") == "3"

    client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    v1, v3 = client.get_model_version("icp-win", "1"), client.get_model_version("icp-win", "3")
    assert v1.aliases == []
    assert float(v3.tags["icpkit.candidate_score"]) == holdout_auc("bad")
    assert float(v3.tags["icpkit.champion_score"]) == champ_score
    assert (
        v3.tags["icpkit.gate"] == "challenger" and v3.tags["icpkit.champion_version_at_registration"] == "2"
    )
    # The SQL registry does not store model_id; the version keeps the models:/<id> source.
    assert v3.source == uris["bad"]


def test_gate_decision_rules():
    assert gate_decision(0.5, None, has_champion=False) == ("champion", "no champion yet")
    assert gate_decision(0.80, 0.80, True)[0] == "champion"  # ties keep the newer model
    assert gate_decision(0.79, 0.80, True)[0] == "challenger"
    assert gate_decision(0.79, 0.80, True, tolerance=0.02)[0] == "champion"
    assert gate_decision(0.10, 0.20, True, higher_is_better=False)[0] == "champion"
    assert gate_decision(0.25, 0.20, True, higher_is_better=False)[0] == "challenger"
    assert gate_decision(float("nan"), None, False)[0] == "challenger"
    assert gate_decision(0.9, None, True)[0] == "challenger"
    assert gate_decision(0.9, None, True, if_champion_unscored="champion")[0] == "champion"


class _ConstantScorer:
    """A stand-in for later formats (segments, composite scorer): JSON in, DataFrame out."""

    def __init__(self, value):
        self.value = value

    def predict(self, frame):
        return pd.DataFrame({"segment": [self.value] * len(frame)}, index=frame.index)

    @classmethod
    def load(cls, directory):
        import json

        return cls(json.loads((Path(directory) / "model.json").read_text())["value"])


def test_other_formats_plug_in_with_one_loader(tracking_uri, data, tmp_path, monkeypatch):
    X, _, Xh, _ = data
    monkeypatch.setattr(loaders, "_LOADERS", dict(loaders._LOADERS))  # undone after the test
    register_loader("test.Constant/1", _ConstantScorer.load)
    folder = tmp_path / "const"
    folder.mkdir()
    (folder / "model.json").write_text('{"format": "test.Constant/1", "value": "saas-midmarket"}')
    tracker = Tracker(tracking_uri, "icpkit-test")
    with tracker.start_training("train", params={}, tags={}) as run_id:
        uri = log_model(run_id, folder, "segments", X, tracking_uri=tracking_uri)  # by run id
    register_with_gate(tracking_uri, "icp-segments", uri, 1.0, None)
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    out = load_champion(tracking_uri, "icp-segments").predict(Xh)
    assert out["segment"].eq("saas-midmarket").all() and len(out) == len(Xh)

    (folder / "model.json").write_text('{"format": "nobody.knows/9"}')
    with pytest.raises(ValueError, match="no loader registered"):
        log_model(run_id, folder, "x", X, tracking_uri=tracking_uri)
