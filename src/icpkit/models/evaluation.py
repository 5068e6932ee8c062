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
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    log_loss,
    roc_auc_score,
    roc_curve,
)
from statsmodels.stats.proportion import proportion_confint

logger = logging.getLogger(__name__)

METRIC_NAMES: tuple[str, ...] = ("roc_auc", "pr_auc", "log_loss", "brier", "top_decile_lift", "ece")
#: Metrics that are undefined when only one class is present.
_RANKING_METRICS = frozenset({"roc_auc", "pr_auc"})


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


def top_decile_lift(y_true: ArrayLike, p: ArrayLike) -> float:
    """Positive rate among the top 10% of rows by ``p`` divided by the overall positive rate.

    The top decile is the first ``ceil(n / 10)`` rows after a stable sort by ``p`` descending.
    Returns NaN when there are no positives.
    """
    y, q = _check(y_true, p)
    base = y.mean()
    if base == 0:
        return float("nan")
    k = math.ceil(y.size / 10)
    return float(y[_order_desc(q)[:k]].mean() / base)


def expected_calibration_error(y_true: ArrayLike, p: ArrayLike, n_bins: int = 10) -> float:
    """Expected calibration error over equal-width bins on [0, 1].

    ``sum_k (n_k / n) * |mean(y)_k - mean(p)_k|`` over non-empty bins ``k``.
    """
    y, q = _check(y_true, p)
    idx = _bin_index(q, n_bins)
    n_k = np.bincount(idx, minlength=n_bins)
    sum_y = np.bincount(idx, weights=y, minlength=n_bins)
    sum_p = np.bincount(idx, weights=q, minlength=n_bins)
    filled = n_k > 0
    gaps = np.abs(sum_y[filled] - sum_p[filled]) / n_k[filled]
    return float(np.sum(n_k[filled] / y.size * gaps))


def _metrics(y: np.ndarray, q: np.ndarray) -> dict[str, float]:
    """All metrics on already-checked arrays."""
    nan = float("nan")
    one_class = _one_class(y)
    return {
        "roc_auc": nan if one_class else float(roc_auc_score(y, q)),
        "pr_auc": nan if one_class else float(average_precision_score(y, q)),
        "log_loss": float(log_loss(y, q, labels=[0, 1])),
        "brier": float(brier_score_loss(y, q, labels=[0, 1])),
        "top_decile_lift": top_decile_lift(y, q),
        "ece": expected_calibration_error(y, q),
    }


def compute_metrics(y_true: ArrayLike, p: ArrayLike) -> dict[str, float]:
    """Compute every metric in :data:`METRIC_NAMES`.

    ``roc_auc`` and ``pr_auc`` (average precision) are NaN when ``y_true`` has one class only;
    ``top_decile_lift`` is NaN when there are no positives.
    """
    y, q = _check(y_true, p)
    if _one_class(y):
        logger.warning("only one class in y_true (n=%d): ROC AUC and PR AUC are undefined", y.size)
    return _metrics(y, q)


def bootstrap_ci(
    y_true: ArrayLike,
    p: ArrayLike,
    n_boot: int = 200,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap confidence interval for every metric.

    Rows are resampled with replacement using ``np.random.default_rng(seed)``. Resamples in which
    a metric is undefined (a single class for the AUCs, no positives for the lift) are skipped
    for that metric; a metric that is never defined gets ``(nan, nan)``.

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
    samples: dict[str, list[float]] = {name: [] for name in METRIC_NAMES}
    for _ in range(n_boot):
        idx = rng.integers(0, y.size, size=y.size)
        for name, value in _metrics(y[idx], q[idx]).items():
            if np.isfinite(value):
                samples[name].append(value)
    ci: dict[str, tuple[float, float]] = {}
    for name, values in samples.items():
        if not values:
            ci[name] = (float("nan"), float("nan"))
            continue
        lo, hi = np.percentile(values, [100 * alpha / 2, 100 * (1 - alpha / 2)])
        ci[name] = (float(lo), float(hi))
        skipped = n_boot - len(values)
        if skipped:
            logger.debug("bootstrap %s: %d of %d resamples undefined and skipped", name, skipped, n_boot)
    return ci


@dataclass
class Evaluation:
    """Point metrics, their bootstrap CIs and the sample they were computed on."""

    metrics: dict[str, float]
    ci: dict[str, tuple[float, float]]
    n: int
    n_positive: int

    def as_flat(self, prefix: str) -> dict[str, float]:
        """Flatten for ``mlflow.log_metrics``.

        Keys are ``{prefix}_{metric}``, ``{prefix}_{metric}_ci_low``, ``{prefix}_{metric}_ci_high``,
        ``{prefix}_n`` and ``{prefix}_n_positive`` (no underscore when ``prefix`` is empty).
        """
        pre = f"{prefix}_" if prefix else ""
        flat: dict[str, float] = {}
        for name, value in self.metrics.items():
            lo, hi = self.ci.get(name, (float("nan"), float("nan")))
            flat[f"{pre}{name}"] = float(value)
            flat[f"{pre}{name}_ci_low"] = float(lo)
            flat[f"{pre}{name}_ci_high"] = float(hi)
        flat[f"{pre}n"] = float(self.n)
        flat[f"{pre}n_positive"] = float(self.n_positive)
        return flat


def evaluate(y_true: ArrayLike, p: ArrayLike, n_boot: int = 200, seed: int = 0) -> Evaluation:
    """Point metrics plus 95% percentile bootstrap CIs (see :func:`bootstrap_ci`)."""
    y, q = _check(y_true, p)
    return Evaluation(
        metrics=compute_metrics(y, q),
        ci=bootstrap_ci(y, q, n_boot=n_boot, seed=seed),
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


def _figure(figsize: tuple[float, float]) -> Figure:
    """A figure that is not registered with pyplot (nothing to close, nothing leaked)."""
    return Figure(figsize=figsize, layout="constrained")


def _diagonal(ax: Axes, label: str) -> None:
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label=label)


def plot_roc(y_true: ArrayLike, p: ArrayLike, title: str, label: str = "model") -> Figure:
    """ROC curve of one model with the chance diagonal; the legend shows the AUC.

    With a single class the curve is undefined: only the diagonal is drawn (and a warning logged).
    """
    y, q = _check(y_true, p)
    fig = _figure((6, 5.5))
    ax = fig.add_subplot()
    if _one_class(y):
        logger.warning("plot_roc: only one class in y_true, ROC curve undefined")
    else:
        fpr, tpr, _ = roc_curve(y, q)
        ax.plot(fpr, tpr, linewidth=2, label=f"{label} (AUC = {roc_auc_score(y, q):.3f})")
    _diagonal(ax, "chance (AUC = 0.5)")
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="False positive rate", ylabel="True positive rate")
    ax.set_title(title)
    ax.set_aspect("equal")
    ax.legend(loc="lower right")
    return fig


