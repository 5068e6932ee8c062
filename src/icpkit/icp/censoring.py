"""Censoring: when whether a label is *known* depends on an attribute, its effect may be an artefact.

A renewal label is known once the term is due. Annual terms come due before the export less often
than monthly ones — unless they churn early, which ends the term. Among the labelled annual terms
churners are then over-represented, and "billing frequency = annual" looks like a churn driver
(46 % vs 18 % labelled) while the raw churn of all annual and monthly terms is about equal. The
signature is a share of labelled rows that differs strongly between an attribute's values; such an
attribute is flagged, and the negative ICP does not make it a driver or exclusion without saying so.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd
from scipy.stats import chi2_contingency
from scipy.stats.contingency import association

from icpkit.icp.cohorts import MISSING, assign_ranges, category_labels, is_numeric_attribute, quantile_ranges

log = logging.getLogger(__name__)

#: At least this association (Cramér's V) between an attribute's values and "label known", at the
#: significance level, flags the attribute. (A ratio of known shares misleads when most rows are
#: known: 80 % vs 100 % is a ratio of 1.25 but a strong artefact; V is 0.34 there.)
MIN_ASSOCIATION = 0.15
MIN_GROUP_ROWS = 30


def _groups(x: pd.Series) -> pd.Series:
    if is_numeric_attribute(x):
        return assign_ranges(x, quantile_ranges(x, 5))
    return category_labels(x)


def censoring_check(attributes: pd.DataFrame, labelled: np.ndarray, alpha: float = 0.05) -> pd.DataFrame:
    """Per attribute: how the share of rows with a known label varies across its values.

    Parameters
    ----------
    attributes : pandas.DataFrame
        Every row of the outcome's table (labelled or not), prepared attribute columns.
    labelled : numpy.ndarray
        True where the row's label is known at the extract date.
    alpha : float
        Significance level of the chi-square test of value x known.

    Returns
    -------
    pandas.DataFrame
        Columns attribute, lowest (value, share), highest (value, share), share_ratio, cramers_v,
        p_value, flagged.
    """
    known = np.asarray(labelled, dtype=bool)
    rows = []
    for col in attributes.columns:
        groups = _groups(attributes[col].reset_index(drop=True)).to_numpy()
        table = pd.crosstab(groups, known)
        table = table[table.sum(axis=1) >= MIN_GROUP_ROWS]
        if table.shape[0] < 2 or table.shape[1] < 2:
            continue
        share = table[True] / table.sum(axis=1)
        lo, hi = share.idxmin(), share.idxmax()
        counts = table.to_numpy()
        p_value = float(chi2_contingency(counts).pvalue)
        v = float(association(counts, method="cramer"))
        ratio = float(share[hi] / share[lo]) if share[lo] > 0 else math.inf
        rows.append(
            {
                "attribute": str(col),
                "lowest": f"{lo} ({share[lo]:.0%} known)",
                "highest": f"{hi} ({share[hi]:.0%} known)",
                "share_ratio": ratio,
                "cramers_v": v,
                "p_value": p_value,
                "flagged": bool(p_value < alpha and v >= MIN_ASSOCIATION),
            }
        )
    cols = ["attribute", "lowest", "highest", "share_ratio", "cramers_v", "p_value", "flagged"]
    return pd.DataFrame(rows, columns=cols)


def unlabelled_note(outcome: str, n_rows: int, n_labelled: int) -> str:
    """Why rows carry no label, in words (for the profile)."""
    missing = n_rows - n_labelled
    why = {
        "renewal": "terms not yet due at the extract date",
        "expansion": "terms not yet due at the extract date",
        "win": "opportunities still open",
        "conversion": "leads still open",
    }.get(outcome, "outcome not known yet")
    return f"{outcome}: {missing:,} of {n_rows:,} rows unlabelled ({why}); scored, never trained on"


__all__ = ["MISSING", "censoring_check", "unlabelled_note"]
