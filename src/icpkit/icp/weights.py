"""ICP attribute weights from per-row SHAP contributions.

A model sees encoded features (one-hot columns, bins, ratios); a salesperson thinks in source attributes
(industry, employee count). These functions fold feature contributions back onto attributes, turn them
into weights that sum to 100, and roll them up per ICP dimension and across outcomes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

_OTHER_DIMENSION = "other"


def _normalise_to_100(values: np.ndarray) -> np.ndarray:
    """Scale non-negative values to sum to 100; all zeros stay zeros instead of becoming NaN."""
    total = float(np.sum(values))
    if total <= 0.0:
        return np.zeros_like(values, dtype=float)
    return 100.0 * values / total


def attribute_weights(
    contributions: pd.DataFrame,
    feature_source: dict[str, str],
    source_dimension: dict[str, str],
    evidence: pd.DataFrame | None = None,
    source_role: dict[str, str] | None = None,
) -> pd.DataFrame:
    """Weight of each source attribute, from per-row SHAP values.

    Parameters
    ----------
    contributions : pandas.DataFrame
        Per-row SHAP values, rows x model features.
    feature_source : dict
        Model feature -> source attribute; unmapped features are their own attribute.
    source_dimension : dict
        Attribute -> ICP dimension; unmapped attributes get "other".
    evidence : pandas.DataFrame, optional
        :func:`icpkit.icp.evidence.attribute_evidence` result; attributes without evidence keep
        their ``mean_abs_shap`` but get weight 0, so overfitted noise carries no weight.
    source_role : dict, optional
        Attribute -> role (customer, offer, sales_org, engagement), copied into a ``role`` column.

    Returns
    -------
    pandas.DataFrame
        Columns attribute, dimension, role, mean_abs_shap, weight (sums to 100, or all 0),
        sorted by weight descending; with ``evidence``, also ``evidence`` and ``p_adjusted``.
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
            "role": [(source_role or {}).get(attr, "customer") for attr in order],
            "mean_abs_shap": mean_abs,
            "weight": _normalise_to_100(mean_abs),
        }
    )
    if evidence is not None:
        has = (
            evidence.set_index("attribute")["evidence"].reindex(out["attribute"]).fillna(False).to_numpy(bool)
        )
        out["evidence"] = has
        out["p_adjusted"] = evidence.set_index("attribute")["p_adjusted"].reindex(out["attribute"]).to_numpy()
        out["weight"] = _normalise_to_100(np.where(has, mean_abs, 0.0))
    # Stable sort keeps column order among ties, so output is deterministic.
    return out.sort_values("weight", ascending=False, kind="stable").reset_index(drop=True)


def dimension_weights(weights: pd.DataFrame) -> pd.DataFrame:
    """Roll attribute weights up to ICP dimensions.

    Returns
    -------
    DataFrame
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

    Returns
    -------
    DataFrame
        Columns attribute, dimension, weight (sums to 100), and ``weight_<outcome>`` per outcome used.

    Raises
    ------
    ValueError
        If none of the blend's outcomes are in ``per_outcome``, or blend weights are invalid.
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
    roles: dict[str, str] = {}
    columns: dict[str, pd.Series] = {}
    for name in present:
        frame = per_outcome[name]
        for attr, dim, role in zip(
            frame["attribute"], frame["dimension"], frame.get("role", ["customer"] * len(frame)), strict=True
        ):
            dimensions.setdefault(attr, dim)
            roles.setdefault(attr, role)
        columns[f"weight_{name}"] = frame.groupby("attribute")["weight"].sum()
    attrs = list(dimensions)
    per = pd.DataFrame({col: s.reindex(attrs).fillna(0.0) for col, s in columns.items()}, index=attrs)
    blended = per.to_numpy(dtype=float) @ shares
    out = pd.DataFrame(
        {
            "attribute": attrs,
            "dimension": [dimensions[a] for a in attrs],
            "role": [roles[a] for a in attrs],
            "weight": _normalise_to_100(blended),
        }
    )
    for col in per.columns:
        out[col] = per[col].to_numpy()
    return out.sort_values("weight", ascending=False, kind="stable").reset_index(drop=True)
