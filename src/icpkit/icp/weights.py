"""ICP attribute weights from per-row SHAP contributions.

A model sees encoded features (one-hot columns, bins, ratios); a salesperson thinks in source attributes
(industry, employee count). These functions fold feature contributions back onto attributes, turn them
into weights that sum to 100, and roll them up per ICP dimension and across outcomes.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from scipy.stats import ttest_1samp

__all__ = [
    "attribute_weights",
    "blend_weights",
    "dimension_weights",
    "out_of_sample_evidence",
    "top_attributes",
]

_OTHER_DIMENSION = "other"


def _normalise_to_100(values: np.ndarray) -> np.ndarray:
    """Scale non-negative values to sum to 100; all zeros stay zeros instead of becoming NaN."""
    total = float(np.sum(values))
    if total <= 0.0:
        return np.zeros_like(values, dtype=float)
    return 100.0 * values / total


def out_of_sample_evidence(
    predict_proba: Callable[[pd.DataFrame], np.ndarray],
    X: pd.DataFrame,
    y: np.ndarray,
    feature_source: dict[str, str],
    n_repeats: int = 10,
    seed: int = 0,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Does each attribute help on held-out rows? Grouped permutation importance, tested.

    All features of one attribute are shuffled together, ``n_repeats`` times; each row's rise in
    log loss is averaged over the repeats, and a one-sided t-test over rows asks whether the mean
    rise is above 0. An attribute has ``evidence`` when ``p_value < alpha``. A model can spread
    SHAP mass over a noise column it overfitted; shuffling that column does not raise held-out
    loss on average. The test is deliberately not corrected for multiplicity: it decides whether
    a SHAP weight counts, and dropping a real but weak attribute would distort the weights more
    than keeping the odd noise column that passes by chance (about 1 in 20).

    Returns columns attribute, loss_increase, p_value, evidence.
    """
    y = np.asarray(y, dtype=int)
    eps = 1e-15

    def row_loss(p: np.ndarray) -> np.ndarray:
        p = np.clip(np.asarray(p, dtype=float), eps, 1 - eps)
        return -(y * np.log(p) + (1 - y) * np.log(1 - p))

    base = row_loss(predict_proba(X))
    groups: dict[str, list[str]] = {}
    for col in X.columns:
        groups.setdefault(feature_source.get(str(col), str(col)), []).append(col)
    rng = np.random.default_rng(seed)
    rows = []
    for attr, cols in groups.items():
        rise = np.zeros(len(X))
        for _ in range(n_repeats):
            order = rng.permutation(len(X))
            shuffled = X.copy()
            for c in cols:
                shuffled[c] = X[c].to_numpy()[order]
            rise += (row_loss(predict_proba(shuffled)) - base) / n_repeats
        p_value = float(ttest_1samp(rise, 0.0, alternative="greater").pvalue) if rise.std() > 0 else 1.0
        rows.append({"attribute": attr, "loss_increase": float(rise.mean()), "p_value": p_value})
    out = pd.DataFrame(rows, columns=["attribute", "loss_increase", "p_value"])
    out["evidence"] = (out["p_value"] < alpha) & (out["loss_increase"] > 0)
    return out


