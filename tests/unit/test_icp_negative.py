"""The negative ICP on hand-made worlds: value drivers, monotone tails, consolidated rules."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import fisher_exact
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

from icpkit.icp.negative import DriverRule, cap_share, consolidate_rules, penalty_points, risk_drivers


def _churn_frame() -> tuple[pd.DataFrame, pd.Series]:
    """1,000 accounts, 10% churn overall; plan X (100 rows) churns 60%, plan Z has 10 rows."""
    plan = ["X"] * 100 + ["Y"] * 890 + ["Z"] * 10
    bad = [1] * 60 + [0] * 40 + [1] * 39 + [0] * 851 + [1] + [0] * 9
    employees = np.random.default_rng(0).permutation(np.tile(np.arange(10, 110, dtype=float), 10))
    return pd.DataFrame({"plan": plan, "employees": employees}), pd.Series(bad)


def test_risk_drivers_finds_high_churn_value_and_flags_small_support():
    attrs, bad = _churn_frame()
    drivers = risk_drivers(attrs, bad, "churn")
    x = drivers.set_index(["attribute", "value"]).loc[("plan", "X")]
    assert x["support"] == 100 and x["bad_count"] == 60
    assert x["baseline_rate"] == pytest.approx(0.10) and x["lift"] == pytest.approx(6.0)
    assert bool(x["significant"]) and x["ci_low"] > 0.10
    assert x["p_value"] == pytest.approx(fisher_exact([[60, 40], [40, 860]]).pvalue)
    assert (x["ci_low"], x["ci_high"]) == pytest.approx(proportion_confint(60, 100, method="wilson"))
    assert x["excess_bad"] == pytest.approx(100 * (0.6 - 0.1))
    z = drivers.set_index(["attribute", "value"]).loc[("plan", "Z")]
    assert z["note"] == "too few rows" and not z["significant"] and math.isnan(z["p_value"])
    assert drivers.iloc[0]["value"] == "X"
    tested = drivers["p_value"].notna()
    expected = multipletests(drivers.loc[tested, "p_value"].to_numpy(), method="fdr_bh")[1]
    np.testing.assert_allclose(drivers.loc[tested, "p_adjusted"].to_numpy(), expected)
    # employees is unrelated to churn: no trend, so no range of it is a driver
    assert not drivers.loc[drivers["attribute"] == "employees", "significant"].any()


def _ordinal_world(seed: int, trend: bool) -> tuple[pd.DataFrame, pd.Series]:
    """Digital maturity 1-5; the middle value 3 churns a bit more (lift ~1.3).

    With ``trend``, churn also falls steadily from maturity 1 to 5.
    """
    rng = np.random.default_rng(seed)
    maturity = rng.integers(1, 6, 6000).astype(float)
    rate = np.where(maturity == 3, 0.26, 0.20)
    if trend:
        rate = 0.45 - 0.07 * maturity
    return pd.DataFrame({"maturity": maturity}), pd.Series((rng.random(6000) < rate).astype(int))


def test_a_middle_value_of_an_ordinal_is_never_a_driver():
    drivers = risk_drivers(*_ordinal_world(1, trend=False), "churn")
    assert not drivers["significant"].any(), drivers


def test_a_monotone_ordinal_gives_one_tail_in_the_trend_direction():
    drivers = risk_drivers(*_ordinal_world(2, trend=True), "churn")
    found = drivers[drivers["significant"]]
    assert len(found) == 1
    d = found.iloc[0]
    assert d["kind"] == "range" and d["value"].startswith("<") and math.isinf(d["low"])
    assert d["trend_p_adjusted"] < 0.05


def test_a_yes_no_flag_is_tested_as_two_values():
    rng = np.random.default_rng(4)
    trial = rng.choice(["True", "False"], 3000)
    bad = (rng.random(3000) < np.where(trial == "True", 0.52, 0.41)).astype(int)
    drivers = risk_drivers(pd.DataFrame({"is_trial": trial}), pd.Series(bad), "loss")
    d = drivers.set_index("value").loc["True"]
    assert d["kind"] == "category" and bool(d["significant"])
    assert d["bad_rate"] == pytest.approx(bad[trial == "True"].mean())


def test_unlabelled_rows_are_left_out():
    attrs, bad = _churn_frame()
    bad = bad.astype("Int64")
    bad.iloc[-5:] = pd.NA
    drivers = risk_drivers(attrs, bad, "churn")
    assert drivers[drivers["attribute"] == "plan"]["support"].sum() == 995


def _driver(outcome, attribute, kind, value, low, high, lift, excess):
    return {"outcome": outcome, "attribute": attribute, "kind": kind, "value": value, "low": low, "high": high,
            "lift": lift, "bad_rate": 0.5, "baseline_rate": 0.5 / lift, "support": 100,
            "excess_bad": excess}  # fmt: skip


def test_consolidated_rules_never_overlap_and_merge_outcomes():
    drivers = pd.DataFrame(
        [
            _driver("churn", "industry", "category", "Retail", np.nan, np.nan, 2.0, 30.0),
            _driver("loss", "industry", "category", "Retail", np.nan, np.nan, 1.6, 20.0),
            _driver("loss", "industry", "category", "Education", np.nan, np.nan, 1.8, 10.0),
            _driver("churn", "maturity", "range", "< 2", -np.inf, 2.0, 2.5, 25.0),
            _driver("loss", "maturity", "range", "< 3", -np.inf, 3.0, 1.7, 40.0),
        ]
    )
    rules = consolidate_rules(drivers)
    conditions = [r.condition() for r in rules]
    assert conditions == ["maturity < 3", "industry = Retail", "industry = Education"]
    retail = rules[1]
    assert retail.outcomes == ["churn", "loss"]
    assert len({c for c in conditions}) == len(conditions)


def test_rules_match_values_ranges_and_missing():
    frame = pd.DataFrame({"plan": ["X", "Y", None, "X"], "employees": [5.0, 50.0, np.nan, 10.0]})
    assert DriverRule("plan", "in", values=["X"]).matches(frame).tolist() == [True, False, False, True]
    assert DriverRule("employees", "below", high=10.0).matches(frame).tolist() == [True, False, False, False]
    assert DriverRule("employees", "at_least", low=10.0).matches(frame).tolist() == [False, True, False, True]
    assert DriverRule("employees", "missing").matches(frame).tolist() == [False, False, True, False]
    assert DriverRule("absent", "missing").matches(frame).tolist() == [False] * 4
    rule = DriverRule("plan", "in", values=["X", "Y"], points=5.0)
    assert DriverRule.from_dict(rule.to_dict()) == rule and rule.condition() == "plan in {X, Y}"


def test_penalty_sums_matching_rules_and_is_capped():
    frame = pd.DataFrame({"plan": ["X", "X", "Y", None], "employees": [5.0, 50.0, 20.0, np.nan]})
    rules = [
        DriverRule("plan", "in", values=["X"], points=8.0),
        DriverRule("employees", "below", high=30.0, points=5.0),
    ]
    np.testing.assert_allclose(penalty_points(rules, frame, 20.0), [13.0, 8.0, 5.0, 0.0])
    np.testing.assert_allclose(penalty_points(rules, frame, 6.0), [6.0, 6.0, 5.0, 0.0])


def test_cap_share_keeps_the_most_specific_rules_within_the_share():
    frame = pd.DataFrame({"x": np.arange(100.0)})
    broad = DriverRule("x", "below", high=60.0, lift=1.2, excess_bad=50.0)  # 60 % of the book
    narrow = DriverRule("x", "below", high=10.0, lift=3.0, excess_bad=20.0)  # 10 %
    other = DriverRule("x", "at_least", low=85.0, lift=2.0, excess_bad=10.0)  # 15 %
    kept, left = cap_share([broad, narrow, other], frame, max_share=0.25)
    assert [r.condition() for r in kept] == ["x < 10", "x >= 85"] and left == [broad]
