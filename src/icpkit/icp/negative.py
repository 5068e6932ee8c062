"""The negative ICP: attribute values and ranges where churn (or deal loss) is significantly high.

Categorical and yes/no attributes are tested value by value: Fisher's exact test of the 2x2 table
(value vs rest) x (bad vs good). Numeric attributes are tested as a *trend* first (Mann-Whitney of
the attribute between bad and good rows); only then is the tail of the range in the trend's
direction — the lowest or highest quantile ranges, as one ``x < c`` or ``x >= c`` — tested, the
tail with the most excess bad outcomes kept (Bonferroni over the tails tried). So a driver is
monotone-consistent by construction: a middle value of an ordinal can never be one, and one
attribute yields one range, never three overlapping ones. All p-values of one outcome are
Benjamini-Hochberg adjusted together. ``lift`` and the Wilson interval are against the overall
(baseline) rate, which is what a reader compares with.

:func:`consolidate_rules` turns drivers into non-overlapping :class:`DriverRule` s, one per
attribute, which the fitted ICP applies to accounts (exclusions and the fit penalty).
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import fisher_exact, mannwhitneyu
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

from icpkit.icp.cohorts import MISSING, as_float, category_labels, is_numeric_attribute, quantile_ranges
from icpkit.icp.scorecard import format_number

log = logging.getLogger(__name__)

DRIVER_COLUMNS = [
    "outcome", "attribute", "kind", "value", "low", "high", "support", "bad_count", "bad_rate",
    "baseline_rate", "lift", "ci_low", "ci_high", "p_value", "p_adjusted", "trend_p_adjusted",
    "significant", "excess_bad", "note",
]  # fmt: skip


def _stats(support: int, bad: int, n_total: int, total_bad: int, alpha: float) -> dict[str, float]:
    """Rate, lift, Wilson CI and the Fisher p-value of one group against the rest."""
    baseline = total_bad / n_total if n_total else math.nan
    ci_low, ci_high = proportion_confint(bad, support, alpha=alpha, method="wilson")
    rest, rest_bad = n_total - support, total_bad - bad
    p_value = math.nan
    if rest > 0:
        p_value = float(fisher_exact([[bad, support - bad], [rest_bad, rest - rest_bad]]).pvalue)
    rate = bad / support
    return {
        "support": support,
        "bad_count": bad,
        "bad_rate": rate,
        "baseline_rate": baseline,
        "lift": rate / baseline if baseline > 0 else math.nan,
        "ci_low": float(ci_low),
        "ci_high": float(ci_high),
        "p_value": p_value,
        "excess_bad": support * (rate - baseline),
    }


def _category_tests(col: str, x: pd.Series, y: np.ndarray, min_support: int, alpha: float) -> list[dict]:
    labels = category_labels(x).to_numpy()
    n, total_bad = len(y), int(y.sum())
    rows = []
    for value in pd.unique(labels):
        mask = labels == value
        support, bad = int(mask.sum()), int(y[mask].sum())
        base = {"attribute": col, "kind": "category", "value": str(value), "low": math.nan, "high": math.nan}
        if support < min_support or support == n:
            note = "too few rows" if support < min_support else "same value for all rows"
            rows.append({**base, **_stats(support, bad, n, total_bad, alpha), "p_value": math.nan, "note": note})
            continue
        rows.append({**base, **_stats(support, bad, n, total_bad, alpha), "note": ""})
    return rows


def _tails(v: np.ndarray, direction: int, bins: int) -> list[tuple[str, float, float]]:
    """Candidate tails ``(label, low, high)`` in the trend's direction, from quantile edges."""
    ranges = quantile_ranges(pd.Series(v), bins)
    edges = ranges["high"].to_numpy()[:-1] if len(ranges) > 1 else np.array([])
    if direction < 0:
        return [(f"< {format_number(e)}", -math.inf, float(e)) for e in edges]
    return [(f">= {format_number(e)}", float(e), math.inf) for e in edges[::-1]]