def attribute_weights(
    contributions: pd.DataFrame,
    feature_source: dict[str, str],
    source_dimension: dict[str, str],
    evidence: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Weight of each source attribute, from per-row SHAP values.

    Args:
        contributions: per-row SHAP values, rows x model features.
        feature_source: model feature -> source attribute; unmapped features are their own attribute.
        source_dimension: attribute -> ICP dimension; unmapped attributes get "other".
        evidence: optional :func:`out_of_sample_evidence` result; attributes without evidence
            keep their ``mean_abs_shap`` but get weight 0, so overfitted noise carries no weight.

    Returns:
        Columns attribute, dimension, mean_abs_shap, weight (sums to 100, or all 0 if every
        contribution is 0), sorted by weight descending; with ``evidence``, also ``evidence``.
    """
    attributes = [feature_source.get(str(col), str(col)) for col in contributions.columns]
    values = contributions.to_numpy(dtype=float)
    order = list(dict.fromkeys(attributes))
    index = {attr: i for i, attr in enumerate(order)}
    summed = np.zeros((values.shape[0], len(order)))
    # Sum signed contributions first: one-hot columns of one attribute often push in opposite
    # directions for the same row, and only their net effect is the attribute's effect.
    for j, attr in enumerate(attributes):
        summed[:, index[attr]] += values[:, j]
    mean_abs = np.abs(summed).mean(axis=0) if values.shape[0] else np.zeros(len(order))
    out = pd.DataFrame(
        {
            "attribute": order,
            "dimension": [source_dimension.get(attr, _OTHER_DIMENSION) for attr in order],
            "mean_abs_shap": mean_abs,
            "weight": _normalise_to_100(mean_abs),
        }
    )
    if evidence is not None:
        has = (
            evidence.set_index("attribute")["evidence"].reindex(out["attribute"]).fillna(False).to_numpy(bool)
        )
        out["evidence"] = has
        out["weight"] = _normalise_to_100(np.where(has, mean_abs, 0.0))
    # Stable sort keeps column order among ties, so output is deterministic.
    return out.sort_values("weight", ascending=False, kind="stable").reset_index(drop=True)


def dimension_weights(weights: pd.DataFrame) -> pd.DataFrame:
    """Roll attribute weights up to ICP dimensions.

    Returns:
        Columns dimension, weight (sums to 100), n_attributes; sorted by weight descending.
    """
    grouped = weights.groupby("dimension", sort=True).agg(
        weight=("weight", "sum"), n_attributes=("attribute", "count")
    )
    grouped["weight"] = _normalise_to_100(grouped["weight"].to_numpy(dtype=float))
    out = grouped.reset_index()[["dimension", "weight", "n_attributes"]]
    return out.sort_values("weight", ascending=False, kind="stable").reset_index(drop=True)


def blend_weights(per_outcome: dict[str, pd.DataFrame], blend: dict[str, float]) -> pd.DataFrame:
    """Blend attribute weights of several outcomes (e.g. win 0.5, expansion 0.3, renewal 0.2).

    Outcomes in ``blend`` but absent from ``per_outcome`` are ignored and the blend is renormalised
    over the outcomes present, so a skipped outcome does not shrink every weight. An attribute
    missing from an outcome counts as weight 0 for that outcome.

    Returns:
        Columns attribute, dimension, weight (sums to 100), and ``weight_<outcome>`` per outcome used.

    Raises:
        ValueError: if none of the blend's outcomes are in ``per_outcome``, or blend weights are invalid.
    """
    present = [name for name in blend if name in per_outcome]
    if not present:
        raise ValueError(
            f"none of the blend outcomes {sorted(blend)} have weights; available: {sorted(per_outcome)}"
        )
    shares = np.array([float(blend[name]) for name in present])
    if np.any(shares < 0) or shares.sum() <= 0:
        raise ValueError(f"blend weights must be non-negative with a positive sum, got {blend}")
    shares = shares / shares.sum()

    dimensions: dict[str, str] = {}
    columns: dict[str, pd.Series] = {}
    for name in present:
        frame = per_outcome[name]
        for attr, dim in zip(frame["attribute"], frame["dimension"], strict=True):
            dimensions.setdefault(attr, dim)
        columns[f"weight_{name}"] = frame.groupby("attribute")["weight"].sum()
    attrs = list(dimensions)
    per = pd.DataFrame({col: s.reindex(attrs).fillna(0.0) for col, s in columns.items()}, index=attrs)
    blended = per.to_numpy(dtype=float) @ shares
    out = pd.DataFrame(
        {
            "attribute": attrs,
            "dimension": [dimensions[a] for a in attrs],
            "weight": _normalise_to_100(blended),
        }
    )
    for col in per.columns:
        out[col] = per[col].to_numpy()
    return out.sort_values("weight", ascending=False, kind="stable").reset_index(drop=True)


def top_attributes(weights: pd.DataFrame, n: int) -> list[str]:
    """The ``n`` attributes with the largest weight, heaviest first."""
    ranked = weights.sort_values("weight", ascending=False, kind="stable")
    return [str(a) for a in ranked["attribute"].head(n)]
