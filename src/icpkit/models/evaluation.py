"""Honest evaluation of a binary propensity model: metrics with bootstrap CIs, tables and plots.

Every function takes the true labels (0/1) and the predicted probabilities of the positive class
and is pure: nothing is printed, nothing global is touched. Plots are built on
:class:`matplotlib.figure.Figure` directly (no ``pyplot``), so no figure is registered with a
GUI backend or leaked; callers save them with ``fig.savefig``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from numpy.typing import ArrayLike
from sklearn.metrics import roc_curve
from statsmodels.stats.proportion import proportion_confint

log = logging.getLogger(__name__)

METRIC_NAMES: tuple[str, ...] = ("roc_auc", "pr_auc", "log_loss", "brier", "top_decile_lift", "ece")


# --------------------------------------------------------------------------------------------- inputs


def _check(y_true: ArrayLike, p: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(y, p)`` as 1-D float arrays after checking lengths and ranges."""
    y = np.asarray(y_true, dtype=float).ravel()
    q = np.asarray(p, dtype=float).ravel()
    if y.shape != q.shape:
        raise ValueError(f"y_true and p have different lengths: {y.size} != {q.size}")
    if y.size == 0:
        raise ValueError("cannot evaluate on zero rows")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("y_true must contain only 0 and 1")
    if not np.isfinite(q).all() or (q < 0).any() or (q > 1).any():
        raise ValueError("p must be finite probabilities in [0, 1]")
    return y, q


def _one_class(y: np.ndarray) -> bool:
    return bool(y.min() == y.max())


def _bin_index(p: np.ndarray, n_bins: int) -> np.ndarray:
    """Equal-width bins on [0, 1], left-closed; ``p == 1`` falls in the last bin."""
    if n_bins < 1:
        raise ValueError("n_bins must be >= 1")
    return np.clip(np.floor(p * n_bins).astype(int), 0, n_bins - 1)


def _order_desc(p: np.ndarray) -> np.ndarray:
    """Row order by ``p`` descending; ties keep their original order."""
    return np.argsort(-p, kind="stable")


# -------------------------------------------------------------------------------------------- metrics
#
# Every metric is computed from the same few sums over a resample: per distinct score value the
# positives and rows drawn, per calibration bin the labels and scores drawn, per row the log loss
# and squared error. A resample is a row of an index matrix (``n_resamples x n``); the point
# estimate is the identity resample ``arange(n)``. So the point metrics and all bootstrap
# resamples go through one vectorised code path with no per-call validation.

#: Resample-matrix cells processed at once. A block's working set is ~100 bytes per cell (the
#: index matrix, its gathered keys and weights, a dozen per-resample x per-score matrices), so
#: 1M cells is ~120 MB at any test size; the draws do not depend on the block size.
_BLOCK_CELLS = 1 << 20