def _numeric_test(
    col: str, x: pd.Series, y: np.ndarray, min_support: int, alpha: float, bins: int
) -> tuple[dict | None, float]:
    """The best tail in the trend's direction (or None), and the trend test's p-value."""
    v = as_float(x).to_numpy()
    known = ~np.isnan(v)
    bad_v, good_v = v[known & (y == 1)], v[known & (y == 0)]
    if len(bad_v) < 2 or len(good_v) < 2 or np.unique(v[known]).size < 2:
        return None, math.nan
    res = mannwhitneyu(bad_v, good_v, alternative="two-sided")
    direction = 1 if res.statistic > len(bad_v) * len(good_v) / 2 else -1
    n, total_bad = int(known.sum()), int(y[known].sum())
    best = None
    candidates = _tails(v[known], direction, bins)
    for label, low, high in candidates:
        mask = (v[known] >= low) & (v[known] < high)
        support = int(mask.sum())
        if support < min_support or n - support < min_support:
            continue
        stats = _stats(support, int(y[known][mask].sum()), n, total_bad, alpha)
        if best is None or stats["excess_bad"] > best["excess_bad"]:
            best = {"attribute": col, "kind": "range", "value": label, "low": low, "high": high, **stats, "note": ""}
    if best is not None and not math.isnan(best["p_value"]):
        best["p_value"] = min(1.0, best["p_value"] * len(candidates))  # Bonferroni over the tails tried
    return best, float(res.pvalue)


def risk_drivers(
    attributes: pd.DataFrame,
    bad: pd.Series,
    outcome_name: str,
    min_support: int = 30,
    alpha: float = 0.05,
    bins: int = 5,
) -> pd.DataFrame:
    """Attribute values and tails whose bad-outcome rate (churn, loss) is significantly high.

    Parameters
    ----------
    attributes : pandas.DataFrame
        Prepared attribute columns (numbers, or text categories; booleans as two categories).
    bad : pandas.Series
        1 where the account churned / the deal was lost, 0 otherwise; NA rows are left out.
    outcome_name : str
        Written into the ``outcome`` column ("churn", "loss").
    min_support, alpha, bins : optional
        Fewest rows a group needs; false discovery rate; quantile ranges tried for numeric tails.

    Returns
    -------
    pandas.DataFrame
        :data:`DRIVER_COLUMNS`; ``significant`` drivers first by ``excess_bad`` (bad outcomes above
        what the baseline rate would give: ``support x (rate - baseline)``).
    """
    y_all = as_float(bad.reset_index(drop=True))
    labelled = y_all.notna().to_numpy()
    y = y_all[labelled].to_numpy().astype(int)
    X = attributes.reset_index(drop=True)[labelled]
    rows, trend = [], {}
    for col in X.columns:
        if is_numeric_attribute(X[col]):
            best, trend[str(col)] = _numeric_test(str(col), X[col], y, min_support, alpha, bins)
            rows += [best] if best is not None else []
            missing = X[col].isna()
            if missing.any():
                rows += [r for r in _category_tests(str(col), missing.map({True: MISSING, False: "known"}), y,
                                                     min_support, alpha) if r["value"] == MISSING]  # fmt: skip
        else:
            rows += _category_tests(str(col), X[col], y, min_support, alpha)
    return _finish(pd.DataFrame(rows), trend, outcome_name, alpha)


def _bh(p: pd.Series) -> pd.Series:
    out = pd.Series(np.nan, index=p.index, dtype=float)
    tested = p.notna()
    if tested.any():
        out[tested] = multipletests(p[tested].to_numpy(dtype=float), method="fdr_bh")[1]
    return out


def _finish(out: pd.DataFrame, trend: dict[str, float], outcome: str, alpha: float) -> pd.DataFrame:
    if out.empty:
        return pd.DataFrame(columns=DRIVER_COLUMNS).astype({"significant": bool})
    out.insert(0, "outcome", outcome)
    out["p_adjusted"] = _bh(out["p_value"])
    trend_adj = _bh(pd.Series(trend, dtype=float))
    out["trend_p_adjusted"] = out["attribute"].map(trend_adj).where(out["kind"] == "range")
    trend_ok = (out["kind"] != "range") | (out["trend_p_adjusted"] < alpha)
    out["significant"] = (
        (out["p_adjusted"] < alpha) & (out["lift"] > 1) & (out["ci_low"] > out["baseline_rate"]) & trend_ok
    ).astype(bool)
    out = out.sort_values(["significant", "excess_bad"], ascending=[False, False], kind="stable", na_position="last")
    return out[DRIVER_COLUMNS].reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# rules the fitted ICP applies


