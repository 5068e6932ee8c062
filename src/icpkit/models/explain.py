"""SHAP explanations of a propensity model, as the field uses them: ``shap.Explanation`` objects.

LightGBM's own TreeSHAP (``pred_contrib``) gives exact per-row contributions; the logistic
baseline is explained with shap's ``LinearExplainer`` over the model's design matrix, summed back
onto the source features (one-hot columns of one feature add up to its contribution). Either
way ``values.sum(axis=1) + base_values`` equals the model's raw (log-odds) score, and the
feature names are the model's own column order with the data reordered to match — a beeswarm
built from this object cannot label one feature's points with another's name.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import shap
from matplotlib.figure import Figure

from icpkit.models.propensity import PropensityModel

log = logging.getLogger(__name__)


def explain(model: PropensityModel, X: pd.DataFrame) -> shap.Explanation:
    """Per-row SHAP contributions (log-odds) of ``model`` on the raw rows ``X``.

    Parameters
    ----------
    model : PropensityModel
        A fitted model.
    X : pandas.DataFrame
        Raw feature rows (any column order; extra columns are ignored).

    Returns
    -------
    shap.Explanation
        ``values`` (rows x model features), ``base_values`` (one per row), ``data`` (the encoded
        values the model saw: numbers, category codes), ``display_data`` (the raw values) and
        ``feature_names`` in the model's order.
    """
    names = list(model.feature_names)
    encoded = model.encode(X)[names]
    if model.kind == "lightgbm":
        assert model.booster is not None
        contrib = model.booster.predict(encoded, pred_contrib=True)
        values, base = contrib[:, :-1], contrib[:, -1]
    else:
        values, base = _linear_shap(model, encoded)
    raw = X.reindex(columns=names).astype(object)
    return shap.Explanation(
        values=np.asarray(values, dtype=float),
        base_values=np.asarray(base, dtype=float),
        data=encoded.to_numpy(dtype=float),
        display_data=raw.to_numpy(),
        feature_names=names,
    )


def _linear_shap(model: PropensityModel, encoded: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """SHAP's LinearExplainer on the design matrix, summed back onto each source feature.

    The rows' own mean is the background.
    """
    assert model.coef is not None
    design = model.encoder.design_array(encoded)
    background = design.mean(axis=0, keepdims=True)
    explainer = shap.LinearExplainer((np.asarray(model.coef), float(model.intercept)), background)
    per_column = np.asarray(explainer.shap_values(design), dtype=float)
    sources = np.asarray(model.encoder.design_sources(), dtype=object)
    onto = (sources[:, None] == np.asarray(model.feature_names, dtype=object)[None, :]).astype(float)
    base = np.full(len(encoded), float(np.ravel(explainer.expected_value)[0]))
    return per_column @ onto, base


def to_frame(explanation: shap.Explanation) -> pd.DataFrame:
    """The contributions as a frame whose columns are the feature names."""
    return pd.DataFrame(explanation.values, columns=list(explanation.feature_names))


def _capture(draw) -> Figure:  # noqa: ANN001 - a zero-argument shap plotting call
    """Run a shap plot (which draws on pyplot's current figure) and hand back its figure."""
    import matplotlib.pyplot as plt

    fig = plt.figure()
    draw()
    fig = plt.gcf()
    plt.close(fig)  # detached from pyplot: the caller saves it, nothing lingers in pyplot's registry
    return fig


def plot_beeswarm(explanation: shap.Explanation, title: str, max_display: int = 15, seed: int = 0) -> Figure:
    """SHAP's beeswarm: one row of points per feature, most important on top.

    shap orders and jitters the points with numpy's global random state; it is seeded with
    ``seed`` for the plot (and restored after), so the same explanation gives the same image.
    """
    state = np.random.get_state()
    np.random.seed(seed)  # noqa: NPY002 - shap reads the global state; ours is put back below
    try:
        fig = _capture(lambda: shap.plots.beeswarm(explanation, max_display=max_display, show=False))
    finally:
        np.random.set_state(state)
    fig.axes[0].set_title(title)
    fig.set_size_inches(8, 1.8 + 0.4 * min(max_display, len(explanation.feature_names)))
    fig.tight_layout()  # shap laid it out at its own size: the feature names were cut off on the left
    return fig


def plot_waterfall(explanation: shap.Explanation, row: int, title: str, max_display: int = 10) -> Figure:
    """SHAP's waterfall for one row: how each feature moved it from the base value."""
    # The row taken from the arrays: shap's own slicing (``explanation[row]``) walks the object
    # array of display data value by value, ~0.5 s a plot.
    data = explanation.display_data if explanation.display_data is not None else explanation.data
    one = shap.Explanation(
        values=np.asarray(explanation.values)[row],
        base_values=np.ravel(explanation.base_values)[row],
        data=np.asarray(data)[row],
        feature_names=list(explanation.feature_names),
    )
    fig = _capture(lambda: shap.plots.waterfall(one, max_display=max_display, show=False))
    fig.axes[0].set_title(title)
    # Wider than shap's 8 in, then laid out again: "value = name" labels were cut off on the left.
    fig.set_size_inches(10, fig.get_size_inches()[1])
    fig.tight_layout()
    return fig
