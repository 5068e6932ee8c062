"""Unit tests for icpkit.models.evaluation: hand-made data with answers known in advance."""

from __future__ import annotations

import math

import numpy as np
import pytest
from matplotlib.figure import Figure
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

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


def _cases() -> list[tuple[np.ndarray, np.ndarray]]:
    """Hand-picked hard cases: heavy ties, scores at exactly 0 and 1, a single positive."""
    cases = []
    for seed in range(12):
        rng = np.random.default_rng(seed)
        n = int(rng.integers(8, 300))
        p = rng.uniform(size=n)
        if seed % 3 == 0:
            p = np.round(p, 1)  # eleven distinct values: ties everywhere
        if seed % 4 == 0:
            p[:3] = [0.0, 1.0, 1.0]  # log loss clipping
        y = (rng.uniform(size=n) < p).astype(int)
        if seed % 5 == 0:
            y[:] = 0
            y[n // 2] = 1
        cases.append((y, p))
    return cases


def test_compute_metrics_equal_scikit_learn_to_1e12() -> None:
    for y, p in _cases():
        m = ev.compute_metrics(y, p)
        assert m["roc_auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
        assert m["pr_auc"] == pytest.approx(average_precision_score(y, p), abs=1e-12)
        assert m["log_loss"] == pytest.approx(log_loss(y, np.c_[1 - p, p], labels=[0, 1]), abs=1e-12)
        assert m["brier"] == pytest.approx(brier_score_loss(y, p), abs=1e-12)
        assert ev.log_loss(y, p) == m["log_loss"]


def test_roc_auc_takes_any_real_score_and_counts_ties_as_half() -> None:
    y = np.array([0, 1, 0, 1, 1])
    s = np.array([-3.0, 2.5, 2.5, 10.0, -1.0])  # raw log-odds, not probabilities
    # pairs (pos, neg): 2.5>-3, 2.5=2.5 (1/2), 10>both, -1>-3 but <2.5  ->  (1 + .5 + 2 + 1) / 6
    assert ev.roc_auc(y, s) == pytest.approx(4.5 / 6)
    assert ev.roc_auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert math.isnan(ev.roc_auc(np.ones(4), np.arange(4.0)))


def _reference_bootstrap(y, p, n_boot, seed, alpha=0.05):
    """The previous implementation: one resample at a time, validated scikit-learn metrics."""
    rng = np.random.default_rng(seed)
    samples = {name: [] for name in ev.METRIC_NAMES}
    for _ in range(n_boot):
        idx = rng.integers(0, y.size, size=y.size)
        yb, pb = y[idx], p[idx]
        two = yb.min() != yb.max()
        values = {
            "roc_auc": roc_auc_score(yb, pb) if two else np.nan,
            "pr_auc": average_precision_score(yb, pb) if two else np.nan,
            "log_loss": log_loss(yb, np.c_[1 - pb, pb], labels=[0, 1]),
            "brier": brier_score_loss(yb, pb, labels=[0, 1]),
            # stable sort of the *resampled* rows: ties keep their resample order
            "top_decile_lift": (
                yb[np.argsort(-pb, kind="stable")[: math.ceil(yb.size / 10)]].mean() / yb.mean()
                if yb.sum()
                else np.nan
            ),
            "ece": sum(
                abs(yb[b].sum() - pb[b].sum()) / yb.size
                for k in range(10)
                if (b := np.clip(np.floor(pb * 10).astype(int), 0, 9) == k).any()
            ),
        }
        for name, v in values.items():
            if np.isfinite(v):
                samples[name].append(v)
    return {
        name: tuple(np.percentile(v, [100 * alpha / 2, 100 * (1 - alpha / 2)])) if v else (np.nan, np.nan)
        for name, v in samples.items()
    }


def test_bootstrap_ci_equals_the_resample_by_resample_reference_for_the_same_seed() -> None:
    for i, (y, p) in enumerate(_cases()[:8]):
        fast = ev.bootstrap_ci(y, p, n_boot=40, seed=i)
        slow = _reference_bootstrap(y, p, n_boot=40, seed=i)
        for name in ev.METRIC_NAMES:
            np.testing.assert_allclose(fast[name], slow[name], rtol=0, atol=1e-12, err_msg=name)


def test_bootstrap_ci_blocks_give_the_same_result_as_one_block(monkeypatch) -> None:
    y, p = _synthetic(500)
    whole = ev.bootstrap_ci(y, p, n_boot=30, seed=4)
    monkeypatch.setattr(ev, "_BLOCK_CELLS", 1200)  # two resamples per block
    assert ev.bootstrap_ci(y, p, n_boot=30, seed=4) == whole


def test_evaluate_without_resamples_gives_point_metrics_only() -> None:
    y, p = _synthetic(200)
    e = ev.evaluate(y, p, n_boot=0)
    assert e.ci == {} and e.metrics == ev.compute_metrics(y, p)
    flat = e.as_flat("logistic_test")
    assert set(flat) == {f"logistic_test_{m}" for m in ev.METRIC_NAMES} | {
        "logistic_test_n",
        "logistic_test_n_positive",
    }


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



