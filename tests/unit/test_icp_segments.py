"""Segments: planted clusters are recovered, named after what sets them apart, and round-trip."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from icpkit.icp.segments import SegmentModel, distinct_icps, profile_segments

PLANTED_INDUSTRY = {0: "Healthcare", 1: "Retail", 2: "Software"}


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
def fitted() -> tuple[pd.DataFrame, np.ndarray, SegmentModel]:
    X, truth = _planted()
    return X, truth, SegmentModel.fit(X, seed=0)


def test_fit_recovers_planted_clusters(fitted):
    X, truth, model = fitted
    assert model.k == 3
    assert max(model.silhouette_by_k, key=model.silhouette_by_k.get) == 3
    assert set(model.silhouette_by_k) == set(range(2, 9))
    assert adjusted_rand_score(truth, model.predict(X)) >= 0.9
    assert model.categorical == ["industry", "noise"]


def test_fit_is_deterministic_for_a_seed(fitted):
    X, _, model = fitted
    again = SegmentModel.fit(X, k_range=(3, 3), seed=0)
    np.testing.assert_allclose(again.centers, model.centers)
    np.testing.assert_array_equal(again.predict(X), model.predict(X))


def test_round_trip_through_json_predicts_identically(fitted, tmp_path):
    X, _, model = fitted
    restored = SegmentModel.from_dict(json.loads(json.dumps(model.to_dict())))
    np.testing.assert_array_equal(restored.predict(X), model.predict(X))
    assert restored.silhouette_by_k == model.silhouette_by_k and restored.names == model.names
    model.save(tmp_path / "segments.json")
    loaded = SegmentModel.load(tmp_path / "segments.json")
    np.testing.assert_array_equal(loaded.predict(X.iloc[:50]), model.predict(X.iloc[:50]))


def test_predict_handles_unseen_and_missing_categories(fitted):
    X, _, model = fitted
    new = X.iloc[:3].copy()
    new["industry"] = ["Mining", None, "Retail"]
    assert model.predict(new).shape == (3,)
    with pytest.raises(ValueError, match="tech_spend"):
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
        assert f"industry={PLANTED_INDUSTRY[cluster]}" in name
        assert planted_attribute[cluster] in name


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
    assert profile["name"].tolist() == ["industry=a, low employees", "industry=b, high employees"]


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
