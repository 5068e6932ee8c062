"""Unit tests for icpkit.models.leakage: the report names suspected leaks, only the hard threshold stops."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from icpkit.errors import LeakageError
from icpkit.models import leakage
from icpkit.models.leakage import (
    add_permutation,
    missingness_auc,
    permutation_auc_loss,
    screen_features,
    single_feature_auc,
    single_feature_aucs,
)
from icpkit.training import TrainingResult, fit_outcome, summary_table
from tests.unit.test_fitting import _dates, _leads, make_dataset, small_config


def _with_sales_notes(n: int = 1500, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Leads whose free-text notes are mostly typed in after a conversion (85 % vs 8 %)."""
    X, y = _leads(n, seed)
    rng = np.random.default_rng(seed + 1)
    filled = np.where(y == 1, rng.random(n) < 0.85, rng.random(n) < 0.08)
    notes = [f"call {i}: talked to {rng.choice(['cfo', 'cto', 'ops'])} about rollout" for i in range(n)]
    X["sales_notes"] = pd.Series(np.where(filled, notes, None), dtype="str")
    return X, y


# ------------------------------------------------------------------------------------------ per feature


def test_missingness_auc_of_a_field_filled_after_the_outcome_matches_hand_computation():
    y = np.array([1] * 10 + [0] * 10)
    # filled for 8 of 10 positives and 1 of 10 negatives: AUC = (0.8 + 0.9) / 2
    x = pd.Series([1.0] * 8 + [np.nan] * 2 + [1.0] + [np.nan] * 9)
    assert missingness_auc(x, y) == pytest.approx(0.85)
    assert missingness_auc(pd.Series(np.arange(20.0)), y) == 0.5  # nothing missing


def test_single_feature_auc_target_encodes_out_of_fold_so_ids_are_not_flagged():
    X, y = _leads(600)
    ids = pd.Series([f"id{i}" for i in range(len(y))], dtype="str")
    assert single_feature_auc(ids, y, seed=1) < 0.6
    stage = pd.Series(np.where(y == 1, "closed won", "closed lost"), dtype="str")
    assert single_feature_auc(stage, y, seed=1) == pytest.approx(1.0)
    # Numbers: missing ranks as its own lowest value, infinities do not break it.
    x = pd.Series(np.where(y == 1, np.inf, np.nan))
    assert single_feature_auc(x, y) == pytest.approx(1.0)


def test_text_columns_encoded_together_get_the_auc_each_gets_alone():
    # One TargetEncoder over every text column: the folds depend on the labels and the seed only,
    # and each column is encoded from its own values, so nothing may change from one at a time.
    X, y = _with_sales_notes(900, seed=3)
    rng = np.random.default_rng(5)
    X["stage"] = pd.Series(np.where(y == 1, "closed won", "closed lost"), dtype="str")
    X["ids"] = pd.Series([f"id{i}" for i in range(len(y))], dtype="str")
    X["region"] = pd.Series(rng.choice(["emea", "amer", None], len(y)), dtype="str")
    X["flag"] = rng.random(len(y)) < 0.5
    together = single_feature_aucs(X, y, seed=2)
    assert list(together) == list(X.columns)
    assert together == {c: single_feature_auc(X[c], y, seed=2) for c in X.columns}
    assert together["stage"] == pytest.approx(1.0)
    assert together["ids"] < 0.6 and together["region"] < 0.6
    assert single_feature_aucs(X, np.ones(len(y), dtype=int)) == dict.fromkeys(X.columns, 0.5)


def test_permutation_auc_loss_is_large_for_the_used_column_and_zero_for_an_unused_one():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=2000), "b": rng.normal(size=2000), "c": rng.normal(size=2000)})
    y = (X["a"] + 0.3 * rng.normal(size=2000) > 0).astype(int).to_numpy()
    losses = permutation_auc_loss(
        lambda F: F["a"].to_numpy(), X, y, {"a": ["a"], "b and c": ["b", "c"]}, seed=0
    )
    assert losses["a"] > 0.4  # from ~0.95 down to ~0.5
    assert losses["b and c"] == 0.0


