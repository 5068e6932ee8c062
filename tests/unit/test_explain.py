"""SHAP explanations: names aligned with values, contributions that add up to the raw score."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from icpkit.config import TrainingConfig
from icpkit.models.explain import explain, plot_beeswarm, plot_waterfall, to_frame
from icpkit.models.fitting import fit_lightgbm, fit_logistic, tune_lightgbm
from icpkit.models.preprocessing import Preprocessor


def _data(n: int = 1500, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Only ``strong`` matters; ``industry`` (text) sits first so the model's column order differs."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {
            "industry": rng.choice(["a", "b", "c"], n),
            "zero_effect": rng.normal(size=n),
            "strong": rng.normal(size=n),
        }
    )
    y = (rng.random(n) < 1 / (1 + np.exp(-3 * X["strong"].to_numpy()))).astype(int)
    return X, y


@pytest.fixture(scope="module", params=["lightgbm", "logistic"])
def model(request):
    X, y = _data()
    enc = Preprocessor().fit(X)
    E = enc.transform(X)
    if request.param == "logistic":
        return fit_logistic(E, y, E, y, enc, "win")[0]
    training = TrainingConfig(tuning={"n_trials": 1, "timeout_seconds": 600}, max_boost_rounds=50, num_threads=1)
    tuning = tune_lightgbm(E, y, E, y, enc.categorical_columns_, training, seed=0)
    return fit_lightgbm(E, y, enc.categorical_columns_, tuning, enc, "win")


def test_contributions_plus_base_equal_the_raw_score(model):
    X, _ = _data(200, seed=1)
    expl = explain(model, X)
    np.testing.assert_allclose(expl.values.sum(axis=1) + expl.base_values, model.raw_score(X), atol=1e-9)


def test_feature_names_match_their_values(model):
    # Columns in another order than the model's: every name must still carry its own feature's data.
    X, _ = _data(200, seed=2)
    expl = explain(model, X[["strong", "zero_effect", "industry"]])
    encoded = model.encode(X)
    for j, name in enumerate(expl.feature_names):
        np.testing.assert_array_equal(expl.data[:, j], encoded[name].to_numpy())
    frame = to_frame(expl)
    assert frame.abs().mean().idxmax() == "strong"


def test_beeswarm_labels_the_most_important_feature_on_top(model):
    X, _ = _data(300, seed=3)
    fig = plot_beeswarm(explain(model, X), "test")
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels[-1] == "strong"  # shap draws the most important feature at the top


def test_waterfall_shows_the_chosen_rows_raw_values_and_its_largest_contribution(model):
    X, _ = _data(300, seed=3)
    expl = explain(model, X)
    row = 7
    ticks = [t.get_text() for t in plot_waterfall(expl, row, "one row").axes[0].get_yticklabels()]
    # shap labels each bar "<raw value> = <feature>" (bottom to top), the largest |contribution| on top.
    labels = [t for t in ticks if " = " in t]
    assert f"{X['industry'].iloc[row]} = industry" in labels
    assert f"{X['strong'].iloc[row]:.3f} = strong".replace("-", "\N{MINUS SIGN}") in labels
    top = expl.feature_names[int(np.abs(expl.values[row]).argmax())]
    assert labels[-1].endswith(f"= {top}")


def _outside_figure(fig) -> list[str]:
    """The main axes' feature labels and title where drawn past the figure's edges."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    width, height = canvas.get_width_height()
    out = []
    ax = fig.axes[0]
    for text in [*ax.get_yticklabels(), ax.title]:
        box = text.get_window_extent(canvas.get_renderer())
        if text.get_text() and (box.x0 < 0 or box.x1 > width or box.y0 < 0 or box.y1 > height):
            out.append(text.get_text())
    return out


def test_beeswarm_and_waterfall_keep_long_names_and_titles_inside_the_figure(model):
    # shap lays the figure out at its own size; resized afterwards, long feature names (and a
    # waterfall's "value = name" labels) used to be cut off on the left.
    X, _ = _data(300, seed=4)
    expl = explain(model, X)
    long_name = "days_since_last_marketing_qualified_activity"
    expl.feature_names = [long_name if n == "zero_effect" else n for n in expl.feature_names]
    display = np.asarray(expl.display_data, dtype=object)
    display[:, expl.feature_names.index("industry")] = "Healthcare and life sciences (regulated)"
    expl.display_data = display
    beeswarm = plot_beeswarm(expl, "conversion: SHAP (test sample)")
    assert long_name in [t.get_text() for t in beeswarm.axes[0].get_yticklabels()]
    assert _outside_figure(beeswarm) == []
    assert _outside_figure(plot_waterfall(expl, 0, "conversion: why the first test row scores as it does")) == []
