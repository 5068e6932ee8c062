"""Outcome rates and revenue per fit tier, and a check that better tiers really do better."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from statsmodels.stats.contingency_tables import Table
from statsmodels.stats.proportion import proportions_ztest

from icpkit.icp.cohorts import align, as_float
from icpkit.icp.scores import TIER_ORDER

DEFAULT_ORDER: tuple[str, ...] = tuple(TIER_ORDER)


def tier_trend(tiers: np.ndarray, y: np.ndarray, order: Sequence[str] = DEFAULT_ORDER) -> dict[str, float | bool]:
    """Do better tiers have higher rates across *all* tiers? A linear-by-linear trend test.

    The tiers x outcome table is tested for ordinal association (Cochran-Armitage form, tiers
    scored 0 for the best down): a negative z means the rate falls from the best tier to the worst.
    ``orders`` is True when that trend is significant at ``p < 0.05`` in the right direction.

    Returns
    -------
    dict
        z, p_value (two-sided), orders, tiers (the tiers with rows, best first), n.
    """
    tiers = np.asarray(tiers, dtype=object)
    y = np.asarray(y, dtype=float)
    known = ~np.isnan(y) & np.isin(tiers, list(order))
    present = [t for t in order if (tiers[known] == t).any()]
    out: dict[str, float | bool] = {"z": math.nan, "p_value": math.nan, "orders": False, "n": int(known.sum())}
    out["tiers"] = present  # type: ignore[assignment]
    if len(present) < 2 or len(np.unique(y[known])) < 2:
        return out
    counts = np.array([[np.sum((tiers[known] == t) & (y[known] == v)) for v in (0.0, 1.0)] for t in present])
    res = Table(counts).test_ordinal_association()
    out["z"], out["p_value"] = float(res.zscore), float(res.pvalue)
    out["orders"] = bool(res.zscore < 0 and res.pvalue < 0.05)
    return out


def _summarise(
    mask: np.ndarray, outcomes: dict[str, pd.Series], revenue: pd.Series | None
) -> dict[str, float | int]:
    row: dict[str, float | int] = {"accounts": int(mask.sum())}
    for name, y in outcomes.items():
        labelled = y[mask].dropna()
        row[f"{name}_rate"] = float(labelled.mean()) if len(labelled) else math.nan
        row[f"{name}_n"] = int(len(labelled))
    if revenue is not None:
        total = float(revenue[mask].sum())
        row["revenue"] = total
        row["revenue_per_account"] = total / row["accounts"] if row["accounts"] else math.nan
    return row


def tier_table(
    tiers: pd.Series,
    outcomes: dict[str, pd.Series],
    revenue: pd.Series | None,
    order: Sequence[str] = DEFAULT_ORDER,
) -> pd.DataFrame:
    """Accounts, outcome rates and revenue per tier, best tier first, then an "All" row.

    For each outcome ``name`` there is ``<name>_rate`` (mean of the 0/1 labels, NA ignored) and
    ``<name>_n`` (labelled rows). ``revenue`` and ``revenue_per_account`` are present when
    ``revenue`` is given (NA revenue counts as 0). Tiers of ``order`` with no accounts are kept
    (rates NaN); tier labels not in ``order`` follow it. All inputs share the account index.
    """
    ys = {name: as_float(align(y, tiers.index)) for name, y in outcomes.items()}
    rev = None if revenue is None else as_float(align(revenue, tiers.index)).fillna(0.0)
    extra = sorted(str(t) for t in tiers.dropna().unique() if t not in order)
    labels = tiers.astype(object)
    rows = []
    for tier in [*order, *extra]:
        rows.append({"tier": tier, **_summarise((labels == tier).to_numpy(), ys, rev)})
    rows.append({"tier": "All", **_summarise(np.ones(len(tiers), dtype=bool), ys, rev)})
    return pd.DataFrame(rows)


def check_monotone(
    table: pd.DataFrame, rate_columns: Sequence[str], min_labelled: int = 20, alpha: float | None = None
) -> list[str]:
    """Warnings where a better tier has a lower rate than the next tier below it.

    Rows are taken in table order (best first), the "All" row ignored. A tier with fewer than
    ``min_labelled`` labelled rows (``<name>_n``, else ``accounts``) is not compared, and a warning
    says so; comparisons then skip over it. Returns an empty list when every rate is monotone.

    With ``alpha``, a reversal is tested (two-proportion z-test of the two tiers' rates): a
    significant one reads "... is below ...", one within noise reads "... not significantly
    different ..." so that a flat outcome is not mistaken for a broken tiering.
    """
    tiers = table[table["tier"] != "All"]
    warnings: list[str] = []
    for col in rate_columns:
        n_col = col[: -len("_rate")] + "_n" if col.endswith("_rate") else ""
        n_col = n_col if n_col in table.columns else "accounts"
        checked: list[tuple[str, float, int]] = []
        for r in tiers.to_dict(orient="records"):
            tier, rate, n = str(r["tier"]), float(r[col]), int(r[n_col])
            if n < min_labelled:
                warnings.append(f"{col}: {tier} has only {n} labelled rows (< {min_labelled}); not checked")
                continue
            checked.append((tier, rate, n))
        for (upper, upper_rate, upper_n), (lower, lower_rate, lower_n) in zip(
            checked[:-1], checked[1:], strict=True
        ):
            if upper_rate >= lower_rate:
                continue
            text = f"{col}: {upper} ({upper_rate:.2f}) is below {lower} ({lower_rate:.2f})"
            if alpha is not None:
                counts = np.array([round(upper_rate * upper_n), round(lower_rate * lower_n)])
                p_value = float(proportions_ztest(counts, np.array([upper_n, lower_n]))[1])
                if not p_value < alpha:
                    text = (
                        f"{col}: {upper} ({upper_rate:.2f}) and {lower} ({lower_rate:.2f}) are not "
                        f"significantly different (p = {p_value:.2f})"
                    )
            warnings.append(text)
    return warnings
