import json

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from icpkit.config import TrainingConfig, TuningConfig
from icpkit.errors import LeakageError
from icpkit.models.fitting import fit_logistic, fit_platt, split_by_time, tune_lightgbm
from icpkit.models.leakage import screen_features, single_feature_auc
from icpkit.models.preprocessing import Preprocessor
from icpkit.models.propensity import PropensityModel


def _frame(n=400, seed=0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {
            "employees": rng.lognormal(4, 1, n),
            "industry": pd.Series(rng.choice(["fintech", "retail", "media"], n), dtype="str"),
            "noise": rng.normal(size=n),
        }
    )
    X.loc[::17, "employees"] = np.nan
    X.loc[::23, "industry"] = None
    logit = -0.5 + 1.5 * (X["industry"] == "fintech") + 0.5 * np.log(X["employees"].fillna(50)) - 2
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int).to_numpy()
    return X, y


@pytest.mark.parametrize("kind", ["lightgbm", "logistic"])
def test_propensity_model_round_trip_gives_identical_probabilities(tmp_path, kind):
    X, y = _frame()
    enc = Preprocessor().fit(X)
    E = enc.transform(X)
    if kind == "lightgbm":
        booster = lgb.train(
            {"objective": "binary", "verbosity": -1, "deterministic": True, "seed": 1, "num_threads": 1},
            lgb.Dataset(E, y, categorical_feature=enc.categorical_columns_),
            num_boost_round=20,
        )
        model = PropensityModel("win", "lightgbm", enc, booster=booster, calibration=(0.9, 0.1))
    else:
        model, _ = fit_logistic(E, y, E, y, enc, "win")
        model.calibration = fit_platt(model.raw_score(E, encoded=True), y)
    p = model.predict_proba(X)
    loaded = PropensityModel.load(model.save(tmp_path / "m"))
    np.testing.assert_array_equal(loaded.predict_proba(X), p)
    contrib, base = model.contributions(X)
    np.testing.assert_allclose(contrib.sum(axis=1).to_numpy() + base, model.raw_score(X), atol=1e-9)
    assert list(contrib.columns) == enc.columns_


def test_logistic_baseline_finds_the_planted_direction():
    X, y = _frame(2000)
    enc = Preprocessor().fit(X)
    model, params = fit_logistic(enc.transform(X), y, enc.transform(X), y, enc, "win")
    fintech = X.iloc[[0]].assign(industry="fintech")
    retail = X.iloc[[0]].assign(industry="retail")
    assert model.predict_proba(fintech)[0] > model.predict_proba(retail)[0]
    assert params["C"] in (0.01, 0.1, 1.0, 10.0)


def test_platt_calibration_preserves_ranking():
    raw = np.array([-2.0, -1.0, 0.0, 1.0, 2.0, 3.0])
    y = np.array([0, 0, 1, 0, 1, 1])
    a, b = fit_platt(raw, y)
    assert a > 0


def test_split_by_time_orders_periods_and_never_splits_a_timestamp():
    as_of = pd.Series(
        pd.to_datetime(["2024-01-01"] * 10 + ["2024-02-01"] * 10 + ["2024-03-01"] * 10 + ["2024-04-01"] * 10)
    )
    s = split_by_time(as_of, test_fraction=0.25, validation_fraction=0.34)
    assert s.test.sum() == 10 and s.validation.sum() == 10 and s.train.sum() == 20
    assert as_of[s.train].max() < as_of[s.validation].min() <= as_of[s.validation].max() < as_of[s.test].min()
    assert not (s.train & s.test).any()


def test_single_feature_auc_flags_a_leak_and_ignores_noise():
    X, y = _frame(600)
    X["stage_after"] = np.where(y == 1, "closed won", "closed lost")
    assert single_feature_auc(X["stage_after"], y) == pytest.approx(1.0)
    assert single_feature_auc(X["noise"], y) < 0.6
    with pytest.raises(LeakageError, match="'stage_after'"):
        screen_features(X, y, "win", 0.95, {c: c for c in X.columns})
    # An id-like column is not flagged: out-of-fold encoding cannot memorise it.
    ids = pd.Series([f"id{i}" for i in range(len(y))], dtype="str")
    assert single_feature_auc(ids, y) < 0.6


def test_tuning_is_reproducible_for_a_seed():
    X, y = _frame(800)
    enc = Preprocessor().fit(X)
    E = enc.transform(X)
    cfg = TrainingConfig(
        tuning=TuningConfig(n_trials=3, timeout_seconds=60), max_boost_rounds=60, num_threads=1
    )
    a = tune_lightgbm(E[:600], y[:600], E[600:], y[600:], enc.categorical_columns_, cfg, seed=3)
    b = tune_lightgbm(E[:600], y[:600], E[600:], y[600:], enc.categorical_columns_, cfg, seed=3)
    assert a.params == b.params and a.best_iteration == b.best_iteration
    assert a.best_validation_logloss == b.best_validation_logloss
    assert len(a.trials) == 3


def test_logistic_contributions_sum_one_hot_levels_per_attribute():
    X, y = _frame()
    enc = Preprocessor().fit(X)
    model, _ = fit_logistic(enc.encode(X), y, enc.encode(X), y, enc, "win")
    contrib, _ = model.contributions(X.iloc[:5])
    design = enc.design_from_codes(enc.encode(X.iloc[:5]))
    coef = pd.Series(model.coef, index=design.columns)
    industry = [c for c in design.columns if c.startswith("industry=")]
    expected = (design[industry] * coef[industry]).sum(axis=1).to_numpy()
    np.testing.assert_allclose(contrib["industry"].to_numpy(), expected, atol=1e-12)


def test_propensity_model_refuses_an_old_format(tmp_path):
    X, y = _frame()
    enc = Preprocessor().fit(X)
    model, _ = fit_logistic(enc.encode(X), y, enc.encode(X), y, enc, "win")
    folder = model.save(tmp_path / "m")
    spec = json.loads((folder / "model.json").read_text())
    (folder / "model.json").write_text(json.dumps({**spec, "format": "icpkit.PropensityModel/1"}))
    with pytest.raises(ValueError, match="PropensityModel/1"):
        PropensityModel.load(folder)
