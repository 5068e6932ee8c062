"""Tests for icpkit.icp.scores: percentile fit scores, tiers, quadrants, penalties."""

from __future__ import annotations

import numpy as np
import pytest

from icpkit.icp.scores import TIER_ORDER, PercentileReference, apply_penalty, assign_tiers, quadrant


def _pct(values, reference=None):
    ref = PercentileReference.from_scores(np.asarray(values if reference is None else reference, dtype=float))
    return ref.percentile(np.asarray(values, dtype=float))


def test_percentile_mid_rank() -> None:
    assert _pct([1.0, 2.0, 3.0, 4.0]).tolist() == [12.5, 37.5, 62.5, 87.5]


def test_percentile_ties_get_half_credit() -> None:
    out = _pct([1.0, 2.0, 2.0, 3.0])
    assert out.tolist() == [12.5, 50.0, 50.0, 87.5]
    assert _pct([5.0, 5.0, 5.0]).tolist() == [50.0, 50.0, 50.0]


def test_percentile_against_a_stored_reference_round_trips() -> None:
    ref = PercentileReference.from_scores(np.array([10.0, 20.0, 20.0, 30.0]))
    again = PercentileReference.from_dict(ref.to_dict())
    out = again.percentile(np.array([0.0, 20.0, 25.0, 99.0, np.nan]))
    assert out[:4].tolist() == [0.0, 50.0, 75.0, 100.0] and np.isnan(out[4])
    with pytest.raises(ValueError):
        PercentileReference.from_scores(np.array([np.nan]))


def test_assign_tiers_exact_boundaries() -> None:
    scores = np.array([0.0, 39.999, 40.0, 59.99, 60.0, 79.99, 80.0, 100.0])
    expected = ["Weak", "Weak", "Moderate", "Moderate", "Strong", "Strong", "Perfect", "Perfect"]
    assert assign_tiers(scores).tolist() == expected
    assert TIER_ORDER == ["Perfect", "Strong", "Moderate", "Weak"]


def test_assign_tiers_nan_is_unscored() -> None:
    assert assign_tiers(np.array([np.nan, 90.0])).tolist() == ["Unscored", "Perfect"]


def test_assign_tiers_custom_cutoffs() -> None:
    out = assign_tiers(np.array([95.0, 90.0, 50.0, 49.0]), cutoffs={"Perfect": 90, "Strong": 50})
    assert out.tolist() == ["Perfect", "Perfect", "Strong", "Weak"]


@pytest.mark.parametrize(
    ("cutoffs", "bad_tier"),
    [
        ({"Perfect": 80, "Strong": 85, "Moderate": 40}, "Strong"),
        ({"Perfect": 80, "Strong": 60, "Moderate": 60}, "Moderate"),
        ({"Perfect": 120, "Strong": 60}, "Perfect"),
        ({"Perfect": 80, "Strong": -5}, "Strong"),
    ],
)
def test_assign_tiers_invalid_cutoffs_name_the_tier(cutoffs: dict[str, float], bad_tier: str) -> None:
    with pytest.raises(ValueError, match=bad_tier):
        assign_tiers(np.array([50.0]), cutoffs=cutoffs)


def test_assign_tiers_capacity_marks_floor_of_top_share() -> None:
    scores = np.arange(25, dtype=float) * 4.0  # 0, 4, ..., 96
    tiers = assign_tiers(scores, capacity_percent=10)
    # floor(10% of 25) = 2 rows, the two highest scores.
    assert (tiers == "Perfect").sum() == 2
    assert set(np.flatnonzero(tiers == "Perfect")) == {23, 24}
    # A non-top row above 80 falls to the next tier's cutoffs.
    assert tiers[22] == "Strong"
    assert tiers[0] == "Weak"


def test_assign_tiers_capacity_ignores_nan_and_breaks_ties_by_row() -> None:
    scores = np.array([np.nan, 50.0, 50.0, 50.0, 10.0])
    tiers = assign_tiers(scores, capacity_percent=50)  # floor(0.5 * 4) = 2
    assert tiers.tolist() == ["Unscored", "Perfect", "Perfect", "Moderate", "Weak"]
    with pytest.raises(ValueError, match="capacity"):
        assign_tiers(scores, capacity_percent=150)


def test_quadrant_corners_and_boundaries() -> None:
    fit = np.array([90.0, 90.0, 10.0, 10.0, 60.0, 59.99, np.nan])
    eng = np.array([90.0, 10.0, 90.0, 10.0, 60.0, 60.0, 50.0])
    assert quadrant(fit, eng).tolist() == [
        "hot",
        "nurture",
        "qualify carefully",
        "deprioritise",
        "hot",
        "qualify carefully",
        "unscored",
    ]
    assert quadrant(np.array([50.0]), np.array([50.0]), high_fit=50, high_engagement=50).tolist() == ["hot"]


def test_apply_penalty_clips_to_range() -> None:
    out = apply_penalty(np.array([50.0, 10.0, 95.0, np.nan]), np.array([20.0, 30.0, -10.0, 5.0]))
    assert out[:3].tolist() == [30.0, 0.0, 100.0]
    assert np.isnan(out[3])
