"""Cohorts, the negative ICP and the tier table, on tiny frames with known answers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import chi2_contingency, mannwhitneyu
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

from icpkit.icp.cohorts import cohort_traits, lifetime_value, quantile_ranges, value_cohorts, value_lift
from icpkit.icp.negative import risk_drivers
from icpkit.icp.tier_table import check_monotone, tier_table

T = pd.Timestamp
EXTRACT = T("2025-01-01")


# -------------------------------------------------------------------------------------- lifetime value


def test_lifetime_value_sums_arr_times_tenure_plus_expansion():
    subs = pd.DataFrame(
        {
            "account_id": ["a", "b", "b", "c", "d"],
            "start_date": pd.to_datetime(
                ["2022-01-01", "2024-01-01", "2023-01-01", "2024-07-01", "2025-06-01"]
            ),
            # b's second row runs past the extract date; c has no end date yet (still running)
            "end_date": [T("2024-01-01"), T("2024-07-01"), T("2026-01-01"), pd.NaT, T("2026-06-01")],
            "arr": [1000.0, 100.0, 200.0, 365.25, 500.0],
            "expansion_arr": [500.0, np.nan, 0.0, 0.0, 50.0],
        }
    )
    ltv = lifetime_value(subs, EXTRACT)
    assert ltv["a"] == pytest.approx(2500.0, abs=2.0)  # 730 days ~ 2 years
    assert ltv["b"] == pytest.approx(100 * 182 / 365.25 + 200 * 731 / 365.25)
    assert ltv["c"] == pytest.approx(184.0)  # 2024-07-01 -> 2025-01-01 is 184 days
    assert ltv["d"] == pytest.approx(50.0)  # starts after the extract: only its expansion counts


def test_lifetime_value_without_expansion_column():
    subs = pd.DataFrame(
        {"account_id": ["a"], "start_date": [T("2024-01-01")], "end_date": [T("2025-01-01")], "arr": [365.25]}
    )
    assert lifetime_value(subs, EXTRACT)["a"] == pytest.approx(366.0)


# -------------------------------------------------------------------------------------------- cohorts


def test_value_cohorts_sizes_are_exact_even_with_ties():
    ltv = pd.Series([0.0] * 50 + list(range(1, 51)), index=[f"a{i}" for i in range(100)], dtype=float)
    cohorts = value_cohorts(ltv)
    assert cohorts.value_counts().to_dict() == {"middle 60%": 60, "top 20%": 20, "bottom 20%": 20}
    assert (ltv[cohorts == "top 20%"] >= 31).all()
    assert (ltv[cohorts == "bottom 20%"] == 0).all()


def test_value_cohorts_labels_follow_the_fractions_and_skip_nan():
    ltv = pd.Series([*range(10), np.nan], dtype=float)
    cohorts = value_cohorts(ltv, top=0.1, bottom=0.3)
    assert cohorts.value_counts().to_dict() == {"middle 60%": 6, "bottom 30%": 3, "top 10%": 1}
    assert cohorts.iloc[9] == "top 10%"
    assert pd.isna(cohorts.iloc[10])


def _cohorts_30_40_30() -> pd.Series:
    return pd.Series(["top 20%"] * 30 + ["middle 60%"] * 40 + ["bottom 20%"] * 30)


def test_cohort_traits_finds_planted_split_and_not_noise():
    rng = np.random.default_rng(7)
    cohorts = _cohorts_30_40_30()
    attrs = pd.DataFrame(
        {
            "segment": ["A"] * 30 + list(rng.choice(["A", "B"], 40)) + ["B"] * 30,
            "noise": rng.choice(["x", "y", "z"], 100),
            "employees": np.r_[rng.normal(200, 10, 30), rng.normal(100, 10, 40), rng.normal(50, 10, 30)],
        }
    )
    traits = cohort_traits(attrs, cohorts).set_index("attribute")

    seg = traits.loc["segment"]
    assert seg["kind"] == "categorical" and bool(seg["significant"])
    assert seg["effect_size"] == pytest.approx(1.0)
    assert seg["winning_value"] == "A"
    assert (seg["top_summary"], seg["bottom_summary"]) == (1.0, 0.0)
    assert seg["p_value"] == pytest.approx(chi2_contingency([[30, 0], [0, 30]]).pvalue)
    assert not bool(traits.loc["noise", "significant"])

    emp = traits.loc["employees"]
    direct = mannwhitneyu(attrs["employees"][:30], attrs["employees"][70:], alternative="two-sided")
    assert emp["p_value"] == pytest.approx(direct.pvalue)
    assert emp["effect_size"] == pytest.approx(1.0)  # every top value above every bottom value
    assert emp["winning_value"] == "higher in top"
    assert emp["top_summary"] == pytest.approx(np.median(attrs["employees"][:30]))

    expected = multipletests(traits["p_value"].to_numpy(), method="fdr_bh")[1]
    np.testing.assert_allclose(traits["p_adjusted"].to_numpy(), expected)


def test_cohort_traits_keeps_untestable_attributes_with_a_note():
    cohorts = _cohorts_30_40_30()
    attrs = pd.DataFrame(
        {
            "constant": ["same"] * 100,
            "sparse": [np.nan] * 29 + [1.0] + [2.0] * 70,  # one non-null value in top
            "good": np.arange(100, 0, -1, dtype=float),
        }
    )
    traits = cohort_traits(attrs, cohorts).set_index("attribute")
    assert set(traits.index) == {"constant", "sparse", "good"}
    for name in ("constant", "sparse"):
        assert math.isnan(traits.loc[name, "p_value"]) and not traits.loc[name, "significant"]
        assert traits.loc[name, "note"]
    assert traits.loc["constant", "note"] == "constant in both cohorts"
    assert list(cohort_traits(attrs, cohorts)["attribute"])[0] == "good"  # sorted, untested last


def _noise_frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "employees": rng.lognormal(4, 1, n).round(),
            "tech_spend": rng.normal(50, 10, n),
            "industry": rng.choice(["a", "b", "c", "d"], n),
            "region": rng.choice(["emea", "na", "apac"], n),
            "has_crm": rng.choice([True, False], n),
        }
    )


def test_shuffled_labels_give_no_significant_trait_or_driver():
    attrs = _noise_frame(2000, seed=11)
    rng = np.random.default_rng(3)
    cohorts = value_cohorts(pd.Series(rng.permutation(2000).astype(float)))
    assert not cohort_traits(attrs, cohorts)["significant"].any()
    bad = pd.Series(rng.permutation(np.r_[np.ones(300), np.zeros(1700)]).astype(int))
    assert not risk_drivers(attrs, bad, "churn")["significant"].any()


# ------------------------------------------------------------------------------------------------ lift


def test_value_lift_categorical_rates_lift_and_wilson():
    attr = pd.Series(["A"] * 10 + ["B"] * 10 + [None] * 2)
    outcome = pd.Series([1] * 6 + [0] * 4 + [1] * 2 + [0] * 8 + [pd.NA, 1], dtype="Int64")
    lift = value_lift(attr, outcome).set_index("value")
    assert lift.attrs["excluded_unlabelled"] == 1
    assert list(lift.index) == ["A", "B", "missing"]
    assert lift.loc["A", "n"] == 10 and lift.loc["A", "rate"] == pytest.approx(0.6)
    assert lift.loc["A", "lift"] == pytest.approx(0.6 / (9 / 21))
    lo, hi = proportion_confint(6, 10, method="wilson")
    assert (lift.loc["A", "ci_low"], lift.loc["A", "ci_high"]) == pytest.approx((lo, hi))


def test_value_lift_numeric_quantile_ranges_and_missing_row():
    attr = pd.Series([*range(1, 21), np.nan], dtype=float)
    outcome = pd.Series([0] * 10 + [1] * 10 + [1])
    lift = value_lift(attr, outcome, bins=2)
    assert list(lift["value"]) == ["< 11", ">= 11", "missing"]
    assert list(lift["rate"]) == [0.0, 1.0, 1.0]
    assert list(lift["n"]) == [10, 10, 1]


def test_quantile_ranges_merge_tied_edges():
    ranges = quantile_ranges(pd.Series([0.0] * 80 + [5.0, 10.0] * 10), bins=5)
    assert list(ranges["value"]) == ["< 5", ">= 5"]
    assert ranges["low"].iloc[0] == -np.inf and ranges["high"].iloc[-1] == np.inf


# ---------------------------------------------------------------------------------------- negative ICP


# ------------------------------------------------------------------------------------------ tier table


def _tiers() -> tuple[pd.Series, pd.Series, pd.Series]:
    tiers = pd.Series(["Perfect"] * 4 + ["Strong"] * 4 + ["Weak"] * 2)
    win = pd.Series([1, 1, 0, pd.NA, 1, 0, 0, 0, 0, pd.NA], dtype="Int64")
    revenue = pd.Series([100.0, 50.0, 0.0, 10.0, 20.0, 0.0, 0.0, 0.0, 5.0, np.nan])
    return tiers, win, revenue


def test_tier_table_rates_and_revenue_by_hand():
    tiers, win, revenue = _tiers()
    table = tier_table(tiers, {"win": win}, revenue).set_index("tier")
    assert list(table.index) == ["Perfect", "Strong", "Moderate", "Weak", "All"]
    assert table.loc["Perfect", "win_rate"] == pytest.approx(2 / 3)
    assert table.loc["Perfect", "win_n"] == 3
    assert table.loc["Strong", "win_rate"] == pytest.approx(0.25)
    assert table.loc["Weak", "win_rate"] == 0.0 and table.loc["Weak", "win_n"] == 1
    assert table.loc["Moderate", "accounts"] == 0 and math.isnan(table.loc["Moderate", "win_rate"])
    assert table.loc["Perfect", "revenue"] == 160.0 and table.loc["Perfect", "revenue_per_account"] == 40.0
    assert table.loc["All", "accounts"] == 10 and table.loc["All", "win_rate"] == pytest.approx(3 / 8)
    assert table.loc["All", "revenue"] == 185.0


def test_tier_table_without_revenue_has_no_revenue_columns():
    tiers, win, _ = _tiers()
    assert "revenue" not in tier_table(tiers, {"win": win}, None).columns


def test_check_monotone_warns_on_inversion_and_small_tiers():
    table = pd.DataFrame(
        {
            "tier": ["Perfect", "Strong", "Moderate", "Weak", "All"],
            "accounts": [100, 100, 100, 100, 400],
            "win_rate": [0.40, 0.21, 0.25, 0.10, 0.24],
            "win_n": [50, 50, 50, 5, 155],
        }
    )
    assert check_monotone(table, ["win_rate"]) == [
        "win_rate: Weak has only 5 labelled rows (< 20); not checked",
        "win_rate: Strong (0.21) is below Moderate (0.25)",
    ]
    table["win_rate"] = [0.4, 0.3, 0.2, 0.5, 0.3]
    table["win_n"] = [50, 50, 50, 50, 200]
    assert check_monotone(table, ["win_rate"]) == ["win_rate: Moderate (0.20) is below Weak (0.50)"]
    table["win_rate"] = [0.4, 0.3, 0.2, 0.1, 0.25]
    assert check_monotone(table, ["win_rate"]) == []


def test_check_monotone_with_alpha_tells_noise_from_a_real_reversal():
    table = pd.DataFrame(
        {
            "tier": ["Perfect", "Strong", "Moderate", "All"],
            "accounts": [1000, 1000, 1000, 3000],
            # 0.34 vs 0.36 on 500 rows each: p ~ 0.5; 0.30 vs 0.60 on 500 rows: p << 0.001.
            "win_rate": [0.34, 0.36, 0.30, 0.33],
            "win_n": [500, 500, 500, 1500],
            "renewal_rate": [0.30, 0.60, 0.20, 0.37],
            "renewal_n": [500, 500, 500, 1500],
        }
    )
    notes = check_monotone(table, ["win_rate", "renewal_rate"], alpha=0.05)
    assert notes[0].startswith(
        "win_rate: Perfect (0.34) and Strong (0.36) are not significantly different (p = 0.5"
    )
    assert notes[1] == "renewal_rate: Perfect (0.30) is below Strong (0.60)"
    assert len(notes) == 2
