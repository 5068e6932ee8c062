"""Leakage guard: a single feature that predicts the label almost perfectly stops training.

Such a feature is almost always written after the outcome (a stage, a close value of 0 on lost
deals, a churn date) and a model built on it would look perfect and be useless.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import KFold

from icpkit.errors import LeakageError


def single_feature_auc(x: pd.Series, y: np.ndarray, seed: int = 0) -> float:
    """ROC-AUC of one feature alone, direction-free (max of AUC and 1 - AUC).

    Numbers are ranked as they are (missing as its own lowest value); categories are
    target-encoded out of fold, so a high-cardinality id-like column is not flagged just
    because in-sample means memorise it.
    """
    y = np.asarray(y, dtype=int)
    if len(np.unique(y)) < 2:
        return 0.5
    if pd.api.types.is_numeric_dtype(x) or pd.api.types.is_bool_dtype(x):
        v = pd.to_numeric(x, errors="coerce").astype(float).to_numpy()
        if np.all(np.isnan(v)):
            return 0.5
        v = np.where(np.isnan(v), np.nanmin(v) - 1.0, v)
    else:
        s = x.astype("str").fillna("<missing>").reset_index(drop=True)
        v = np.full(len(s), y.mean(), dtype=float)
        for train_idx, test_idx in KFold(5, shuffle=True, random_state=seed).split(s):
            means = pd.Series(y[train_idx]).groupby(s.iloc[train_idx].to_numpy()).mean()
            v[test_idx] = s.iloc[test_idx].map(means).fillna(y[train_idx].mean()).to_numpy()
    auc = roc_auc_score(y, v)
    return float(max(auc, 1.0 - auc))


def check_single_feature_leakage(
    X: pd.DataFrame, y: np.ndarray, threshold: float, outcome: str, seed: int = 0
) -> dict[str, float]:
    """Return every feature's single-feature AUC; raise :class:`LeakageError` above ``threshold``."""
    aucs = {col: single_feature_auc(X[col], y, seed) for col in X.columns}
    leaks = {c: a for c, a in aucs.items() if a > threshold}
    if leaks:
        listed = ", ".join(f"'{c}' (AUC {a:.3f})" for c, a in sorted(leaks.items(), key=lambda t: -t[1]))
        raise LeakageError(
            f"outcome '{outcome}': feature {listed} predicts the label almost perfectly on its own "
            f"(threshold {threshold}). It is probably written after the outcome. Add it to "
            "leakage.deny_columns in the config (or fix the export), then train again."
        )
    return aucs
