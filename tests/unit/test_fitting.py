"""Unit tests for icpkit.models.fitting and training.fit_outcome: splits, tuning, refit, unseen accounts."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from icpkit.config import Config, TrainingConfig, TuningConfig, config_from_dict
from icpkit.features import OutcomeDataset
from icpkit.models.evaluation import roc_auc
from icpkit.models.fitting import (
    RANDOM_SPLIT_CAVEAT,
    Split,
    bounded_fit_rows,
    fit_lightgbm,
    refit_logistic,
    scaled_rounds,
    split_random,
    tune_lightgbm,
)
from icpkit.models.preprocessing import Preprocessor
from icpkit.training import TrainingResult, fit_outcome, summary_table


def make_dataset(
    X: pd.DataFrame, y: np.ndarray, accounts, as_of, outcome: str = "conversion"
) -> OutcomeDataset:
    """A hand-made outcome dataset (every row labelled; each column its own source attribute)."""
    n = len(X)
    return OutcomeDataset(
        outcome=outcome,
        ids=pd.Series([f"row{i}" for i in range(n)], dtype="str"),
        account_ids=pd.Series(accounts, dtype="str"),
        as_of=pd.Series(pd.to_datetime(as_of)),
        X=X.reset_index(drop=True),
        y=pd.Series(y, dtype="Int8"),
    )


def small_config(**training) -> Config:
    """A config that trains in a second: two trials, few rounds, few resamples."""
    base = {
        "tuning": {"n_trials": 2},
        "max_boost_rounds": 60,
        "bootstrap_samples": 20,
        "shap_sample_rows": 100,
        "min_rows": 50,
        "min_positives": 10,
    }
    return config_from_dict({"seed": 3, "data": {"source": "/nonexistent"}, "training": base | training})


def _leads(n: int = 1200, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {
            "employees": rng.lognormal(4, 1, n),
            "industry": pd.Series(rng.choice(["fintech", "retail", "media"], n), dtype="str"),
            "noise": rng.normal(size=n),
        }
    )
    logit = -1.0 + 1.5 * (X["industry"] == "fintech") + 0.4 * (np.log(X["employees"]) - 4)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int).to_numpy()
    return X, y


def _dates(n: int, seed: int = 0) -> pd.Series:
    rng = np.random.default_rng(seed)
    return pd.Series(pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 730, n), unit="D"))


# ------------------------------------------------------------------------------------------- random split


def test_split_random_keeps_each_account_on_one_side_and_stratifies():
    rng = np.random.default_rng(0)
    accounts = rng.integers(0, 400, 3000).astype(str)
    y = (rng.random(3000) < 0.3).astype(int)
    s = split_random(pd.Series(accounts), y, test_fraction=0.2, validation_fraction=0.25, seed=1)
    assert s.kind == "random" and pd.isna(s.test_start)
    assert (s.train.astype(int) + s.validation + s.test == 1).all()
    parts = [set(accounts[m]) for m in (s.train, s.validation, s.test)]
    assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
    assert s.test.mean() == pytest.approx(0.2, abs=0.02)
    assert s.validation.sum() / (~s.test).sum() == pytest.approx(0.25, abs=0.02)
    assert y[s.test].mean() == pytest.approx(y.mean(), abs=0.04)
    assert s.describe() == {
        "kind": "random",
        "train_rows": int(s.train.sum()),
        "validation_rows": int(s.validation.sum()),
        "test_rows": int(s.test.sum()),
    }


def test_split_random_is_seeded():
    accounts = pd.Series([f"a{i % 300}" for i in range(1500)])
    y = np.arange(1500) % 4 == 0
    a = split_random(accounts, y, 0.2, 0.2, seed=5)
    b = split_random(accounts, y, 0.2, 0.2, seed=5)
    c = split_random(accounts, y, 0.2, 0.2, seed=6)
    assert (a.test == b.test).all() and (a.validation == b.validation).all()
    assert not (a.test == c.test).all()


def test_split_random_one_row_per_account_stratifies_by_label_exactly():
    y = np.array([1] * 100 + [0] * 400)
    s = split_random(pd.Series([f"lead{i}" for i in range(500)]), y, 0.2, 0.2, seed=0)
    assert y[s.test].sum() == 20 and (1 - y[s.test]).sum() == 80


def test_fit_outcome_random_split_logs_the_caveat_and_evaluates_unseen_accounts_only(caplog):
    X, y = _leads(800)
    data = make_dataset(X, y, [f"acc{i // 2}" for i in range(len(y))], [pd.NaT] * len(y))
    with caplog.at_level(logging.WARNING, logger="icpkit.training"):
        report = fit_outcome(data, small_config(split="random"))
    assert RANDOM_SPLIT_CAVEAT in caplog.text
    assert report.split.kind == "random"
    # Grouped by account: every test row belongs to an account the model never saw.
    assert report.n_test_unseen == int(report.split.test.sum())
    assert report.test_unseen.metrics["roc_auc"] == pytest.approx(report.test.metrics["roc_auc"])


# ------------------------------------------------------------------------------------------------ tuning


def _encoded(n: int = 800):
    X, y = _leads(n, seed=2)
    enc = Preprocessor().fit(X[:600])
    return enc, enc.transform(X), y


def test_tuning_same_seed_same_data_gives_the_same_booster_text():
    enc, E, y = _encoded()
    cfg = TrainingConfig(tuning=TuningConfig(n_trials=3), max_boost_rounds=60)
    texts = []
    for _ in range(2):
        tuning = tune_lightgbm(E[:600], y[:600], E[600:], y[600:], enc.categorical_columns_, cfg, seed=3)
        model = fit_lightgbm(E[:600], y[:600], enc.categorical_columns_, tuning, enc, "win")
        texts.append(model.booster.model_to_string())
    assert texts[0] == texts[1]
    assert tuning.n_trials_done == 3 and not tuning.cut_by_timeout and tuning.timeout_seconds is None


def test_tuning_cut_by_timeout_is_recorded_with_the_trials_done(caplog):
    enc, E, y = _encoded()
    # A nanosecond cap stops Optuna before any trial; the search still completes one to choose from.
    cfg = TrainingConfig(tuning=TuningConfig(n_trials=4, timeout_seconds=1e-9), max_boost_rounds=30)
    with caplog.at_level(logging.WARNING, logger="icpkit.models.fitting"):
        tuning = tune_lightgbm(E[:600], y[:600], E[600:], y[600:], enc.categorical_columns_, cfg, seed=3)
    assert tuning.cut_by_timeout and tuning.n_trials_done == 1 and tuning.n_trials == 4
    assert tuning.describe()["cut_by_timeout"] is True
    assert "after 1 of 4 trials" in caplog.text


def test_tuning_calls_on_trial_after_each_trial():
    enc, E, y = _encoded()
    calls = []
    cfg = TrainingConfig(tuning=TuningConfig(n_trials=3), max_boost_rounds=30)
    tune_lightgbm(
        E[:600], y[:600], E[600:], y[600:], enc.categorical_columns_, cfg, seed=1,
        on_trial=lambda done, total: calls.append((done, total)),
    )  # fmt: skip
    assert calls == [(1, 3), (2, 3), (3, 3)]


def test_tuning_timeout_defaults_to_none():
    assert TuningConfig().timeout_seconds is None
    assert TrainingConfig().num_threads == 1 and TrainingConfig().split == "time" and TrainingConfig().refit


# ------------------------------------------------------------------------------------------------- refit


def test_scaled_rounds_scale_the_early_stopped_count_by_the_row_ratio():
    assert scaled_rounds(100, 1250, 1000) == 125
    assert scaled_rounds(0, 500, 400) == 1  # never zero rounds
    with pytest.raises(ValueError):
        scaled_rounds(10, 10, 0)


def test_refit_logistic_uses_the_given_c():
    X, y = _leads(600)
    enc = Preprocessor().fit(X)
    E = enc.transform(X)
    strong, weak = refit_logistic(E, y, enc, "win", C=10.0), refit_logistic(E, y, enc, "win", C=0.001)
    assert np.abs(weak.coef).sum() < np.abs(strong.coef).sum() / 5


def test_fit_outcome_refits_on_training_and_validation_with_the_validation_choices():
    X, y = _leads(1200)
    data = make_dataset(X, y, [f"acc{i}" for i in range(len(y))], _dates(len(y)))
    before = fit_outcome(data, small_config(refit=False))
    after = fit_outcome(data, small_config(refit=True))
    s = after.split
    # Choice and calibration come from the same train -> validation fits in both runs.
    assert after.validation_auc == before.validation_auc
    for name in ("logistic", "lightgbm"):
        assert after.candidates[name].calibration == before.candidates[name].calibration
    assert after.refit["applied"] and after.refit["rows"] == int(s.train.sum() + s.validation.sum())
    rounds = scaled_rounds(after.tuning.best_iteration, after.refit["rows"], int(s.train.sum()))
    assert after.refit["lightgbm_rounds"] == rounds
    assert after.candidates["lightgbm"].booster.num_trees() == rounds
    assert after.candidates["logistic"].coef != before.candidates["logistic"].coef
    assert before.refit == {"applied": False, "rows": int(s.train.sum())}
    assert after.model.metadata["refit"]["applied"] is True


def test_fit_outcome_gives_cis_to_the_chosen_model_only_and_records_threads():
    X, y = _leads(1200)
    report = fit_outcome(make_dataset(X, y, [f"a{i}" for i in range(len(y))], _dates(len(y))), small_config())
    chosen = report.model.kind
    other = "logistic" if chosen == "lightgbm" else "lightgbm"
    assert set(report.test.ci) == set(report.test.metrics)
    assert report.candidate_tests[other].ci == {} and np.isfinite(
        report.candidate_tests[other].metrics["roc_auc"]
    )
    assert report.threads["num_threads"] == 1 and report.threads["blas_threads"] == 1
    # Fields the rest of the code reads are all there.
    for name in ("model", "test", "split", "dataset", "shap_values", "shap_rows", "validation_auc", "tuning"):
        assert getattr(report, name) is not None, name
    assert set(report.candidates) == set(report.candidate_tests) == {"logistic", "lightgbm"}


# ------------------------------------------------------------------------------------------ unseen accounts


def test_fit_outcome_unseen_accounts_expose_a_memorising_feature():
    """The account id as a category scores well on accounts it has seen and at chance on new ones."""
    rng = np.random.default_rng(0)
    n_seen, n_new, per = 200, 50, 10
    accounts = np.repeat([f"acc{i:03d}" for i in range(n_seen + n_new)], per)
    propensity = np.repeat(rng.choice([0.15, 0.85], n_seen + n_new), per)
    y = (rng.random(len(accounts)) < propensity).astype(int)
    new = np.repeat(np.arange(n_seen + n_new) >= n_seen, per)
    # Seen accounts have rows all along; new accounts appear only in the last months (the test period).
    days = np.where(new, rng.integers(700, 730, len(y)), rng.integers(0, 730, len(y)))
    X = pd.DataFrame({"account_code": pd.Series(accounts, dtype="str"), "noise": rng.normal(size=len(y))})
    data = make_dataset(X, y, accounts, pd.Timestamp("2023-01-01") + pd.to_timedelta(days, unit="D"))
    report = fit_outcome(data, small_config(test_fraction=0.3))

    X_test, y_test = report.test_frame()
    test_accounts = data.subset(data.labelled).subset(report.split.test).account_ids.to_numpy()
    unseen = np.isin(test_accounts, accounts[new])
    assert report.n_test_unseen == int(unseen.sum()) > 100
    p = report.model.predict_proba(X_test)
    assert roc_auc(y_test[~unseen], p[~unseen]) > 0.75
    unseen_auc = report.test_unseen.metrics["roc_auc"]
    assert unseen_auc == pytest.approx(roc_auc(y_test[unseen], p[unseen]))
    assert unseen_auc < 0.62
    assert set(report.test_unseen.ci) == set(report.test_unseen.metrics)

    row = summary_table(TrainingResult({"conversion": report})).iloc[0]
    assert row["unseen_rows"] == report.n_test_unseen and row["unseen_auc"] == unseen_auc
    assert row["unseen_auc_ci"].startswith("[") and row["tuning_trials"] == "2/2"


# ------------------------------------------------------------------------------------------ bounded fits


def test_bounded_fit_rows_keeps_each_part_share_seeded_and_never_touches_test():
    train = np.r_[np.ones(600, bool), np.zeros(400, bool)]
    validation = np.r_[np.zeros(600, bool), np.ones(200, bool), np.zeros(200, bool)]
    split = Split(train, validation, ~(train | validation), pd.Timestamp("2024-01-01"), pd.Timestamp("2024-06-01"))
    tr, va = bounded_fit_rows(split, 400, seed=1)
    assert (tr.sum(), va.sum()) == (300, 100)  # 600:200 -> 3/4 and 1/4 of 400
    assert not (tr & ~train).any() and not (va & ~validation).any()
    again = bounded_fit_rows(split, 400, seed=1)
    assert (again[0] == tr).all() and (again[1] == va).all()
    assert not (bounded_fit_rows(split, 400, seed=2)[0] == tr).all()
    # Under the cap (or without one) every row fits.
    for cap in (800, 5000, None):
        full = bounded_fit_rows(split, cap, seed=1)
        assert (full[0] == train).all() and (full[1] == validation).all()


def test_fit_outcome_with_max_fit_rows_fits_on_the_sample_and_tests_on_every_test_row():
    X, y = _leads(3000)
    data = make_dataset(X, y, [f"a{i}" for i in range(len(y))], _dates(len(y)))
    full = fit_outcome(data, small_config())
    capped = fit_outcome(data, small_config(max_fit_rows=1000))
    s = capped.split
    assert capped.fit_rows["sampled"] and not full.fit_rows["sampled"]
    assert capped.fit_rows["train"] + capped.fit_rows["validation"] == 1000
    assert capped.fit_rows["train_available"] == int(s.train.sum()) > 1000
    assert capped.refit["rows"] == 1000 and full.refit["rows"] == int(s.train.sum() + s.validation.sum())
    # The split and the test period are the same; only the fitting rows shrink.
    assert (capped.split.test == full.split.test).all()
    assert capped.test.n == full.test.n == int(s.test.sum())
    assert capped.model.metadata["fit_rows"] == capped.fit_rows
