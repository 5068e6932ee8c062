"""Tests for icpkit.icp.scorecard: the distilled additive points scorecard."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from icpkit.icp.scorecard import AdditiveScorecard

LABELS = {"industry": ["Retail", "Finance", "Software", "Health"]}


def _make_data(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Known additive logit: step of +2 at employees > 10, +2.5 for Software (code 2), noise column."""
    rng = np.random.default_rng(seed)
    employees = rng.normal(10.0, 5.0, n)
    employees[rng.random(n) < 0.1] = np.nan
    industry = rng.integers(0, 4, n)
    industry[rng.random(n) < 0.05] = -1  # missing code
    noise = rng.normal(size=n)
    logit = -1.5 + 2.0 * (np.nan_to_num(employees, nan=0.0) > 10) + 2.5 * (industry == 2)
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(int)
    X = pd.DataFrame({"employees": employees, "industry": industry, "noise": noise})
    return X, y, logit


@pytest.fixture(scope="module")
def fitted() -> AdditiveScorecard:
    X, y, _ = _make_data(3000, seed=0)
    X_valid, y_valid, _ = _make_data(1000, seed=1)
    return AdditiveScorecard.fit(
        X,
        y,
        categorical=["industry"],
        seed=7,
        X_valid=X_valid,
        y_valid=y_valid,
        num_threads=1,
        category_labels=LABELS,
        num_boost_round=150,
    )


def _probe_frame() -> pd.DataFrame:
    """Edge rows: NaN numeric, -1 / NaN / unseen category codes, exact split thresholds."""
    return pd.DataFrame(
        {
            "employees": [np.nan, 0.0, 10.0, 25.0, -3.0, 1e6],
            "industry": [2.0, -1.0, np.nan, 9.0, 0.0, 3.0],
            "noise": [0.0, np.nan, 1.0, -2.0, 5.0, -5.0],
        }
    )


def test_scorecard_points_table_finds_planted_drivers(fitted: AdditiveScorecard) -> None:
    table = fitted.points_table()
    assert list(table.columns) == ["feature", "value_or_range", "points", "max_points"]
    assert table.groupby("feature")["max_points"].first().sum() == 100
    industry = table[table["feature"] == "industry"]
    assert industry.iloc[0]["value_or_range"] == "Software"
    assert "other/missing" in set(industry["value_or_range"])
    assert table.groupby("feature")["points"].max()["noise"] < 10
    employees = table[table["feature"] == "employees"]
    assert employees["points"].max() > 20
    assert "missing" in set(employees["value_or_range"])


def test_scorecard_lookup_reproduces_booster_raw_score(fitted: AdditiveScorecard) -> None:
    X, _, _ = _make_data(500, seed=2)
    X = pd.concat([X, _probe_frame()], ignore_index=True)
    # Thresholds themselves are the hardest inputs: x <= t must land in the lower bin.
    cuts = fitted.tables["employees"].thresholds
    X = pd.concat([X, pd.DataFrame({"employees": cuts, "industry": 1.0, "noise": 0.0})], ignore_index=True)
    assert fitted._booster is not None
    expected = fitted._booster.predict(X, raw_score=True)
    np.testing.assert_allclose(fitted.raw_score(X), expected, rtol=0, atol=1e-9)


def test_scorecard_missing_and_unseen_codes_share_other_entry(fitted: AdditiveScorecard) -> None:
    X = pd.DataFrame({"employees": [5.0] * 3, "industry": [-1.0, np.nan, 9.0], "noise": [0.0] * 3})
    raw = fitted.raw_score(X)
    assert raw[0] == raw[1] == raw[2]


