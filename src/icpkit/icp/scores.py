"""Fit scores (0-100), tiers, fit x engagement quadrants and negative-ICP penalties."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from icpkit.config import validate_tier_cutoffs

TIER_ORDER = ["Perfect", "Strong", "Moderate", "Weak"]
# Lower edges (inclusive) of each tier; anything below the last one is "Weak".
DEFAULT_CUTOFFS: dict[str, float] = {"Perfect": 80.0, "Strong": 60.0, "Moderate": 40.0}
BOTTOM_TIER = "Weak"
UNSCORED = "Unscored"



@dataclass
class PercentileReference:
    """The book's distribution of a score: turns any account's score into its percentile.

    Stored with the fitted ICP (distinct values and their counts; for integer points at most
    101 pairs), so an account scored later gets exactly the percentile training gave it.
    """

    values: list[float]
    counts: list[int]

    @classmethod
    def from_scores(cls, scores: np.ndarray) -> PercentileReference:
        v = np.asarray(scores, dtype=float)
        distinct, counts = np.unique(v[~np.isnan(v)], return_counts=True)
        if distinct.size == 0:
            raise ValueError("a percentile reference needs at least one non-NaN score")
        return cls([float(x) for x in distinct], [int(c) for c in counts])

    def percentile(self, scores: np.ndarray) -> np.ndarray:
        """Mid-rank percentile (0-100) of each score among the book (see :func:`percentile_score`)."""
        vals = np.asarray(scores, dtype=float)
        ref = np.asarray(self.values, dtype=float)
        cum = np.concatenate([[0], np.cumsum(self.counts)])
        below = cum[np.searchsorted(ref, vals, side="left")]
        upto = cum[np.searchsorted(ref, vals, side="right")]
        out = 100.0 * (below + upto) / (2.0 * cum[-1])
        return np.where(np.isnan(vals), np.nan, out)

    def to_dict(self) -> dict[str, Any]:
        return {"values": self.values, "counts": self.counts}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PercentileReference:
        return cls([float(v) for v in d["values"]], [int(c) for c in d["counts"]])


def capacity_cutoff(fit_scores: np.ndarray, capacity_percent: float) -> float:
    """The fit score at which the top ``capacity_percent`` % of the book begins.

    Fixed at training so a single account scored later gets the same tier; with ties at the cut
    the top tier can hold a little more than the capacity.
    """
    v = np.asarray(fit_scores, dtype=float)
    v = v[~np.isnan(v)]
    return float(np.quantile(v, 1.0 - capacity_percent / 100.0, method="higher")) if v.size else 100.0


def assign_tiers(
    scores: np.ndarray,
    cutoffs: dict[str, float] | None = None,
    capacity_percent: float | None = None,
) -> np.ndarray:
    """Tier each score: the first tier whose lower edge (inclusive) it reaches, else "Weak".

    Defaults: Perfect >= 80, Strong >= 60, Moderate >= 40, Weak below; NaN scores are "Unscored".

    Capacity mode (``capacity_percent`` given, e.g. 10 for a team that can work 10% of the book):
    exactly ``floor(capacity_percent / 100 * n_scored)`` rows with the highest scores are "Perfect"
    whatever their score (floor, so the team's capacity is never exceeded; ties at the cut are broken
    by row order so the count is exact). Every other row gets the cutoffs below "Perfect", so a
    non-top row scoring 85 is "Strong".

    Args:
        scores: fit scores 0-100.
        cutoffs: tier -> inclusive lower edge, best tier first, strictly decreasing within 0-100.
        capacity_percent: share of scored rows (0-100) to mark "Perfect" by rank.

    Returns:
        Object array of tier names.

    Raises:
        ValueError: on cutoffs out of 0-100 or not decreasing (naming the tier), or a bad capacity.
    """
    cuts = dict(DEFAULT_CUTOFFS if cutoffs is None else cutoffs)
    validate_tier_cutoffs(cuts)
    vals = np.asarray(scores, dtype=float)
    scored = ~np.isnan(vals)
    tiers = np.full(vals.shape, UNSCORED, dtype=object)
    tiers[scored] = BOTTOM_TIER

    top = np.zeros(vals.shape, dtype=bool)
    if capacity_percent is not None:
        if not 0.0 <= float(capacity_percent) <= 100.0:
            raise ValueError(f"capacity_percent must be within 0-100, got {capacity_percent}")
        n_top = math.floor(float(capacity_percent) / 100.0 * int(scored.sum()))
        idx = np.flatnonzero(scored)
        # Stable sort on the negated score: highest first, earlier rows win ties.
        ranked = idx[np.argsort(-vals[idx], kind="stable")]
        top[ranked[:n_top]] = True
        cuts.pop("Perfect", None)

    # Walk from the lowest cutoff up so the best tier a score reaches is written last.
    for tier, cutoff in reversed(list(cuts.items())):
        tiers[scored & (vals >= float(cutoff))] = tier
    if capacity_percent is not None:
        tiers[top] = "Perfect"
    return tiers


def quadrant(
    fit: np.ndarray,
    engagement: np.ndarray,
    high_fit: float = 60,
    high_engagement: float = 60,
) -> np.ndarray:
    """Fit x engagement quadrant per account (thresholds inclusive).

    "hot" (high fit, high engagement), "nurture" (high fit, low engagement), "qualify carefully"
    (low fit, high engagement), "deprioritise" (both low); "unscored" if either score is NaN.
    """
    fit_arr = np.asarray(fit, dtype=float)
    eng_arr = np.asarray(engagement, dtype=float)
    high_f = fit_arr >= high_fit
    high_e = eng_arr >= high_engagement
    out = np.select(
        [high_f & high_e, high_f & ~high_e, ~high_f & high_e],
        ["hot", "nurture", "qualify carefully"],
        default="deprioritise",
    ).astype(object)
    out[np.isnan(fit_arr) | np.isnan(eng_arr)] = "unscored"
    return out


def apply_penalty(fit_scores: np.ndarray, penalty_points: np.ndarray) -> np.ndarray:
    """Subtract negative-ICP penalty points from fit scores, clipped to 0-100 (NaN stays NaN)."""
    return np.clip(np.asarray(fit_scores, dtype=float) - np.asarray(penalty_points, dtype=float), 0.0, 100.0)