def plot_calibration(y_true: ArrayLike, p: ArrayLike, title: str, n_bins: int = 10) -> Figure:
    """Reliability diagram (observed rate with Wilson 95% CI bars vs mean predicted, plus the
    diagonal) over a histogram of the predicted probabilities."""
    y, q = _check(y_true, p)
    table = calibration_table(y, q, n_bins=n_bins)
    fig = _figure((6, 7))
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
    """Cumulative gains curve (share of positives captured vs share of rows contacted, rows
    ranked by ``p`` descending) with the random-targeting baseline."""
    y, q = _check(y_true, p)
    fig = _figure((6, 5.5))
    ax = fig.add_subplot()
    total = y.sum()
    if total == 0:
        logger.warning("plot_gains: no positives, gains curve undefined")
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


def plot_shap_summary(
    shap_values: np.ndarray,
    X: pd.DataFrame,
    title: str,
    max_display: int = 15,
) -> Figure:
    """Beeswarm-like SHAP summary: one row of points per feature, most important on top.

    Features are ranked by mean ``|SHAP|``. Points of numeric columns are coloured by the
    feature's value (5th-95th percentile scale, blue = low, red = high); points of non-numeric
    columns and missing values are grey.
    """
    values = np.asarray(shap_values, dtype=float)
    if values.ndim != 2 or values.shape != X.shape:
        raise ValueError(f"shap_values shape {values.shape} does not match X shape {X.shape}")
    if max_display < 1:
        raise ValueError("max_display must be >= 1")
    importance = np.nanmean(np.abs(values), axis=0) if values.size else np.zeros(values.shape[1])
    top = np.argsort(-importance, kind="stable")[:max_display]
    fig = _figure((8, 2.0 + 0.45 * len(top)))
    ax = fig.add_subplot()
    rng = np.random.default_rng(0)
    cmap = "coolwarm"
    scatter = None
    for row, j in enumerate(top[::-1]):  # least important at the bottom (y = 0)
        sv = values[:, j]
        jitter = rng.uniform(-0.3, 0.3, size=sv.size)
        col = X.iloc[:, j]
        numeric = pd.api.types.is_numeric_dtype(col.dtype) and not isinstance(col.dtype, pd.CategoricalDtype)
        if numeric:
            fv = pd.to_numeric(col, errors="coerce").to_numpy(dtype=float)
            known = np.isfinite(fv)
            if (~known).any():
                ax.scatter(sv[~known], row + jitter[~known], s=8, color="lightgrey", alpha=0.8, linewidths=0)
            if known.any():
                lo, hi = np.percentile(fv[known], [5, 95])
                if hi <= lo:
                    lo, hi = fv[known].min(), fv[known].max()
                scaled = (
                    (np.clip(fv[known], lo, hi) - lo) / (hi - lo) if hi > lo else np.full(known.sum(), 0.5)
                )
                scatter = ax.scatter(
                    sv[known],
                    row + jitter[known],
                    s=8,
                    c=scaled,
                    cmap=cmap,
                    vmin=0,
                    vmax=1,
                    alpha=0.8,
                    linewidths=0,
                )
        else:
            ax.scatter(sv, row + jitter, s=8, color="grey", alpha=0.6, linewidths=0)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(range(len(top)), [str(X.columns[j]) for j in top[::-1]])
    ax.set_ylim(-0.7, len(top) - 0.3)
    ax.set_xlabel("SHAP value (impact on model output)")
    ax.set_title(title)
    if scatter is not None:
        cbar = fig.colorbar(scatter, ax=ax, ticks=[0, 1], aspect=40)
        cbar.ax.set_yticklabels(["low", "high"])
        cbar.set_label("Feature value (grey: text/missing)")
    return fig


def plot_bar(values: pd.Series, title: str, xlabel: str) -> Figure:
    """Horizontal bar chart of ``values`` (index = labels), largest value on top."""
    s = pd.Series(values).astype(float).sort_values(ascending=True, kind="stable")
    fig = _figure((7, 1.5 + 0.35 * max(len(s), 1)))
    ax = fig.add_subplot()
    ax.barh([str(i) for i in s.index], s.to_numpy())
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    return fig