def test_far_above_catches_two_leaks_side_by_side_but_not_a_uniformly_strong_problem():
    assert set(
        leakage._far_above({"tags": 0.9, "quality": 0.86, "a": 0.7, "b": 0.6, "c": 0.55, "d": 0.5})
    ) == {
        "tags",
        "quality",
    }
    assert leakage._far_above({"a": 0.84, "b": 0.83, "c": 0.82, "d": 0.81, "e": 0.6}) == {}
    assert leakage._far_above({"a": 0.79, "b": 0.5}) == {}  # far ahead, but not high enough
    assert leakage._far_above({"a": 0.85, "b": 0.80}) == {}  # high, but not far ahead


def test_screen_features_names_the_suspect_with_its_evidence():
    X, y = _with_sales_notes()
    report = screen_features(X, y, "conversion", hard_threshold=0.95, seed=0)
    assert report.suspected_names == ["sales_notes"]
    (suspect,) = report.suspected
    assert set(suspect.rules) == {"single_feature_auc", "missingness"}
    assert "empty in" in suspect.evidence and "next: 'industry'" in suspect.evidence
    table = report.features.set_index("feature")
    assert table.loc["sales_notes", "suspected"] and not table.loc["industry", "suspected"]
    assert 0.8 < table.loc["sales_notes", "single_feature_auc"] < 0.95
    assert report.to_dict()["suspected"][0]["feature"] == "sales_notes"


def test_screen_features_stops_above_the_hard_threshold():
    X, y = _leads(600)
    X["stage_after"] = pd.Series(np.where(y == 1, "closed won", "closed lost"), dtype="str")
    with pytest.raises(LeakageError, match=r"'stage_after' \(AUC 1.000\).*leakage.max_single_feature_auc"):
        screen_features(X, y, "win", hard_threshold=0.95)


def test_add_permutation_flags_a_feature_the_model_leans_on_alone():
    rng = np.random.default_rng(0)
    n = 1500
    X = pd.DataFrame({f"f{i}": rng.normal(size=n) for i in range(5)})
    y = (X["f0"] + 0.2 * rng.normal(size=n) > 0).astype(int).to_numpy()
    # The screen alone flags f0 too (AUC ~0.97 > 0.95 would stop): use a lax hard threshold.
    report = screen_features(X, y, "win", hard_threshold=1.0)
    report = add_permutation(report, lambda F: F["f0"].to_numpy() + 0.01 * F["f1"].to_numpy(), X, y, seed=0)
    f0 = next(s for s in report.suspected if s.feature == "f0")
    assert "permutation" in f0.rules and "validation AUC" in f0.evidence
    assert report.features.set_index("feature").loc["f0", "permutation_auc_loss"] > 0.3
    assert report.model_validation_auc > 0.9


# --------------------------------------------------------------------------------------------- training


def test_fit_outcome_names_sales_notes_as_a_suspected_leak_and_keeps_training(caplog):
    X, y = _with_sales_notes()
    data = make_dataset(X, y, [f"acc{i}" for i in range(len(y))], _dates(len(y)))
    with caplog.at_level(logging.WARNING, logger="icpkit.training"):
        report = fit_outcome(data, small_config())
    assert report.status == "trained" and report.model is not None
    assert "sales_notes" in report.leakage.suspected_names
    assert "suspected leak 'sales_notes'" in caplog.text and "leakage.deny_columns" in caplog.text
    assert report.leakage.features["permutation_auc_loss"].notna().all()
    assert report.single_feature_auc == report.leakage.single_feature_auc()
    row = summary_table(TrainingResult({"conversion": report})).iloc[0]
    assert "sales_notes" in row["suspected_leaks"]


def test_fit_outcome_stops_on_a_field_with_auc_one():
    X, y = _leads(800)
    X["converted_flag"] = y.astype(float)
    data = make_dataset(X, y, [f"acc{i}" for i in range(len(y))], _dates(len(y)))
    with pytest.raises(LeakageError, match="'converted_flag'"):
        fit_outcome(data, small_config())
