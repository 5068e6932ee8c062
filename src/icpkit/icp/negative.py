"""The negative ICP: attribute values and ranges where churn (or deal loss) is significantly high.

Each attribute value is compared with the rest of the rows by Fisher's exact test on the 2x2
table (value vs rest) x (bad vs good). Fisher was chosen over a binomial test against the rest's
rate because it treats both groups as samples: the rest's rate is estimated too, and with a small
rest a binomial test would be overconfident. The reported ``lift`` and the Wilson interval are
against the overall (baseline) rate, which is what a reader compares with.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd
from scipy.stats import fisher_exact
from statsmodels.stats.proportion import proportion_confint

from icpkit.icp.cohorts import (
    MISSING,
    _bh_adjust,
    _labelled_outcome,
    as_float,
    assign_ranges,
    category_labels,
    is_numeric_attribute,
    quantile_ranges,
)

logger = logging.getLogger(__name__)

DRIVER_COLUMNS = [
    "outcome",
    "attribute",
    "value",
    "support",
    "bad_count",
    "bad_rate",
    "baseline_rate",
    "lift",
    "ci_low",
    "ci_high",
    "p_value",
    "p_adjusted",
    "significant",
    "note",
    "low",
    "high",
]


def _value_labels(x: pd.Series, bins: int) -> tuple[pd.Series, dict[str, tuple[float, float]]]:
    """Value label per row and, for numeric ranges, ``label -> (low, high)``."""
    if is_numeric_attribute(x):
        ranges = quantile_ranges(x, bins)
        bounds = {r.value: (r.low, r.high) for r in ranges.itertuples(index=False)}
        return assign_ranges(x, ranges), bounds
    return category_labels(x), {}


def risk_drivers(
    attributes: pd.DataFrame,
    bad: pd.Series,
    outcome_name: str,
    min_support: int = 30,
    alpha: float = 0.05,
    bins: int = 5,
) -> pd.DataFrame:
    """Attribute values whose bad-outcome rate (churn, loss) is significantly above the baseline.

    Categorical attributes are tested value by value (missing as ``"missing"``); numeric ones by
    quantile range (``bins`` ranges, e.g. ``"[10, 50)"``, plus ``"missing"``), with the range
    bounds kept in ``low`` / ``high`` (NaN for categorical values) so :func:`fit_penalty` matches
    exactly. Each value is tested against the rest by a two-sided Fisher exact test, and the
    p-values of all tested values are Benjamini-Hochberg adjusted together.

    A value is a ``significant`` driver when ``p_adjusted < alpha``, ``lift > 1`` and the lower
    Wilson bound of its bad rate is above the baseline. Values with fewer than ``min_support``
    rows are reported with note "too few rows" and not tested.

    Args:
        attributes: one row per account (or deal).
        bad: 1 where the account churned / the deal was lost, 0 otherwise; NA rows are left out.
        outcome_name: written into the ``outcome`` column (e.g. "churn", "loss").
        min_support: fewest rows a value needs to be tested.
        alpha: false discovery rate.
        bins: number of quantile ranges for numeric attributes.

    Returns:
        One row per attribute value, significant drivers first by lift descending.
    """
    y, labelled = _labelled_outcome(bad, attributes.index)
    excluded = int((~labelled).sum())
    if excluded:
        logger.info("risk_drivers(%s): %d rows without a label left out", outcome_name, excluded)
    x_all = attributes[labelled]
    n_total = len(y)
    total_bad = float(y.sum())
    baseline = total_bad / n_total if n_total else math.nan
    rows = []
    for col in x_all.columns:
        labels, bounds = _value_labels(x_all[col], bins)
        grouped = y.groupby(labels.to_numpy()).agg(["size", "sum"])
        for value, (support, bad_count) in zip(
            grouped.index, grouped[["size", "sum"]].itertuples(index=False), strict=True
        ):
            support, bad_count = int(support), int(bad_count)
            low, high = bounds.get(value, (math.nan, math.nan))
            ci_low, ci_high = proportion_confint(bad_count, support, alpha=alpha, method="wilson")
            rest, rest_bad = n_total - support, int(total_bad) - bad_count
            p_value, note = math.nan, ""
            if support < min_support:
                note = "too few rows"
            elif rest == 0:
                note = "same value for all rows"
            else:
                table = [[bad_count, support - bad_count], [rest_bad, rest - rest_bad]]
                p_value = float(fisher_exact(table, alternative="two-sided").pvalue)
            bad_rate = bad_count / support
            rows.append(
                {
                    "outcome": outcome_name,
                    "attribute": str(col),
                    "value": str(value),
                    "support": support,
                    "bad_count": bad_count,
                    "bad_rate": bad_rate,
                    "baseline_rate": baseline,
                    "lift": bad_rate / baseline if baseline > 0 else math.nan,
                    "ci_low": float(ci_low),
                    "ci_high": float(ci_high),
                    "p_value": p_value,
                    "note": note,
                    "low": float(low),
                    "high": float(high),
                }
            )
    out = pd.DataFrame(rows, columns=[c for c in DRIVER_COLUMNS if c not in ("p_adjusted", "significant")])
    out["p_adjusted"] = _bh_adjust(out["p_value"])
    out["significant"] = (
        (out["p_adjusted"] < alpha) & (out["lift"] > 1) & (out["ci_low"] > out["baseline_rate"])
    ).astype(bool)
    out = out.sort_values(
        ["significant", "lift"], ascending=[False, False], kind="stable", na_position="last"
    )
    return out[DRIVER_COLUMNS].reset_index(drop=True)


def _condition(attribute: str, value: str, low: float) -> str:
    """Readable condition: ``industry = Retail``, ``employees in [10, 50)``, ``employees < 10``."""
    if math.isnan(low) and value == MISSING:
        return f"{attribute} is missing"
    if value.startswith(("<", ">=")):
        return f"{attribute} {value}"
    if value.startswith("["):
        return f"{attribute} in {value}"
    return f"{attribute} = {value}"


def exclusion_criteria(drivers: pd.DataFrame, min_lift: float = 1.5) -> list[dict]:
    """Significant drivers with ``lift >= min_lift`` as readable exclude/flag rules (JSON-safe)."""
    chosen = drivers[drivers["significant"] & (drivers["lift"] >= min_lift)]
    return [
        {
            "attribute": str(r.attribute),
            "value": str(r.value),
            "rule": f"exclude/flag accounts where {_condition(str(r.attribute), str(r.value), float(r.low))}",
            "churn_or_loss_rate": float(r.bad_rate),
            "baseline_rate": float(r.baseline_rate),
            "lift": float(r.lift),
            "support": int(r.support),
            "outcome": str(r.outcome),
        }
        for r in chosen.itertuples(index=False)
    ]


def match_driver(x: pd.Series, value: str, low: float, high: float) -> np.ndarray:
    """Boolean mask of rows of ``x`` that have a driver's value (or fall in its range)."""
    if not (math.isnan(low) and math.isnan(high)):
        v = as_float(x).to_numpy()
        return (v >= low) & (v < high)
    return (category_labels(x) == value).to_numpy()


def fit_penalty(attributes: pd.DataFrame, drivers: pd.DataFrame, max_penalty: float = 20.0) -> np.ndarray:
    """Penalty points per row for matching significant risk drivers.

    Each matched significant driver costs ``min(max_penalty, 10 * (lift - 1))`` points (a driver
    that doubles churn costs 10); the total per row is capped at ``max_penalty``.

    Raises:
        ValueError: a significant driver's attribute is not a column of ``attributes``.
    """
    significant = drivers[drivers["significant"]]
    missing = sorted(set(significant["attribute"]) - set(map(str, attributes.columns)))
    if missing:
        raise ValueError(f"fit_penalty: attributes lack columns used by risk drivers: {missing}")
    columns = {str(c): c for c in attributes.columns}
    penalty = np.zeros(len(attributes), dtype=float)
    for r in significant.itertuples(index=False):
        points = min(max_penalty, 10.0 * (float(r.lift) - 1.0))
        mask = match_driver(attributes[columns[r.attribute]], str(r.value), float(r.low), float(r.high))
        penalty += np.where(mask, points, 0.0)
    return np.minimum(penalty, max_penalty)
