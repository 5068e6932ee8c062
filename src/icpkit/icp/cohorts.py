"""Value cohorts (top / middle / bottom by lifetime value) and the traits that set them apart.

Also home of the small binning helpers shared with :mod:`icpkit.icp.negative`, so that "winning
ranges" in the ICP profile and risk ranges in the negative ICP are cut the same way: quantile
edges, left-closed ranges ``[low, high)``, the first range open below and the last open above (so
a new account outside the training range still lands in a range).
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd
from scipy.stats import chi2_contingency, mannwhitneyu
from scipy.stats.contingency import association
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

from icpkit.models.preprocessing import per_distinct_value

log = logging.getLogger(__name__)

MISSING = "missing"
OTHER = "other"

_TRAIT_COLUMNS = [
    "attribute",
    "kind",
    "test",
    "statistic",
    "p_value",
    "p_adjusted",
    "effect_size",
    "top_summary",
    "bottom_summary",
    "winning_value",
    "significant",
    "note",
]


# -------------------------------------------------------------------------------------------- helpers


def is_numeric_attribute(s: pd.Series) -> bool:
    """True for numeric columns; booleans count as categorical (a flag has values, not a scale)."""
    return bool(pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s))


def format_number(v: float) -> str:
    """Short readable number for range labels: ``10``, ``2.5``, ``0.125``, ``12346``."""
    v = float(v)
    if v.is_integer():
        return str(int(v))
    a = abs(v)
    if a >= 100:
        return f"{v:.0f}"
    if a >= 1:
        return f"{v:.2f}".rstrip("0").rstrip(".")
    return f"{v:.3g}"


def quantile_ranges(x: pd.Series, bins: int = 5) -> pd.DataFrame:
    """Quantile ranges of a numeric series: one row per range with ``value`` (label), ``low``, ``high``.

    Ranges are left-closed ``[low, high)``; the first has ``low = -inf`` and the last ``high = inf``.
    Quantile edges that coincide (heavy ties) are merged, so there may be fewer than ``bins`` ranges.
    Labels read ``"< 10"``, ``"[10, 50)"``, ``">= 50"`` (or ``"all values"`` for a single range).
    """
    values = as_float(x).dropna().to_numpy()
    if values.size == 0:
        return pd.DataFrame({"value": pd.Series([], dtype=str), "low": [], "high": []})
    # "higher" picks observed values as edges (no interpolation), so integer data gets integer
    # edges and, with left-closed ranges, a tied value never straddles two ranges.
    edges = np.unique(np.quantile(values, np.linspace(0.0, 1.0, bins + 1), method="higher"))
    # Interior cuts only: min and max are replaced by open ends.
    bounds = [-math.inf, *edges[1:-1].tolist(), math.inf]
    rows = []
    for low, high in zip(bounds[:-1], bounds[1:], strict=True):
        if math.isinf(low) and math.isinf(high):
            label = "all values"
        elif math.isinf(low):
            label = f"< {format_number(high)}"
        elif math.isinf(high):
            label = f">= {format_number(low)}"
        else:
            label = f"[{format_number(low)}, {format_number(high)})"
        rows.append({"value": label, "low": float(low), "high": float(high)})
    return pd.DataFrame(rows)


def assign_ranges(x: pd.Series, ranges: pd.DataFrame) -> pd.Series:
    """Label each value of ``x`` with its range from :func:`quantile_ranges`; NaN becomes ``"missing"``."""
    x = as_float(x)
    out = pd.Series(MISSING, index=x.index, dtype=object)
    for row in ranges.itertuples(index=False):
        out[(x >= row.low) & (x < row.high)] = row.value
    return out


def category_labels(x: pd.Series, max_categories: int | None = None) -> pd.Series:
    """String labels of a categorical series.

    NA becomes ``"missing"``, and values beyond the ``max_categories`` most frequent ``"other"``.
    """
    spread = per_distinct_value(x, _text_labels, missing=MISSING)
    labels = _text_labels(x) if spread is None else pd.Series(spread, index=x.index, dtype="str")
    if max_categories is not None:
        counts = labels[labels != MISSING].value_counts()
        keep = set(counts.index[:max_categories])
        labels = labels.where(labels.isin(keep) | (labels == MISSING), OTHER)
    return labels


def _text_labels(x: pd.Series) -> pd.Series:
    return x.astype(object).where(x.notna(), MISSING).astype(str)


def align(s: pd.Series, index: pd.Index) -> pd.Series:
    """``s`` on ``index``; no reindexing when the index is already the same (duplicates allowed)."""
    s = pd.Series(s)
    return s if s.index.equals(index) else s.reindex(index)


def as_float(s: pd.Series) -> pd.Series:
    """Numeric float view of a series (nullable ints, NA and non-numbers become NaN)."""
    return pd.to_numeric(s, errors="coerce").astype(float)


def _labelled_outcome(outcome: pd.Series, index: pd.Index) -> tuple[pd.Series, np.ndarray]:
    """0/1 outcome aligned to ``index`` as floats, NA rows removed, and the positional mask kept."""
    y = as_float(align(outcome, index))
    mask = y.notna().to_numpy()
    y = y[mask]
    if not y.isin([0.0, 1.0]).all():
        raise ValueError("outcome must contain only 0, 1 or missing values")
    return y, mask


def _cohort_labels(top: float, bottom: float) -> tuple[str, str, str]:
    def pct(f: float) -> str:
        return f"{round(f * 100, 6):g}%"

    return f"top {pct(top)}", f"middle {pct(1.0 - top - bottom)}", f"bottom {pct(bottom)}"


# ------------------------------------------------------------------------------------ lifetime value


def lifetime_value(subscriptions: pd.DataFrame, extract_date: pd.Timestamp) -> pd.Series:
    """Realised lifetime value per account: sum of ``arr * tenure_years + expansion_arr``.

    Tenure runs from ``start_date`` to ``min(end_date, extract_date)`` (a subscription without an
    end date is still running) in days / 365.25, clipped at 0 so a future start adds nothing but
    its expansion. ``expansion_arr`` is optional; missing values count as 0.
    """
    subs = subscriptions
    start = pd.to_datetime(subs["start_date"])
    end = pd.to_datetime(subs["end_date"]).fillna(extract_date)
    end = end.where(end <= extract_date, extract_date)
    tenure_years = ((end - start).dt.days / 365.25).clip(lower=0.0)
    arr = as_float(subs["arr"]).fillna(0.0)
    value = arr * tenure_years
    if "expansion_arr" in subs.columns:
        value = value + as_float(subs["expansion_arr"]).fillna(0.0)
    ltv = value.groupby(subs["account_id"]).sum()
    ltv.name = "lifetime_value"
    return ltv.astype(float)


def value_cohorts(ltv: pd.Series, top: float = 0.2, bottom: float = 0.2) -> pd.Series:
    """Label accounts ``"top 20%"``, ``"middle 60%"`` or ``"bottom 20%"`` by lifetime value.

    Cohorts are cut on ranks, not on value thresholds, so ties (many accounts with the same value)
    cannot make a cohort swell: the top ``round(top * n)`` accounts by value are "top", the bottom
    ``round(bottom * n)`` are "bottom"; ties keep their input order. NaN values get no cohort (NA).
    """
    if not (0 < top < 1 and 0 < bottom < 1 and top + bottom <= 1):
        raise ValueError(f"top and bottom must be fractions with top + bottom <= 1, got {top}, {bottom}")
    top_label, middle_label, bottom_label = _cohort_labels(top, bottom)
    values = as_float(ltv).to_numpy()
    valid = ~np.isnan(values)
    n = int(valid.sum())
    # Stable descending order: rank 0 is the most valuable account.
    order = np.argsort(-values[valid], kind="stable")
    rank = np.empty(n, dtype=int)
    rank[order] = np.arange(n)
    n_top, n_bottom = round(top * n), round(bottom * n)
    labels = np.full(n, middle_label, dtype=object)
    labels[rank < n_top] = top_label
    labels[rank >= n - n_bottom] = bottom_label
    out = np.full(len(values), pd.NA, dtype=object)
    out[valid] = labels
    return pd.Series(out, index=ltv.index, dtype=object, name="value_cohort")


# -------------------------------------------------------------------------------------------- traits


def _find_label(cohorts: pd.Series, prefix: str) -> str:
    found = [c for c in cohorts.dropna().unique() if str(c).startswith(prefix)]
    if len(found) != 1:
        raise ValueError(f"expected exactly one cohort label starting with {prefix!r}, found {found}")
    return found[0]


def _untested(attribute: str, kind: str, test: str, note: str) -> dict:
    return {
        "attribute": attribute,
        "kind": kind,
        "test": test,
        "statistic": math.nan,
        "p_value": math.nan,
        "effect_size": math.nan,
        "top_summary": math.nan,
        "bottom_summary": math.nan,
        "winning_value": "",
        "note": note,
    }


def _numeric_trait(name: str, top: pd.Series, bottom: pd.Series) -> dict:
    test = "mann-whitney u"
    a = as_float(top).dropna().to_numpy()
    b = as_float(bottom).dropna().to_numpy()
    if a.size < 2 or b.size < 2:
        return _untested(name, "numeric", test, "fewer than 2 non-null values in a cohort")
    if np.unique(np.concatenate([a, b])).size == 1:
        return _untested(name, "numeric", test, "constant in both cohorts")
    res = mannwhitneyu(a, b, alternative="two-sided")
    # Rank-biserial correlation from U of the top sample: +1 = every top value above every bottom one.
    rbc = 2.0 * float(res.statistic) / (a.size * b.size) - 1.0
    med_a, med_b = float(np.median(a)), float(np.median(b))
    direction = med_a - med_b if med_a != med_b else rbc
    winning = "higher in top" if direction > 0 else "lower in top" if direction < 0 else "no difference"
    return {
        "attribute": name,
        "kind": "numeric",
        "test": test,
        "statistic": float(res.statistic),
        "p_value": float(res.pvalue),
        "effect_size": rbc,
        "top_summary": med_a,
        "bottom_summary": med_b,
        "winning_value": winning,
        "note": "",
    }


def _categorical_trait(name: str, top: pd.Series, bottom: pd.Series, max_categories: int) -> dict:
    test = "chi-square"
    top, bottom = top.dropna(), bottom.dropna()
    if len(top) < 2 or len(bottom) < 2:
        return _untested(name, "categorical", test, "fewer than 2 non-null values in a cohort")
    labels = category_labels(pd.concat([top, bottom], ignore_index=True), max_categories)
    side = np.r_[np.zeros(len(top), dtype=int), np.ones(len(bottom), dtype=int)]
    table = pd.crosstab(pd.Series(side, name="cohort"), labels)
    table = table.loc[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return _untested(name, "categorical", test, "constant in both cohorts")
    counts = table.to_numpy()
    # scipy's default (Yates' continuity correction for a 2x2 table) for the test; Cramér's V from
    # the uncorrected statistic, so a perfect split has V = 1 exactly.
    res = chi2_contingency(counts)
    cramers_v = float(association(counts, method="cramer"))
    shares = counts / counts.sum(axis=1, keepdims=True)
    best = int(np.argmax(shares[0] - shares[1]))
    return {
        "attribute": name,
        "kind": "categorical",
        "test": test,
        "statistic": float(res.statistic),
        "p_value": float(res.pvalue),
        "effect_size": cramers_v,
        "top_summary": float(shares[0, best]),
        "bottom_summary": float(shares[1, best]),
        "winning_value": str(table.columns[best]),
        "note": "",
    }


def cohort_traits(
    attributes: pd.DataFrame,
    cohorts: pd.Series,
    alpha: float = 0.05,
    max_categories: int = 20,
) -> pd.DataFrame:
    """Attributes that differ significantly between the top and the bottom value cohort.

    Numeric attributes: Mann-Whitney U (two-sided), effect size the rank-biserial correlation
    (positive = higher in top), summaries the cohort medians. Categorical attributes (anything
    non-numeric, booleans included): chi-square on the cohort x value table (values beyond the
    ``max_categories`` most frequent lumped into ``"other"``; missing values left out), effect
    size Cramér's V, ``winning_value`` the value most over-represented in the top cohort and the
    summaries its share in each cohort. All p-values are Benjamini-Hochberg adjusted together.

    Attributes that cannot be tested (constant, or fewer than 2 non-null values on a side) are
    kept with NaN p-values, ``significant`` False and a ``note``. Rows are sorted by
    ``p_adjusted`` (untested last).

    Parameters
    ----------
    attributes : DataFrame
        One row per account, indexed like ``cohorts``.
    cohorts : Series
        Labels from :func:`value_cohorts`; the labels starting "top" and "bottom" are used.
    alpha : float
        False discovery rate for ``significant``.
    max_categories : int
        Most frequent values kept per categorical attribute.
    """
    top_label, bottom_label = _find_label(cohorts, "top"), _find_label(cohorts, "bottom")
    cohorts = align(cohorts, attributes.index)
    top_rows, bottom_rows = cohorts == top_label, cohorts == bottom_label
    rows = []
    for col in attributes.columns:
        s = attributes[col]
        if is_numeric_attribute(s):
            rows.append(_numeric_trait(str(col), s[top_rows], s[bottom_rows]))
        else:
            rows.append(_categorical_trait(str(col), s[top_rows], s[bottom_rows], max_categories))
    out = pd.DataFrame(rows, columns=[c for c in _TRAIT_COLUMNS if c not in ("p_adjusted", "significant")])
    out["p_adjusted"] = _bh_adjust(out["p_value"])
    out["significant"] = (out["p_adjusted"] < alpha).fillna(False).astype(bool)
    out = out.sort_values("p_adjusted", kind="stable", na_position="last").reset_index(drop=True)
    return out[_TRAIT_COLUMNS]


def _bh_adjust(p: pd.Series) -> pd.Series:
    """Benjamini-Hochberg adjusted p-values over the non-NaN entries; NaN stays NaN."""
    p = p.astype(float)
    out = pd.Series(np.nan, index=p.index, dtype=float)
    tested = p.notna()
    if tested.any():
        out[tested] = multipletests(p[tested].to_numpy(), method="fdr_bh")[1]
    return out


# ---------------------------------------------------------------------------------------------- lift


def value_lift(attribute: pd.Series, outcome: pd.Series, bins: int = 5) -> pd.DataFrame:
    """Winning values and ranges of one attribute: outcome rate and lift per value or range.

    Numeric attributes are cut into quantile ranges (:func:`quantile_ranges`, the same ranges as
    the negative ICP uses; a ``"missing"`` row is added when values are missing). Categorical
    attributes get one row per value for the 15 most frequent, the rest as ``"other"``, and
    ``"missing"``. Columns: value, n, rate, lift (rate / overall rate), ci_low, ci_high (95% Wilson
    interval on rate). Rows whose outcome is NA are left out; their count is in
    ``.attrs["excluded_unlabelled"]``.
    """
    y, labelled = _labelled_outcome(outcome, attribute.index)
    excluded = int((~labelled).sum())
    x = attribute[labelled]
    if is_numeric_attribute(attribute):
        ranges = quantile_ranges(x, bins)
        labels = assign_ranges(x, ranges)
        order = [*ranges["value"], MISSING]
    else:
        labels = category_labels(x, max_categories=15)
        counts = labels.value_counts()
        order = [v for v in counts.index if v not in (OTHER, MISSING)] + [OTHER, MISSING]
    grouped = y.groupby(labels.to_numpy()).agg(["size", "sum"])
    grouped = grouped.reindex([v for v in order if v in grouped.index])
    n = grouped["size"].to_numpy(dtype=int)
    positives = grouped["sum"].to_numpy(dtype=float)
    overall = float(y.mean()) if len(y) else math.nan
    rate = positives / n
    ci_low, ci_high = proportion_confint(positives, n, alpha=0.05, method="wilson")
    out = pd.DataFrame(
        {
            "value": pd.Series(grouped.index.astype(str), dtype=str),
            "n": n,
            "rate": rate,
            "lift": rate / overall if overall > 0 else np.full(len(n), math.nan),
            "ci_low": np.asarray(ci_low, dtype=float),
            "ci_high": np.asarray(ci_high, dtype=float),
        }
    )
    out.attrs["excluded_unlabelled"] = excluded
    out.attrs["overall_rate"] = overall
    return out