@dataclass(frozen=True)
class _Rows:
    """Per-row quantities of checked ``(y, p)`` that every resample reuses."""

    y: np.ndarray
    p: np.ndarray
    #: Index of the row's distinct score value, 0 = highest score.
    group_desc: np.ndarray
    n_groups: int
    bins: np.ndarray
    n_bins: int
    log_loss: np.ndarray
    squared_error: np.ndarray

    @classmethod
    def of(cls, y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> _Rows:
        uniq, asc = np.unique(p, return_inverse=True)
        # scikit-learn clips both class probabilities to [eps, 1 - eps] (eps of float64).
        eps = np.finfo(np.float64).eps
        p_pos = np.clip(p, eps, 1 - eps)
        p_neg = np.clip(1.0 - p, eps, 1 - eps)
        return cls(
            y=y,
            p=p,
            group_desc=(uniq.size - 1 - asc).astype(np.int64),
            n_groups=int(uniq.size),
            bins=_bin_index(p, n_bins).astype(np.int64),
            n_bins=n_bins,
            log_loss=np.where(y == 1, -np.log(p_pos), -np.log(p_neg)),
            squared_error=(p - y) ** 2,
        )


def _sums(key: np.ndarray, n_keys: int, idx: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """``out[b, k]`` = sum of ``weights`` (or count) over the rows of resample ``b`` whose key is ``k``."""
    b = idx.shape[0]
    flat = (np.arange(b, dtype=np.int64)[:, None] * n_keys + key[idx]).ravel()
    w = None if weights is None else weights[idx].ravel()
    return np.bincount(flat, weights=w, minlength=b * n_keys).reshape(b, n_keys).astype(float)


def _metrics_batch(rows: _Rows, idx: np.ndarray) -> dict[str, np.ndarray]:
    """Every metric for each resample (row of ``idx``); NaN where a metric is undefined."""
    b, n = idx.shape
    with np.errstate(divide="ignore", invalid="ignore"):
        # Ranking metrics over distinct score values, highest score first.
        pos = _sums(rows.group_desc, rows.n_groups, idx, rows.y)
        tot = _sums(rows.group_desc, rows.n_groups, idx)
        neg = tot - pos
        n_pos = pos.sum(axis=1)
        n_neg = n - n_pos
        both = (n_pos > 0) & (n_neg > 0)
        # ROC AUC = P(score of a positive > score of a negative) + 0.5 P(tie): the Mann-Whitney
        # statistic with mid-ranks, which is what the trapezoidal ROC area gives with ties.
        neg_below = n_neg[:, None] - np.cumsum(neg, axis=1)
        auc = (pos * (neg_below + 0.5 * neg)).sum(axis=1) / (n_pos * n_neg)
        # Average precision: sum over thresholds of (recall step) x precision, as scikit-learn.
        tps = np.cumsum(pos, axis=1)
        drawn = np.cumsum(tot, axis=1)
        precision = np.where(drawn > 0, tps / np.where(drawn > 0, drawn, 1.0), 0.0)
        ap = (pos * precision).sum(axis=1) / n_pos
        # Top-decile lift: the first ceil(n/10) rows after a stable sort by score descending. The
        # distinct-value group at the cut contributes its first rows *in resample order*, which
        # is exactly what a stable sort of the resampled rows does.
        k = math.ceil(n / 10)
        cut = np.argmax(drawn >= k, axis=1)
        rows_b = np.arange(b)
        before = np.where(cut > 0, drawn[rows_b, cut - 1], 0.0)
        pos_before = np.where(cut > 0, tps[rows_b, cut - 1], 0.0)
        in_cut = rows.group_desc[idx] == cut[:, None]
        take = in_cut & (np.cumsum(in_cut, axis=1) <= (k - before)[:, None])
        pos_top = pos_before + (take & (rows.y[idx] == 1)).sum(axis=1)
        lift = (pos_top / k) / (n_pos / n)
        # Calibration over equal-width bins:
        # sum_k (n_k/n) |mean y_k - mean p_k| = sum_k |sum y_k - sum p_k| / n.
        bin_y = _sums(rows.bins, rows.n_bins, idx, rows.y)
        bin_p = _sums(rows.bins, rows.n_bins, idx, rows.p)
        ece = np.abs(bin_y - bin_p).sum(axis=1) / n
        out = {
            "roc_auc": np.where(both, auc, np.nan),
            "pr_auc": np.where(both, ap, np.nan),
            "log_loss": rows.log_loss[idx].sum(axis=1) / n,
            "brier": rows.squared_error[idx].sum(axis=1) / n,
            "top_decile_lift": np.where(n_pos > 0, lift, np.nan),
            "ece": ece,
        }
    return {name: out[name] for name in METRIC_NAMES}


def _point(y: np.ndarray, q: np.ndarray, n_bins: int = 10) -> dict[str, float]:
    """All metrics on already-checked arrays."""
    batch = _metrics_batch(_Rows.of(y, q, n_bins), np.arange(y.size, dtype=np.int64)[None, :])
    return {name: float(values[0]) for name, values in batch.items()}


def roc_auc(y_true: ArrayLike, score: ArrayLike) -> float:
    """ROC-AUC of any real-valued score (ties count one half); NaN with a single class.

    Equal to :func:`sklearn.metrics.roc_auc_score` without its input validation, so it is cheap
    to call many times (single-feature and permutation checks).
    """
    y = np.asarray(y_true, dtype=float).ravel()
    s = np.asarray(score, dtype=float).ravel()
    if y.shape != s.shape:
        raise ValueError(f"y_true and score have different lengths: {y.size} != {s.size}")
    n_pos = float(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    # Mid-ranks of the scores (ties share their average rank): Mann-Whitney U.
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    upper = np.cumsum(counts)
    mid_rank = (upper - (counts - 1) / 2.0)[inverse]
    return float((mid_rank[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def log_loss(y_true: ArrayLike, p: ArrayLike) -> float:
    """Mean binary log loss (probabilities clipped to [eps, 1 - eps] as scikit-learn does)."""
    y, q = _check(y_true, p)
    return float(_Rows.of(y, q).log_loss.mean())


def top_decile_lift(y_true: ArrayLike, p: ArrayLike) -> float:
    """Positive rate among the top 10% of rows by ``p`` divided by the overall positive rate.

    The top decile is the first ``ceil(n / 10)`` rows after a stable sort by ``p`` descending.
    Returns NaN when there are no positives.
    """
    y, q = _check(y_true, p)
    return _point(y, q)["top_decile_lift"]


def expected_calibration_error(y_true: ArrayLike, p: ArrayLike, n_bins: int = 10) -> float:
    """Expected calibration error over equal-width bins on [0, 1].

    ``sum_k (n_k / n) * |mean(y)_k - mean(p)_k|`` over non-empty bins ``k``.
    """
    y, q = _check(y_true, p)
    if n_bins < 1:
        raise ValueError("n_bins must be >= 1")
    return _point(y, q, n_bins)["ece"]


def compute_metrics(y_true: ArrayLike, p: ArrayLike) -> dict[str, float]:
    """Compute every metric in :data:`METRIC_NAMES`.

    ``roc_auc`` and ``pr_auc`` (average precision) are NaN when ``y_true`` has one class only;
    ``top_decile_lift`` is NaN when there are no positives. ROC-AUC, average precision, log
    loss and Brier equal scikit-learn's (tested to 1e-12).
    """
    y, q = _check(y_true, p)
    if _one_class(y):
        log.warning("only one class in y_true (n=%d): ROC AUC and PR AUC are undefined", y.size)
    return _point(y, q)


def bootstrap_ci(
    y_true: ArrayLike,
    p: ArrayLike,
    n_boot: int = 200,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap confidence interval for every metric.

    Rows are resampled with replacement using ``np.random.default_rng(seed)`` (resample ``b`` is
    row ``b`` of ``rng.integers(0, n, size=(n_boot, n))``, the same draws as ``n_boot``
    successive ``rng.integers(0, n, size=n)`` calls). All metrics of all resamples are computed
    together on that index matrix, in blocks. Resamples in which a metric is undefined (a single
    class for the AUCs, no positives for the lift) are skipped for that metric; a metric that is
    never defined gets ``(nan, nan)``.

    Returns
    -------
    dict
        ``{metric: (low, high)}`` at level ``1 - alpha``.
    """
    y, q = _check(y_true, p)
    if n_boot < 1:
        raise ValueError("n_boot must be >= 1")
    if not 0 < alpha < 1:
        raise ValueError("alpha must be in (0, 1)")
    rng = np.random.default_rng(seed)
    rows = _Rows.of(y, q)
    block = max(1, _BLOCK_CELLS // y.size)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in METRIC_NAMES}
    for start in range(0, n_boot, block):
        idx = rng.integers(0, y.size, size=(min(block, n_boot - start), y.size))
        for name, values in _metrics_batch(rows, idx).items():
            parts[name].append(values)
    ci: dict[str, tuple[float, float]] = {}
    for name, chunks in parts.items():
        values = np.concatenate(chunks)
        values = values[np.isfinite(values)]
        if not values.size:
            ci[name] = (float("nan"), float("nan"))
            continue
        lo, hi = np.percentile(values, [100 * alpha / 2, 100 * (1 - alpha / 2)])
        ci[name] = (float(lo), float(hi))
        skipped = n_boot - values.size
        if skipped:
            log.debug("bootstrap %s: %d of %d resamples undefined and skipped", name, skipped, n_boot)
    return ci


@dataclass
class Evaluation:
    """Point metrics, their bootstrap CIs (empty when not computed) and the sample's size."""

    metrics: dict[str, float]
    ci: dict[str, tuple[float, float]]
    n: int
    n_positive: int

    def as_flat(self, prefix: str) -> dict[str, float]:
        """Flatten for ``mlflow.log_metrics``.

        Keys are ``{prefix}_{metric}``, ``{prefix}_{metric}_ci_low``, ``{prefix}_{metric}_ci_high``
        (only for metrics with a CI), ``{prefix}_n`` and ``{prefix}_n_positive`` (no underscore
        when ``prefix`` is empty).
        """
        pre = f"{prefix}_" if prefix else ""
        flat: dict[str, float] = {}
        for name, value in self.metrics.items():
            flat[f"{pre}{name}"] = float(value)
            if name in self.ci:
                lo, hi = self.ci[name]
                flat[f"{pre}{name}_ci_low"] = float(lo)
                flat[f"{pre}{name}_ci_high"] = float(hi)
        flat[f"{pre}n"] = float(self.n)
        flat[f"{pre}n_positive"] = float(self.n_positive)
        return flat


def evaluate(y_true: ArrayLike, p: ArrayLike, n_boot: int = 200, seed: int = 0) -> Evaluation:
    """Point metrics plus 95% percentile bootstrap CIs (see :func:`bootstrap_ci`).

    Parameters
    ----------
    y_true, p
        Labels (0/1) and predicted probabilities of the positive class.
    n_boot
        Bootstrap resamples; 0 gives the point metrics only (``ci`` is empty).
    seed
        Seed of the resampling.
    """
    y, q = _check(y_true, p)
    if n_boot < 0:
        raise ValueError("n_boot must be >= 0")
    return Evaluation(
        metrics=compute_metrics(y, q),
        ci=bootstrap_ci(y, q, n_boot=n_boot, seed=seed) if n_boot else {},
        n=int(y.size),
        n_positive=int(y.sum()),
    )


# --------------------------------------------------------------------------------------------- tables


def gains_table(y_true: ArrayLike, p: ArrayLike, n_bins: int = 10) -> pd.DataFrame:
    """Gains/lift table by score quantile (decile 1 = highest ``p``).

    Rows are sorted stably by ``p`` descending and split into ``n_bins`` groups of near-equal
    size (the first groups take the remainder, so decile 1 has ``ceil(n / n_bins)`` rows).

    Returns
    -------
    pandas.DataFrame
        Columns ``decile, n, positives, rate, min_p, max_p, cum_share_population,
        cum_share_positives, lift`` (``lift`` = rate / overall rate; NaN without positives).
    """
    y, q = _check(y_true, p)
    if n_bins < 1:
        raise ValueError("n_bins must be >= 1")
    order = _order_desc(q)
    groups = [g for g in np.array_split(order, n_bins) if g.size]
    total_pos = y.sum()
    base = y.mean()
    rows: list[dict[str, Any]] = []
    cum_n = 0
    cum_pos = 0.0
    for i, g in enumerate(groups, start=1):
        pos = float(y[g].sum())
        cum_n += g.size
        cum_pos += pos
        rate = pos / g.size
        rows.append(
            {
                "decile": i,
                "n": int(g.size),
                "positives": int(pos),
                "rate": rate,
                "min_p": float(q[g].min()),
                "max_p": float(q[g].max()),
                "cum_share_population": cum_n / y.size,
                "cum_share_positives": cum_pos / total_pos if total_pos else float("nan"),
                "lift": rate / base if base else float("nan"),
            }
        )
    return pd.DataFrame(rows)


def calibration_table(y_true: ArrayLike, p: ArrayLike, n_bins: int = 10) -> pd.DataFrame:
    """Reliability table over equal-width bins on [0, 1] (non-empty bins only).

    Returns
    -------
    pandas.DataFrame
        Columns ``bin, bin_low, bin_high, n, positives, mean_predicted, observed_rate, ci_low,
        ci_high``, where the CI is the Wilson 95% interval on ``observed_rate``.
    """
    y, q = _check(y_true, p)
    idx = _bin_index(q, n_bins)
    n_k = np.bincount(idx, minlength=n_bins)
    pos_k = np.bincount(idx, weights=y, minlength=n_bins)
    sum_p = np.bincount(idx, weights=q, minlength=n_bins)
    k = np.flatnonzero(n_k > 0)
    lo, hi = proportion_confint(pos_k[k], n_k[k], alpha=0.05, method="wilson")
    return pd.DataFrame(
        {
            "bin": k.astype(int),
            "bin_low": k / n_bins,
            "bin_high": (k + 1) / n_bins,
            "n": n_k[k].astype(int),
            "positives": pos_k[k].astype(int),
            "mean_predicted": sum_p[k] / n_k[k],
            "observed_rate": pos_k[k] / n_k[k],
            "ci_low": np.asarray(lo, dtype=float),
            "ci_high": np.asarray(hi, dtype=float),
        }
    )


# ---------------------------------------------------------------------------------------------- plots


#: Margins (figure fractions) of the evaluation plots, whose labels never change: set once
#: instead of by the constrained layout, which measured every text and took half of each render.
_FIXED_MARGINS = {"left": 0.13, "right": 0.96, "bottom": 0.1, "top": 0.92}


def new_figure(figsize: tuple[float, float], margins: dict[str, float] | None = None) -> Figure:
    """A figure that is not registered with pyplot (nothing to close, nothing leaked).

    Laid out by the constrained layout, or with fixed ``margins`` (``subplots_adjust``
    fractions) when the labels are known in advance.
    """
    if margins is None:
        return Figure(figsize=figsize, layout="constrained")
    fig = Figure(figsize=figsize)
    fig.subplots_adjust(**margins)
    return fig


def _diagonal(ax: Axes, label: str) -> None:
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label=label)


def plot_roc(y_true: ArrayLike, p: ArrayLike, title: str, label: str = "model") -> Figure:
    """ROC curve of one model with the chance diagonal; the legend shows the AUC.

    With a single class the curve is undefined: only the diagonal is drawn (and a warning logged).
    """
    y, q = _check(y_true, p)
    fig = new_figure((6, 5.5), _FIXED_MARGINS)
    ax = fig.add_subplot()
    if _one_class(y):
        log.warning("plot_roc: only one class in y_true, ROC curve undefined")
    else:
        fpr, tpr, _ = roc_curve(y, q)
        ax.plot(fpr, tpr, linewidth=2, label=f"{label} (AUC = {roc_auc(y, q):.3f})")
    _diagonal(ax, "chance (AUC = 0.5)")
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="False positive rate", ylabel="True positive rate")
    ax.set_title(title)
    ax.set_aspect("equal")
    ax.legend(loc="lower right")
    return fig


def plot_calibration(y_true: ArrayLike, p: ArrayLike, title: str, n_bins: int = 10) -> Figure:
    """Reliability diagram over a histogram of the predicted probabilities.

    Observed rate with Wilson 95% CI bars against mean predicted probability, plus the diagonal.
    """
    y, q = _check(y_true, p)
    table = calibration_table(y, q, n_bins=n_bins)
    fig = new_figure((6, 7), {**_FIXED_MARGINS, "bottom": 0.08, "top": 0.94, "hspace": 0.08})
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    _diagonal(top, "perfectly calibrated")
    yerr = np.vstack(
        [
            (table["observed_rate"] - table["ci_low"]).clip(lower=0),
            (table["ci_high"] - table["observed_rate"]).clip(lower=0),
        ]
    )
    top.errorbar(
        table["mean_predicted"],
        table["observed_rate"],
        yerr=yerr,
        marker="o",
        capsize=3,
        label=f"model (ECE = {expected_calibration_error(y, q, n_bins):.3f})",
    )
    top.set(xlim=(0, 1), ylim=(0, 1), ylabel="Observed positive rate")
    top.set_title(title)
    top.legend(loc="upper left")
    bottom.hist(q, bins=np.linspace(0, 1, n_bins + 1), color="grey", edgecolor="white")
    bottom.set(xlabel="Predicted probability", ylabel="Rows")
    return fig


def plot_gains(y_true: ArrayLike, p: ArrayLike, title: str) -> Figure:
    """Cumulative gains curve with the random-targeting baseline.

    Share of positives captured against share of rows contacted, rows ranked by ``p`` descending.
    """
    y, q = _check(y_true, p)
    fig = new_figure((6, 5.5), _FIXED_MARGINS)
    ax = fig.add_subplot()
    total = y.sum()
    if total == 0:
        log.warning("plot_gains: no positives, gains curve undefined")
    else:
        captured = np.concatenate([[0.0], np.cumsum(y[_order_desc(q)]) / total])
        share = np.arange(y.size + 1) / y.size
        ax.plot(share, captured, linewidth=2, label=f"model (top-decile lift = {top_decile_lift(y, q):.2f})")
    _diagonal(ax, "random")
    ax.set(
        xlim=(0, 1),
        ylim=(0, 1.01),
        xlabel="Share of rows contacted (highest score first)",
        ylabel="Share of positives captured",
    )
    ax.set_title(title)
    ax.legend(loc="lower right")
    return fig