@dataclass
class DriverRule:
    """One non-overlapping condition on one attribute, from one or more drivers.

    ``kind`` is ``"in"`` (``values``), ``"below"`` (``< high``), ``"at_least"`` (``>= low``) or
    ``"missing"``. It matches prepared attribute columns (text categories, numbers).
    """

    attribute: str
    kind: str
    values: list[str] = field(default_factory=list)
    low: float | None = None
    high: float | None = None
    outcomes: list[str] = field(default_factory=list)
    lift: float = 1.0
    bad_rate: float = math.nan
    baseline_rate: float = math.nan
    support: int = 0
    excess_bad: float = 0.0
    points: float = 0.0
    accounts: int = 0

    def matches(self, frame: pd.DataFrame) -> np.ndarray:
        """Boolean mask of rows of ``frame`` this rule applies to (missing column: none)."""
        if self.attribute not in frame.columns:
            return np.zeros(len(frame), dtype=bool)
        s = frame[self.attribute]
        if self.kind == "missing":
            return s.isna().to_numpy()
        if self.kind == "in":
            return category_labels(s).isin(self.values).to_numpy()
        v = as_float(s).to_numpy()
        with np.errstate(invalid="ignore"):
            return (v < self.high) if self.kind == "below" else (v >= self.low)

    def condition(self) -> str:
        """The rule in words, e.g. ``"tickets >= 5"`` or ``"industry in {retail, travel}"``."""
        if self.kind == "missing":
            return f"{self.attribute} is missing"
        if self.kind == "in":
            return f"{self.attribute} = {self.values[0]}" if len(self.values) == 1 else (
                f"{self.attribute} in {{{', '.join(self.values)}}}"
            )
        return f"{self.attribute} < {format_number(self.high)}" if self.kind == "below" else (
            f"{self.attribute} >= {format_number(self.low)}"
        )

    def to_dict(self) -> dict[str, Any]:
        """The rule as a JSON-ready dict, with its ``condition`` text."""
        d = asdict(self)
        d["condition"] = self.condition()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DriverRule:
        """Rebuild a rule from :meth:`to_dict` output (its ``condition`` text is ignored)."""
        return cls(**{k: v for k, v in d.items() if k != "condition"})


def _rule_of(driver: dict) -> DriverRule:
    if driver["kind"] == "range":
        below = math.isinf(float(driver["low"]))
        kind, low, high = ("below", None, float(driver["high"])) if below else ("at_least", float(driver["low"]), None)
        rule = DriverRule(str(driver["attribute"]), kind, low=low, high=high)
    elif driver["value"] == MISSING:
        rule = DriverRule(str(driver["attribute"]), "missing")
    else:
        rule = DriverRule(str(driver["attribute"]), "in", values=[str(driver["value"])])
    rule.outcomes = [str(driver["outcome"])]
    for key in ("lift", "bad_rate", "baseline_rate", "support", "excess_bad"):
        setattr(rule, key, float(driver[key]) if key != "support" else int(driver[key]))
    return rule


def consolidate_rules(drivers: pd.DataFrame) -> list[DriverRule]:
    """Non-overlapping rules, merged across outcomes, strongest first.

    A category value is one rule (the same value found for churn and for loss is one rule naming
    both); of several ranges on one attribute the one with the most excess bad outcomes is kept,
    so no two rules overlap.
    """
    rules: dict[tuple[str, ...], DriverRule] = {}
    for d in drivers.sort_values("excess_bad", ascending=False, kind="stable").to_dict(orient="records"):
        rule = _rule_of(d)
        key = (
            (rule.attribute, "range")
            if rule.kind in ("below", "at_least")
            else (rule.attribute, rule.kind, *rule.values)
        )
        if key in rules:
            rules[key].outcomes = sorted(set(rules[key].outcomes) | set(rule.outcomes))
        else:
            rules[key] = rule
    return sorted(rules.values(), key=lambda r: -r.excess_bad)


def count_matches(rules: list[DriverRule], frame: pd.DataFrame) -> list[DriverRule]:
    """Set each rule's ``accounts``: how many rows of ``frame`` (the book) it applies to."""
    for rule in rules:
        rule.accounts = int(rule.matches(frame).sum())
    return rules


def penalty_points(rules: list[DriverRule], frame: pd.DataFrame, max_points: float) -> np.ndarray:
    """Penalty per row: each matching rule costs its ``points``; at most ``max_points`` in all."""
    total = np.zeros(len(frame), dtype=float)
    for rule in rules:
        total += np.where(rule.matches(frame), rule.points, 0.0)
    return np.minimum(total, max_points)


def cap_share(
    rules: list[DriverRule], frame: pd.DataFrame, max_share: float
) -> tuple[list[DriverRule], list[DriverRule]]:
    """Keep rules, highest lift first, while together they touch at most ``max_share`` of the book.

    A rule that touches half the book with a small lift says little about any one account, while a
    specific high-risk value is what a penalty or an exclusion is for. Returns the kept rules and the
    left-out ones (the profile says why).
    """
    kept, left_out = [], []
    hit = np.zeros(len(frame), dtype=bool)
    for rule in sorted(rules, key=lambda r: -r.lift):
        together = hit | rule.matches(frame)
        if together.mean() <= max_share:
            kept.append(rule)
            hit = together
        else:
            left_out.append(rule)
    return sorted(kept, key=lambda r: -r.excess_bad), left_out
