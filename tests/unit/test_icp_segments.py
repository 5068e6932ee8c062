"""Segments: k chosen against a null, planted clusters recovered, noise left unsegmented, names."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from icpkit.errors import FeatureMismatchError
from icpkit.icp.segments import (
    SegmentModel,
    distinct_icps,
    fit_segments,
    profile_segments,
)

PLANTED_INDUSTRY = {0: "Healthcare", 1: "Retail", 2: "Software"}


def _three_clusters_and_a_flag(seed: int = 0, n: int = 900) -> tuple[pd.DataFrame, np.ndarray]:
    """3 clusters in 4 numeric + 2 categorical attributes, and a random yes/no flag across them.

    Unlike the built-in generator: unequal sizes, a heavy-tailed count, clusters that overlap
    (centres about 2-3 sd apart), and a flag that splits every cluster in half.
    """
    rng = np.random.default_rng(seed)
    truth = rng.choice(3, n, p=[0.45, 0.35, 0.2])
    centres = 0.7 * np.array([[2.5, 0, -2, 1], [-2, 2.5, 0, -1.5], [0, -2.5, 2.5, 0]])
    X = pd.DataFrame(
        centres[truth] + rng.normal(0, 1, (n, 4)), columns=["seats", "tenure", "maturity", "growth"]
    )
    X["seats"] = np.exp(X["seats"] + 3).round()
    plan = np.array(["starter", "pro", "enterprise"])
    X["plan"] = np.where(rng.random(n) < 0.85, plan[truth], rng.choice(plan, n))
    X["cloud"] = np.where(rng.random(n) < 0.8, np.array(["aws", "gcp", "azure"])[truth], "on-prem")
    X["has_trial"] = (rng.random(n) < 0.5).astype(int)  # 0/1, as CRM exports write flags
    return X, truth


def _noise(seed: int = 0, n: int = 900) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "b": rng.lognormal(2, 1, n),
            "c": rng.uniform(size=n),
            "d": rng.choice(["x", "y", "z"], n),
            "soc2_required": rng.random(n) < 0.4,
        }
    )


def _planted(seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """600 accounts in 3 clusters: 0 = many employees, 1 = few, 2 = high tech spend.

    Each cluster also has its own industry (95%) and there is one pure-noise attribute.
    """
    rng = np.random.default_rng(seed)
    sizes = [250, 200, 150]
    truth = np.repeat([0, 1, 2], sizes)
    emp_center = np.array([6.0, -6.0, 0.0])[truth]
    spend_center = np.array([0.0, 0.0, 6.0])[truth]
    industries = np.array(list(PLANTED_INDUSTRY.values()))
    industry = np.where(rng.random(600) < 0.95, industries[truth], rng.choice(industries, 600))
    X = pd.DataFrame(
        {
            "employees": emp_center + rng.normal(0, 1, 600),
            "tech_spend": spend_center + rng.normal(0, 1, 600),
            "industry": industry,
            "noise": rng.choice(["u", "v"], 600),
        }
    )
    X.loc[rng.choice(600, 10, replace=False), "employees"] = np.nan  # imputation path
    return X, truth


@pytest.fixture(scope="module")
def flag_world():
    X, truth = _three_clusters_and_a_flag()
    return X, truth, fit_segments(X, k_range=(2, 8), seed=0)


@pytest.fixture(scope="module")
def fitted() -> tuple[pd.DataFrame, np.ndarray, SegmentModel]:
    X, truth = _planted()
    result = fit_segments(X, seed=0)
    assert result.model is not None
    return X, truth, result.model


def test_fit_segments_recovers_three_clusters_despite_a_random_flag(flag_world):
    X, truth, result = flag_world
    assert result.k == 3
    assert adjusted_rand_score(truth, result.model.predict(X)) >= 0.9
    # The 0/1 flag is a category, not a scale (it would weigh twice as much standardised).
    assert "has_trial" in result.model.preprocessor.categories_


def test_fit_segments_does_not_run_to_the_top_of_the_range(flag_world):
    _, _, result = flag_world
    assert [d.k for d in result.by_k] == list(range(2, 9))
    assert result.k < 8
    best = max(result.by_k, key=lambda d: d.gain)
    assert best.k == result.k and best.qualifies


def test_fit_segments_on_pure_noise_finds_no_segmentation():
    result = fit_segments(_noise(), k_range=(2, 8), seed=0)
    assert result.model is None and result.k == 1
    assert "one segment is as good as any split" in result.reason
    assert not any(d.qualifies for d in result.by_k)
    diagnostics = json.loads(json.dumps(result.diagnostics()))
    assert diagnostics["segmented"] is False and len(diagnostics["by_k"]) == 7


def test_fit_segments_same_seed_same_segments():
    X, _ = _three_clusters_and_a_flag(seed=1)
    a, b = fit_segments(X, seed=5), fit_segments(X, seed=5)
    np.testing.assert_array_equal(a.model.centers, b.model.centers)
    np.testing.assert_array_equal(a.model.predict(X), b.model.predict(X))
    assert a.diagnostics() == b.diagnostics()


def test_fit_segments_searches_a_sample_and_refits_on_all_rows():
    X, truth = _three_clusters_and_a_flag(seed=2, n=1500)
    result = fit_segments(X, seed=0, sample_size=600)
    assert result.search_rows == 600 and result.k == 3
    assert adjusted_rand_score(truth, result.model.predict(X)) >= 0.9



def test_fit_segments_rejects_an_invalid_k_range():
    with pytest.raises(ValueError, match="k_range"):
        fit_segments(_noise(), k_range=(1, 4))


def test_round_trip_through_json_predicts_identically(fitted, tmp_path):
    X, _, model = fitted
    restored = SegmentModel.from_dict(json.loads(json.dumps(model.to_dict())))
    np.testing.assert_array_equal(restored.predict(X), model.predict(X))
    assert restored.silhouette == model.silhouette and restored.names == model.names


def test_predict_handles_unseen_and_missing_categories(fitted):
    X, _, model = fitted
    new = X.iloc[:3].copy()
    new["industry"] = ["Mining", None, "Retail"]
    assert model.predict(new).shape == (3,)
    with pytest.raises(FeatureMismatchError, match="tech_spend"):
        model.predict(X.drop(columns="tech_spend"))


def test_segment_names_mention_planted_attributes(fitted):
    X, truth, model = fitted
    segments = model.predict(X)
    profile = profile_segments(X, segments)
    assert model.names == profile["name"].tolist()
    planted_attribute = {0: "high employees", 1: "low employees", 2: "high tech_spend"}
    for cluster in range(3):
        segment = np.bincount(segments[truth == cluster]).argmax()
        name = profile.set_index("segment").loc[segment, "name"]
        assert f"industry = {PLANTED_INDUSTRY[cluster]}" in name
        assert planted_attribute[cluster] in name


@pytest.mark.parametrize("flag", [np.array([True, False]), np.array([1, 0])])
def test_segments_name_yes_no_flags_by_value_never_high(flag):
    rng = np.random.default_rng(0)
    truth = np.repeat([0, 1], 200)
    X = pd.DataFrame(
        {
            "soc2_required": flag[np.where(rng.random(400) < 0.95, truth, 1 - truth)],
            "employees": rng.normal(0, 1, 400),
        }
    )
    names = " | ".join(profile_segments(X, truth)["name"])
    value = "yes" if flag.dtype == bool else "1"
    assert f"soc2_required = {value}" in names and "high soc2_required" not in names


def test_profile_segments_columns_by_hand():
    X = pd.DataFrame({"employees": [1.0, 3.0, 10.0, 20.0], "industry": ["a", "a", "b", "b"]})
    won = pd.Series([1, pd.NA, 0, 1], dtype="Int64")
    profile = profile_segments(X, np.array([0, 0, 1, 1]), {"win": won}, pd.Series([5.0, 5.0, 1.0, 2.0]))
    row0 = profile.iloc[0]
    assert (row0["size"], row0["share"], row0["employees_median"]) == (2, 0.5, 2.0)
    assert (row0["industry_top"], row0["industry_top_share"]) == ("a", 1.0)
    assert (row0["win_rate"], row0["revenue"]) == (1.0, 10.0)
    assert profile.iloc[1]["win_rate"] == 0.5
    # industry moves 1 sd of its indicator, employees 0.87 sd: industry comes first
    assert profile["name"].tolist() == ["industry = a, low employees", "industry = b, high employees"]


def test_distinct_icps_proposes_segment_with_better_outcome(fitted):
    X, truth, model = fitted
    segments = model.predict(X)
    profile = profile_segments(X, segments)
    rng = np.random.default_rng(1)
    win = pd.Series((rng.random(600) < np.where(truth == 2, 0.6, 0.1)).astype(int))
    flat = pd.Series((rng.random(600) < 0.2).astype(int))
    icps = distinct_icps(profile, {"win": win, "flat": flat}, segments)
    assert [i["outcome"] for i in icps] == ["win"]
    icp = icps[0]
    assert icp["segment"] == np.bincount(segments[truth == 2]).argmax()
    assert icp["ci_low"] > icp["overall_rate"] and "tech_spend" in icp["name"]
    json.dumps(icps)  # JSON-safe
