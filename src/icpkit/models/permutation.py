"""Scores of rows with some columns shuffled: the common step of permutation importance.

A :data:`ShuffledScores` function takes the columns to shuffle (together) and a list of row
orders, and returns the scores of the rows with those columns put in each order, stacked order
by order. :func:`shuffled_scores` makes one from any score function by scoring shuffled copies;
:meth:`~icpkit.models.propensity.PropensityModel.shuffled_raw_scores` makes a faster one for a
LightGBM model, which rescores only the trees that split on the columns.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

#: ``(columns, orders) -> scores`` of ``len(orders) * n_rows`` values, order by order.
ShuffledScores = Callable[[list[str], list[np.ndarray]], np.ndarray]


def stack_shuffled(values: np.ndarray, columns: list[int], orders: list[np.ndarray]) -> np.ndarray:
    """``values`` repeated once per order, the ``columns`` of each copy put in that row order."""
    n = len(values)
    out = np.tile(values, (len(orders), 1))
    for r, order in enumerate(orders):
        out[r * n : (r + 1) * n, columns] = values[np.ix_(order, columns)]
    return out


def shuffled_scores(score: Callable[[pd.DataFrame], np.ndarray], X: pd.DataFrame) -> ShuffledScores:
    """A :data:`ShuffledScores` for any ``score`` of frames like ``X`` (numeric columns)."""
    values = X.to_numpy(dtype=float)
    position = {c: j for j, c in enumerate(X.columns)}

    def scores(columns: list[str], orders: list[np.ndarray]) -> np.ndarray:
        j = [position[c] for c in columns if c in position]
        copies = pd.DataFrame(stack_shuffled(values, j, orders), columns=X.columns)
        return np.asarray(score(copies), dtype=float)

    return scores
