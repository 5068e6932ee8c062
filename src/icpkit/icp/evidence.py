"""Does each attribute help on held-out rows? Grouped permutation importance, tested and corrected.

A model can spread SHAP mass over a noise column it overfitted; shuffling that column does not
raise the held-out loss on average. So every attribute's weight needs *evidence*: all features of
one attribute are shuffled together, ``n_repeats`` times, on test-period rows; each row's rise in
log loss is averaged over the repeats and a one-sided t-test over rows asks whether the mean rise
is above 0. The p-values of all attributes are Benjamini-Hochberg adjusted together, so on labels
with no signal nothing passes by chance (uncorrected, about 1 attribute in 20 would).

The rows are encoded once and the encoded columns permuted (encoding is per row, so this is the
same as permuting the raw rows), and all repeats of one attribute are scored in one batched call
that rescores only the trees splitting on the attribute
(:meth:`~icpkit.models.propensity.PropensityModel.shuffled_raw_scores`).
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from scipy.stats import ttest_1samp
from statsmodels.stats.multitest import multipletests

from icpkit.models.propensity import PropensityModel

log = logging.getLogger(__name__)

EVIDENCE_COLUMNS = ["attribute", "loss_increase", "p_value", "p_adjusted", "evidence"]
_EPS = 1e-15


def _row_loss(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=float), _EPS, 1 - _EPS)
    return -(y * np.log(p) + (1 - y) * np.log(1 - p))


def _groups(columns: list[str], feature_source: dict[str, str]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for col in columns:
        groups.setdefault(feature_source.get(col, col), []).append(col)
    return groups


def permutation_rises(
    model: PropensityModel,
    X: pd.DataFrame,
    y: np.ndarray,
    feature_source: dict[str, str],
    n_repeats: int = 10,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Per attribute, each row's rise in log loss when the attribute is shuffled (mean of repeats).

    Parameters
    ----------
    model : PropensityModel
        A fitted model; it scores encoded rows.
    X : pandas.DataFrame
        Raw held-out rows (the model's feature columns).
    y : numpy.ndarray
        Their 0/1 labels.
    feature_source : dict
        Feature column -> source attribute (features of one attribute are shuffled together).
    n_repeats, seed : int
        Shuffles per attribute, and the seed of their generator.
    """
    y = np.asarray(y, dtype=int)
    encoded = model.encode(X).reset_index(drop=True)
    base = _row_loss(y, model.predict_proba(encoded, encoded=True))
    shuffled_scores = model.shuffled_raw_scores(encoded)
    rng = np.random.default_rng(seed)
    n = len(encoded)
    rises: dict[str, np.ndarray] = {}
    for attr, cols in _groups(list(X.columns), feature_source).items():
        orders = [rng.permutation(n) for _ in range(n_repeats)]
        losses = _row_loss(np.tile(y, n_repeats), model.calibrated(shuffled_scores(cols, orders)))
        rise = np.zeros(n)
        # Accumulated repeat by repeat, in order: the same sums as shuffling and scoring one by one.
        for r in range(n_repeats):
            rise += (losses[r * n : (r + 1) * n] - base) / n_repeats
        rises[attr] = rise
    return rises


def attribute_evidence(
    model: PropensityModel,
    X: pd.DataFrame,
    y: np.ndarray,
    feature_source: dict[str, str],
    n_repeats: int = 10,
    seed: int = 0,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Out-of-sample evidence per attribute, from permutation loss rises.

    Columns attribute, loss_increase, p_value, p_adjusted and evidence (``p_adjusted < alpha``
    and a positive mean rise).
    """
    rises = permutation_rises(model, X, y, feature_source, n_repeats, seed)
    rows = []
    for attr, rise in rises.items():
        p_value = float(ttest_1samp(rise, 0.0, alternative="greater").pvalue) if rise.std() > 0 else 1.0
        rows.append({"attribute": attr, "loss_increase": float(rise.mean()), "p_value": p_value})
    out = pd.DataFrame(rows, columns=["attribute", "loss_increase", "p_value"])
    out["p_adjusted"] = multipletests(out["p_value"], method="fdr_bh")[1] if len(out) else []
    out["evidence"] = (out["p_adjusted"] < alpha) & (out["loss_increase"] > 0)
    return out[EVIDENCE_COLUMNS]
