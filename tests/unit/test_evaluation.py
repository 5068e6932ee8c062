"""Unit tests for icpkit.models.evaluation: hand-made data with answers known in advance."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from icpkit.models import evaluation as ev


def _synthetic(n: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Calibrated scores with real signal: y ~ Bernoulli(p)."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(size=n)
    y = (rng.uniform(size=n) < p).astype(int)
    return y, p


# ------------------------------------------------------------------------------------------- metrics


def test_compute_metrics_perfect_predictions_hit_limits() -> None:
    y = np.array([0, 0, 1, 1, 0, 1])
    m = ev.compute_metrics(y, y.astype(float))
    assert set(m) == set(ev.METRIC_NAMES)
    assert m["roc_auc"] == 1.0
    assert m["pr_auc"] == 1.0
    assert m["brier"] == 0.0
    assert m["ece"] == 0.0
    assert m["log_loss"] == pytest.approx(0.0, abs=1e-9)
    assert m["top_decile_lift"] == pytest.approx(2.0)  # top 1 row is a positive, base rate 1/2


def test_compute_metrics_constant_predictions_give_chance_auc() -> None:
    y = np.array([0, 1, 0, 1, 1, 0, 0, 0])
    m = ev.compute_metrics(y, np.full(y.size, 0.3))
    assert m["roc_auc"] == 0.5
    assert m["pr_auc"] == pytest.approx(y.mean())
    assert m["brier"] == pytest.approx(np.mean((0.3 - y) ** 2))


def test_compute_metrics_single_class_gives_nan_auc() -> None:
    y = np.zeros(10)
    m = ev.compute_metrics(y, np.linspace(0.05, 0.5, 10))
    assert math.isnan(m["roc_auc"]) and math.isnan(m["pr_auc"])
    assert math.isnan(m["top_decile_lift"])
    assert np.isfinite(m["brier"]) and np.isfinite(m["log_loss"]) and np.isfinite(m["ece"])


def test_compute_metrics_bad_input_raises() -> None:
    with pytest.raises(ValueError, match="lengths"):
        ev.compute_metrics([0, 1], [0.5])
    with pytest.raises(ValueError, match="0 and 1"):
        ev.compute_metrics([0, 2], [0.5, 0.5])
    with pytest.raises(ValueError, match="probabilities"):
        ev.compute_metrics([0, 1], [0.5, 1.5])


def test_expected_calibration_error_perfectly_calibrated_bins_is_zero() -> None:
    # bin [0.2, 0.3): p = 0.25, 1 of 4 positive; bin [0.7, 0.8): p = 0.75, 3 of 4 positive
    y = np.array([1, 0, 0, 0, 1, 1, 1, 0])
    p = np.array([0.25] * 4 + [0.75] * 4)
    assert ev.expected_calibration_error(y, p) == pytest.approx(0.0, abs=1e-12)


def test_expected_calibration_error_matches_hand_computation() -> None:
    y = np.array([0, 0, 1, 1, 1, 0])
    p = np.array([0.1, 0.1, 0.3, 0.35, 0.8, 0.9])
    # bins: {0.1, 0.1} gap |0 - 0.1| = 0.1; {0.3, 0.35} gap |1 - 0.325| = 0.675;
    #       {0.8} gap 0.2; {0.9} gap 0.9  ->  (2*0.1 + 2*0.675 + 0.2 + 0.9) / 6
    expected = (2 * 0.1 + 2 * 0.675 + 0.2 + 0.9) / 6
    assert ev.expected_calibration_error(y, p) == pytest.approx(expected)
    # p == 1.0 falls in the last bin rather than off the end
    assert ev.expected_calibration_error([1], [1.0]) == 0.0


def test_top_decile_lift_matches_hand_computation_with_stable_ties() -> None:
    # 20 rows, 5 positives (base rate 0.25); top decile = ceil(20/10) = 2 rows.
    y = np.zeros(20, dtype=int)
    y[[0, 2, 10, 11, 12]] = 1
    p = np.full(20, 0.2)
    p[[0, 1, 2]] = 0.9  # a three-way tie on top: stable order takes rows 0 and 1
    # top 2 = rows 0 (pos), 1 (neg) -> rate 0.5 -> lift 0.5 / 0.25 = 2
    assert ev.top_decile_lift(y, p) == pytest.approx(2.0)
    # 21 rows: ceil(21/10) = 3 rows -> rows 0, 1, 2 -> rate 2/3, base 5/21
    y21 = np.append(y, 0)
    p21 = np.append(p, 0.1)
    assert ev.top_decile_lift(y21, p21) == pytest.approx((2 / 3) / (5 / 21))


# ----------------------------------------------------------------------------------------- bootstrap


def test_bootstrap_ci_contains_point_estimate() -> None:
    y, p = _synthetic(400)
    point = ev.compute_metrics(y, p)
    ci = ev.bootstrap_ci(y, p, n_boot=100, seed=0)
    assert set(ci) == set(ev.METRIC_NAMES)
    for name in ("roc_auc", "pr_auc", "log_loss", "brier", "top_decile_lift"):
        lo, hi = ci[name]
        assert lo <= point[name] <= hi, name


def test_bootstrap_ci_narrows_with_more_data() -> None:
    small = ev.bootstrap_ci(*_synthetic(150, seed=2), n_boot=100, seed=0)
    large = ev.bootstrap_ci(*_synthetic(3000, seed=2), n_boot=100, seed=0)
    for name in ("roc_auc", "brier", "log_loss"):
        assert large[name][1] - large[name][0] < (small[name][1] - small[name][0]) / 2, name


def test_bootstrap_ci_is_deterministic_for_a_seed() -> None:
    y, p = _synthetic(200)
    a = ev.bootstrap_ci(y, p, n_boot=50, seed=7)
    b = ev.bootstrap_ci(y, p, n_boot=50, seed=7)
    c = ev.bootstrap_ci(y, p, n_boot=50, seed=8)
    assert a == b
    assert a["roc_auc"] != c["roc_auc"]


def test_bootstrap_ci_single_class_gives_nan_auc_without_crashing() -> None:
    ci = ev.bootstrap_ci(np.ones(30), np.linspace(0.1, 0.9, 30), n_boot=20)
    assert all(math.isnan(v) for v in ci["roc_auc"])
    assert all(math.isnan(v) for v in ci["pr_auc"])
    assert all(np.isfinite(v) for v in ci["brier"])


def test_bootstrap_ci_skips_single_class_resamples_for_auc() -> None:
    # one positive in 12 rows: many resamples miss it, yet the AUC CI is still defined
    y = np.array([1] + [0] * 11)
    p = np.linspace(0.9, 0.1, 12)
    lo, hi = ev.bootstrap_ci(y, p, n_boot=100, seed=0)["roc_auc"]
    assert lo == hi == 1.0


def test_evaluate_as_flat_has_prefixed_metrics_cis_and_counts() -> None:
    y, p = _synthetic(300)
    e = ev.evaluate(y, p, n_boot=30, seed=0)
    assert e.n == 300 and e.n_positive == int(y.sum())
    assert e.metrics == ev.compute_metrics(y, p)
    flat = e.as_flat("test")
    expected_keys = {f"test_{m}{s}" for m in ev.METRIC_NAMES for s in ("", "_ci_low", "_ci_high")}
    assert set(flat) == expected_keys | {"test_n", "test_n_positive"}
    assert flat["test_roc_auc"] == e.metrics["roc_auc"]
    assert (flat["test_roc_auc_ci_low"], flat["test_roc_auc_ci_high"]) == e.ci["roc_auc"]
    assert flat["test_n"] == 300
    assert all(isinstance(v, float) for v in flat.values())


# -------------------------------------------------------------------------------------------- tables


def test_gains_table_cumulative_share_ends_at_one() -> None:
    y, p = _synthetic(95)
    t = ev.gains_table(y, p)
    assert list(t["decile"]) == list(range(1, 11))
    assert t["n"].sum() == 95 and t["n"].iloc[0] == math.ceil(95 / 10)
    assert t["positives"].sum() == y.sum()
    assert t["cum_share_positives"].iloc[-1] == pytest.approx(1.0)
    assert t["cum_share_population"].iloc[-1] == pytest.approx(1.0)
    assert t["cum_share_positives"].is_monotonic_increasing
    assert t["max_p"].is_monotonic_decreasing  # decile 1 holds the highest scores
    assert t["lift"].iloc[0] == pytest.approx(ev.top_decile_lift(y, p))


def test_calibration_table_counts_sum_to_n() -> None:
    y = np.array([0, 0, 1, 1, 1, 0])
    p = np.array([0.1, 0.1, 0.3, 0.35, 0.8, 1.0])
    t = ev.calibration_table(y, p)
    assert t["n"].sum() == 6
    assert list(t["bin"]) == [1, 3, 8, 9]
    assert t["mean_predicted"].tolist() == pytest.approx([0.1, 0.325, 0.8, 1.0])
    assert t["observed_rate"].tolist() == pytest.approx([0.0, 1.0, 1.0, 0.0])
    assert (t["ci_low"] <= t["observed_rate"]).all() and (t["observed_rate"] <= t["ci_high"]).all()
    # Wilson interval for 0 of 2 is (0, ~0.658)
    assert t["ci_low"].iloc[0] == pytest.approx(0.0, abs=1e-12)
    assert t["ci_high"].iloc[0] == pytest.approx(0.6576, abs=1e-3)


# --------------------------------------------------------------------------------------------- plots


def _line_labels(fig: Figure) -> list[str]:
    return [line.get_label() for ax in fig.axes for line in ax.get_lines()]


def test_plot_roc_has_model_curve_and_diagonal(tmp_path) -> None:
    y, p = _synthetic(200)
    fig = ev.plot_roc(y, p, "ROC")
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    ax = fig.axes[0]
    assert len(ax.get_lines()) == 2
    assert any(label.startswith("model (AUC") for label in _line_labels(fig))
    assert ax.get_title() == "ROC"
    fig.savefig(tmp_path / "roc.png")
    assert (tmp_path / "roc.png").stat().st_size > 0


def test_plot_roc_single_class_draws_only_diagonal() -> None:
    fig = ev.plot_roc(np.zeros(10), np.linspace(0, 1, 10), "ROC")
    assert len(fig.axes[0].get_lines()) == 1


def test_plot_calibration_has_reliability_and_histogram_axes() -> None:
    y, p = _synthetic(300)
    fig = ev.plot_calibration(y, p, "Calibration")
    top, bottom = fig.axes
    assert top.get_title() == "Calibration"
    assert "perfectly calibrated" in _line_labels(fig)
    assert len(top.containers) == 1  # the error-bar container
    assert len(bottom.patches) == 10  # histogram bars


def test_plot_gains_has_model_curve_and_random_baseline() -> None:
    y, p = _synthetic(200)
    fig = ev.plot_gains(y, p, "Gains")
    labels = _line_labels(fig)
    assert len(labels) == 2 and "random" in labels
    model = fig.axes[0].get_lines()[0]
    assert model.get_ydata()[0] == 0.0 and model.get_ydata()[-1] == pytest.approx(1.0)


def test_plot_shap_summary_works_with_str_column(tmp_path) -> None:
    rng = np.random.default_rng(0)
    n = 50
    X = pd.DataFrame(
        {
            "employees": rng.integers(1, 1000, n).astype(float),
            "industry": pd.Series(rng.choice(["saas", "retail", "bank"], n), dtype="str"),
            "region": pd.Categorical(rng.choice(["eu", "us"], n)),
            "age": np.where(rng.uniform(size=n) < 0.2, np.nan, rng.uniform(0, 10, n)),
        }
    )
    shap_values = rng.normal(size=(n, 4)) * np.array([3.0, 2.0, 0.5, 1.0])
    fig = ev.plot_shap_summary(shap_values, X, "SHAP", max_display=3)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["age", "industry", "employees"]  # most important on top, region cut
    assert ax.get_title() == "SHAP"
    assert len(fig.axes) == 2  # plus the colour bar
    fig.savefig(tmp_path / "shap.png")


def test_plot_shap_summary_shape_mismatch_raises() -> None:
    with pytest.raises(ValueError, match="shape"):
        ev.plot_shap_summary(np.zeros((3, 2)), pd.DataFrame({"a": [1, 2, 3]}), "SHAP")


def test_plot_bar_puts_largest_on_top() -> None:
    values = pd.Series({"b": 0.2, "a": 0.5, "c": -0.1})
    fig = ev.plot_bar(values, "Weights", "weight")
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[-1] == "a" and labels[0] == "c"  # y grows upward: last tick is the top bar
    assert len(ax.patches) == 3
    assert ax.get_xlabel() == "weight"