def test_scorecard_score_range_and_max_is_100(fitted: AdditiveScorecard) -> None:
    X, _, _ = _make_data(500, seed=3)
    scores = fitted.score(X)
    assert scores.min() >= 0.0 and scores.max() <= 100.0
    # Every combination of table entries: the best one must total exactly 100, the worst 0.
    options = []
    for feature in fitted.features:
        t = fitted.tables[feature]
        if t.categorical:
            options.append([*map(float, t.categories), np.nan])
        else:
            cuts = t.thresholds
            options.append([*cuts, cuts[-1] + 1.0, np.nan] if cuts else [0.0, np.nan])
    grid = pd.DataFrame(list(itertools.product(*options)), columns=fitted.features)
    grid_scores = fitted.score(grid)
    assert grid_scores.max() == pytest.approx(100.0, abs=1e-9)
    assert grid_scores.min() == pytest.approx(0.0, abs=1e-9)
    # The total is the sum of per-feature points.
    np.testing.assert_allclose(fitted.points(grid).sum(axis=1), grid_scores, atol=1e-9)


def test_scorecard_integer_points_track_the_raw_score_within_rounding(fitted: AdditiveScorecard) -> None:
    X, _, _ = _make_data(300, seed=4)
    raw, scores = fitted.raw_score(X), fitted.score(X)
    assert scores.dtype.kind == "i"
    # Unrounded points are an exact affine map of the raw score; rounding moves each feature by
    # at most half a point, so the integer total stays within n_features / 2 of it.
    offsets = sum(min(fitted.tables[f].entries()) for f in fitted.features)
    spans = {f: max(fitted.tables[f].entries()) - min(fitted.tables[f].entries()) for f in fitted.features}
    unit = np.mean([fitted.max_points[f] / spans[f] for f in fitted.features if spans[f] > 0])
    exact = (raw - fitted.base - offsets) * unit
    assert np.abs(scores - exact).max() <= len(fitted.features) / 2 + 1.0


def test_scorecard_json_round_trip_identical(fitted: AdditiveScorecard, tmp_path) -> None:
    X, _, _ = _make_data(200, seed=5)
    X = pd.concat([X, _probe_frame()], ignore_index=True)
    path = tmp_path / "scorecard.json"
    fitted.save(path)
    loaded = AdditiveScorecard.load(path)
    assert loaded == fitted
    assert loaded._booster is None
    np.testing.assert_array_equal(loaded.score(X), fitted.score(X))
    np.testing.assert_array_equal(loaded.raw_score(X), fitted.raw_score(X))
    pd.testing.assert_frame_equal(loaded.points_table(), fitted.points_table())
    assert AdditiveScorecard.from_dict(fitted.to_dict()) == fitted


def test_scorecard_reasons_quote_the_points_table(fitted: AdditiveScorecard) -> None:
    X = pd.DataFrame({"employees": [25.0, 2.0], "industry": [2, 0], "noise": [0.0, 0.0]})
    reasons = fitted.reasons(X, top_n=2)
    assert list(reasons.columns) == ["reasons_up", "reasons_down"]
    table = fitted.points_table()
    software = table[(table["feature"] == "industry") & (table["value_or_range"] == "Software")].iloc[0]
    retail = table[(table["feature"] == "industry") & (table["value_or_range"] == "Retail")].iloc[0]
    up, down = reasons.loc[0, "reasons_up"], reasons.loc[1, "reasons_down"]
    assert f"industry = Software (+{software['points']} of {software['max_points']})" in up
    assert f"industry = Retail (+{retail['points']} of {retail['max_points']})" in down
    # The employees reason names the range the value falls in, as the table does.
    big = fitted.points(X).loc[0, "employees"]
    label = table[(table["feature"] == "employees") & (table["points"] == big)]["value_or_range"].iloc[0]
    assert f"employees {label} (+{big} of" in up
    assert reasons.loc[0, "reasons_down"].count(";") <= 1


def test_scorecard_raising_a_planted_driver_never_lowers_points(fitted: AdditiveScorecard) -> None:
    # employees > 10 is a planted positive driver: more employees never costs points.
    base = pd.DataFrame({"employees": np.linspace(-5, 40, 200), "industry": 1.0, "noise": 0.0})
    scores = fitted.score(base)
    assert np.all(np.diff(scores) >= 0)
    assert scores[-1] > scores[0]
    # Software (+2.5 logit) beats every other industry for the same account.
    grid = pd.DataFrame({"employees": 12.0, "industry": [0.0, 1.0, 2.0, 3.0], "noise": 0.0})
    points = fitted.score(grid)
    assert points[2] == points.max() and points[2] > np.delete(points, 2).max()


def test_scorecard_labels_read_zero_not_float32_epsilon() -> None:
    rng = np.random.default_rng(4)
    flag = rng.integers(0, 2, 2000).astype(float)
    y = (rng.random(2000) < np.where(flag == 1, 0.7, 0.3)).astype(int)
    card = AdditiveScorecard.fit(pd.DataFrame({"tickets": flag}), y, [], seed=0, num_threads=1, num_boost_round=30)
    labels = card.points_table()["value_or_range"].tolist()
    assert not any("e-" in label for label in labels), labels
    assert "<= 0" in labels and ">= 1" in labels


def test_scorecard_fit_without_validation_uses_fixed_rounds() -> None:
    X, y, _ = _make_data(600, seed=8)
    sc = AdditiveScorecard.fit(X, y, categorical=["industry"], seed=1, num_threads=1, num_boost_round=20)
    assert sc.num_iterations == 20
    assert sc._booster is not None
    np.testing.assert_allclose(sc.raw_score(X), sc._booster.predict(X, raw_score=True), rtol=0, atol=1e-9)


def test_scorecard_numeric_without_training_nan_reads_nan_as_zero() -> None:
    # LightGBM treats NaN as 0.0 for a feature that had no NaN in training; the tables must agree.
    rng = np.random.default_rng(9)
    x = rng.uniform(-5.0, 5.0, 800)
    y = (rng.random(800) < np.where(x > 1.0, 0.8, 0.2)).astype(int)
    X = pd.DataFrame({"x": x})
    sc = AdditiveScorecard.fit(X, y, categorical=[], seed=3, num_threads=1, num_boost_round=20)
    # |x| <= float32(1e-35) is read as 0.0 by LightGBM's predictor.
    tiny = [-1e-35, 1e-35, -2e-35, -1.0000000180025095e-35]
    probe = pd.DataFrame({"x": [np.nan, 0.0, *tiny, *sc.tables["x"].thresholds, 1e9, -1e9]})
    assert sc._booster is not None
    raw = sc.raw_score(probe)
    np.testing.assert_allclose(raw, sc._booster.predict(probe, raw_score=True), rtol=0, atol=1e-9)
    assert raw[0] == raw[1]


def test_scorecard_rejects_text_columns() -> None:
    X = pd.DataFrame({"industry": ["Software", "Retail"] * 50, "x": np.arange(100.0)})
    with pytest.raises(ValueError, match="industry"):
        AdditiveScorecard.fit(X, np.tile([0, 1], 50), categorical=["industry"], seed=0)


def test_offsets_stay_out_of_the_points_and_weights_balance_stacked_outcomes() -> None:
    # Two "outcomes" stacked: same attribute effect, very different base rates.
    rng = np.random.default_rng(3)
    n = 4000
    x = rng.normal(size=n)
    outcome_b = rng.random(n) < 0.5
    base = np.where(outcome_b, 2.0, -2.0)
    y = (rng.random(n) < 1 / (1 + np.exp(-(base + 1.0 * x)))).astype(int)
    # A column that only says which outcome a row came from: with offsets it explains nothing.
    X = pd.DataFrame({"x": x, "which": outcome_b.astype(float)})
    weight = np.where(outcome_b, 0.5 / outcome_b.sum(), 0.5 / (~outcome_b).sum()) * n
    card = AdditiveScorecard.fit(X, y, [], seed=1, init_score=base, sample_weight=weight, num_threads=1)
    pts = card.points(X)
    assert pts["which"].abs().max() < 5
    assert pts["x"].max() - pts["x"].min() > 80
    # The offset is not part of the scorecard: raw scores carry the attribute effect only.
    assert abs(np.corrcoef(card.raw_score(X), x)[0, 1]) > 0.95
