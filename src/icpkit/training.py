"""Train the propensity model of each outcome: the work of ``python -m pipelines.train``.

``fit_outcome`` is pure (data in, report out). ``train_outcomes`` loops over the configured
outcomes, skipping those without a table or enough data, and hands each report to an optional
tracker, which is the only thing here that touches MLflow.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from icpkit.config import Config
from icpkit.data.crm import CRMData
from icpkit.errors import InsufficientDataError
from icpkit.features import OutcomeDataset, build_outcome_dataset
from icpkit.models import evaluation as ev
from icpkit.models.fitting import (
    TimeSplit,
    TuningResult,
    fit_lightgbm,
    fit_logistic,
    fit_platt,
    split_by_time,
    tune_lightgbm,
    validation_auc,
)
from icpkit.models.leakage import check_single_feature_leakage
from icpkit.models.preprocessing import Preprocessor
from icpkit.models.propensity import PropensityModel
from icpkit.outcomes import OUTCOMES

if TYPE_CHECKING:
    from icpkit.registry import Tracker

log = logging.getLogger(__name__)


@dataclass
class OutcomeReport:
    """What training one outcome produced (or why it was skipped)."""

    outcome: str
    status: Literal["trained", "skipped"]
    reason: str = ""
    n_rows: int = 0
    n_labelled: int = 0
    n_positive: int = 0
    dataset: OutcomeDataset | None = None
    split: TimeSplit | None = None
    model: PropensityModel | None = None
    candidates: dict[str, PropensityModel] = field(default_factory=dict)
    validation_auc: dict[str, float] = field(default_factory=dict)
    test: ev.Evaluation | None = None
    candidate_tests: dict[str, ev.Evaluation] = field(default_factory=dict)
    tuning: TuningResult | None = None
    baseline_params: dict[str, Any] = field(default_factory=dict)
    single_feature_auc: dict[str, float] = field(default_factory=dict)
    #: TreeSHAP contributions (raw-score scale) on a sample of the test period, with its rows.
    shap_values: pd.DataFrame | None = None
    shap_rows: pd.DataFrame | None = None
    registration: Any = None
    run_id: str | None = None

    @property
    def labelled(self) -> OutcomeDataset:
        assert self.dataset is not None
        return self.dataset.subset(self.dataset.labelled)

    def test_frame(self) -> tuple[pd.DataFrame, np.ndarray]:
        """Raw test-period features and labels, e.g. to score a champion on the same rows."""
        assert self.split is not None
        data = self.labelled.subset(self.split.test)
        return data.X, data.y.to_numpy(dtype=int)


@dataclass
class TrainingResult:
    reports: dict[str, OutcomeReport]
    parent_run_id: str | None = None

    @property
    def trained(self) -> dict[str, OutcomeReport]:
        return {k: r for k, r in self.reports.items() if r.status == "trained"}

    @property
    def skipped(self) -> dict[str, OutcomeReport]:
        return {k: r for k, r in self.reports.items() if r.status == "skipped"}


def _check_minimum(outcome: str, n_labelled: int, n_pos: int, cfg: Config) -> None:
    t = cfg.training
    n_neg = n_labelled - n_pos
    if n_labelled < t.min_rows:
        raise InsufficientDataError(f"{n_labelled} labelled rows, fewer than training.min_rows={t.min_rows}")
    if min(n_pos, n_neg) < t.min_positives:
        raise InsufficientDataError(
            f"{n_pos} positive and {n_neg} negative rows; the rarer class needs at least "
            f"training.min_positives={t.min_positives}"
        )


def fit_outcome(dataset: OutcomeDataset, cfg: Config) -> OutcomeReport:
    """Fit, choose, calibrate and evaluate one outcome's model on a time split."""
    outcome = dataset.outcome
    labelled = dataset.subset(dataset.labelled)
    y_all = labelled.y.to_numpy(dtype=int)
    report = OutcomeReport(
        outcome=outcome,
        status="trained",
        n_rows=len(dataset.y),
        n_labelled=len(y_all),
        n_positive=int(y_all.sum()),
        dataset=dataset,
    )
    _check_minimum(outcome, len(y_all), int(y_all.sum()), cfg)
    split = split_by_time(labelled.as_of, cfg.training.test_fraction, cfg.training.validation_fraction)
    report.split = split
    for part, mask in (("train", split.train), ("validation", split.validation), ("test", split.test)):
        y_part = y_all[mask]
        if len(np.unique(y_part)) < 2:
            raise InsufficientDataError(
                f"the {part} period ({mask.sum()} rows) holds only one class; "
                "more history is needed for a time-based split"
            )

    tr, va, te = (labelled.subset(m) for m in (split.train, split.validation, split.test))
    ytr, yva, yte = (d.y.to_numpy(dtype=int) for d in (tr, va, te))
    log.info("%s: single-feature leakage check on %d training rows", outcome, len(ytr))
    report.single_feature_auc = check_single_feature_leakage(
        tr.X, ytr, cfg.leakage.max_single_feature_auc, outcome, seed=cfg.seed
    )

    # The encoder sees training rows only.
    encoder = Preprocessor().fit(tr.X)
    Etr, Eva, Ete = encoder.transform(tr.X), encoder.transform(va.X), encoder.transform(te.X)

    log.info("%s: logistic baseline", outcome)
    logistic, report.baseline_params = fit_logistic(Etr, ytr, Eva, yva, encoder, outcome)
    log.info(
        "%s: tuning LightGBM (%d trials, %.0fs budget)",
        outcome,
        cfg.training.tuning.n_trials,
        cfg.training.tuning.timeout_seconds,
    )
    report.tuning = tune_lightgbm(Etr, ytr, Eva, yva, encoder.categorical_columns_, cfg.training, cfg.seed)
    lightgbm = fit_lightgbm(Etr, ytr, encoder.categorical_columns_, report.tuning, encoder, outcome)

    for name, model in (("logistic", logistic), ("lightgbm", lightgbm)):
        model.calibration = fit_platt(model.raw_score(Eva, encoded=True), yva)
        report.validation_auc[name] = validation_auc(model, Eva, yva)
        report.candidates[name] = model
        report.candidate_tests[name] = ev.evaluate(
            yte, model.predict_proba(Ete, encoded=True), n_boot=cfg.training.bootstrap_samples, seed=cfg.seed
        )
    # The simpler model wins ties: it is easier to explain and no worse.
    chosen = (
        "lightgbm" if report.validation_auc["lightgbm"] > report.validation_auc["logistic"] else "logistic"
    )
    report.model = report.candidates[chosen]
    report.model.metadata.update(
        {
            "outcome": outcome,
            "chosen_over": "logistic" if chosen == "lightgbm" else "lightgbm",
            "validation_auc": report.validation_auc,
            "split": split.describe(),
            "features": encoder.columns_,
            "feature_source": dataset.feature_source,
            "source_dimension": dataset.source_dimension,
        }
    )
    report.test = report.candidate_tests[chosen]

    # Explanations for the plots and the ICP weights: a seeded sample of the test period.
    rng = np.random.default_rng(cfg.seed)
    n = min(cfg.training.shap_sample_rows, len(te.X))
    idx = np.sort(rng.choice(len(te.X), size=n, replace=False))
    rows = te.X.iloc[idx].reset_index(drop=True)
    contrib, _ = report.model.contributions(rows)
    report.shap_values, report.shap_rows = contrib, rows
    return report


def train_outcomes(
    crm: CRMData,
    cfg: Config,
    tracker: Tracker | None = None,
    on_outcome: Callable[[str, str], None] | None = None,
) -> TrainingResult:
    """Train every configured outcome; log and register each through ``tracker`` if given.

    ``on_outcome(outcome, status)`` is called as each outcome starts and ends (for progress).
    """
    reports: dict[str, OutcomeReport] = {}
    for name in cfg.training.outcomes:
        outcome = OUTCOMES[name]
        if on_outcome:
            on_outcome(name, "start")
        if not crm.has(outcome.table):
            reports[name] = OutcomeReport(name, "skipped", f"table '{outcome.table}' is absent")
        elif missing := [c for c in outcome.needs_columns if c not in crm[outcome.table].columns]:
            reports[name] = OutcomeReport(
                name, "skipped", f"table '{outcome.table}' has no column {', '.join(missing)}"
            )
        else:
            dataset = build_outcome_dataset(
                crm, outcome, cfg.attributes, cfg.training.engagement_windows_days, cfg.leakage.deny_columns
            )
            try:
                reports[name] = fit_outcome(dataset, cfg)
            except InsufficientDataError as err:
                y = dataset.y.dropna()
                reports[name] = OutcomeReport(
                    name, "skipped", str(err), len(dataset.y), len(y), int(y.sum()), dataset=dataset
                )
        report = reports[name]
        if report.status == "skipped":
            log.warning("%s: skipped: %s", name, report.reason)
        elif tracker is not None:
            log_outcome(report, cfg, tracker)
        if on_outcome:
            on_outcome(name, report.status)
    return TrainingResult(reports)


def log_outcome(report: OutcomeReport, cfg: Config, tracker: Tracker) -> None:
    """Child run with params, metrics, plots and the model; register it behind the gate."""
    from icpkit.registry import champion_score_on, log_model, register_with_gate

    assert report.model is not None and report.test is not None and report.split is not None
    name = report.outcome
    with tracker.start_outcome(name) as run_id:
        report.run_id = run_id
        tracker.log_params(
            {
                "outcome": name,
                "model_kind": report.model.kind,
                "n_rows": report.n_rows,
                "n_labelled": report.n_labelled,
                "n_positive": report.n_positive,
                "split": report.split.describe(),
                "baseline": report.baseline_params,
                "lightgbm": {k: v for k, v in (report.tuning.params if report.tuning else {}).items()},
                "lightgbm.best_iteration": report.tuning.best_iteration if report.tuning else None,
                "refused_features": report.dataset.refused if report.dataset else {},
            }
        )
        tracker.log_metrics(report.test.as_flat("test"))
        for kind, evaluation in report.candidate_tests.items():
            tracker.log_metrics(evaluation.as_flat(f"{kind}_test"))
        tracker.log_metrics({f"{k}_val_roc_auc": v for k, v in report.validation_auc.items()})
        tracker.log_dict(report.single_feature_auc, "diagnostics/single_feature_auc.json")
        if report.tuning is not None:
            tracker.log_trials(report.tuning.trials)
        X_test, y_test = report.test_frame()
        p_test = report.model.predict_proba(X_test)
        title = f"{name} — {report.model.kind}, test period from {report.split.test_start.date()}"
        tracker.log_figure(ev.plot_roc(y_test, p_test, title), "plots/roc.png")
        tracker.log_figure(ev.plot_calibration(y_test, p_test, title), "plots/calibration.png")
        tracker.log_figure(ev.plot_gains(y_test, p_test, title), "plots/gains.png")
        if report.shap_values is not None and report.shap_rows is not None:
            tracker.log_figure(
                ev.plot_shap_summary(
                    report.shap_values.to_numpy(), report.shap_rows, f"{name}: SHAP summary"
                ),
                "plots/shap_summary.png",
            )
        tracker.log_table(ev.gains_table(y_test, p_test), "tables/gains.csv")
        tracker.log_table(ev.calibration_table(y_test, p_test), "tables/calibration.csv")

        with tempfile.TemporaryDirectory() as tmp:
            model_dir = report.model.save(Path(tmp) / "model")
            example = X_test.head(5)
            model_uri = log_model(tracker, model_dir, name=f"{name}_model", input_example=example)
        if cfg.tracking.register_models:
            registered = f"{cfg.tracking.model_prefix}-{name}"
            champion = champion_score_on(tracker.tracking_uri, registered, X_test, y_test, _auc_metric)
            report.registration = register_with_gate(
                tracker.tracking_uri,
                registered,
                model_uri,
                candidate_score=float(report.test.metrics["roc_auc"]),
                champion_score=champion,
            )
            tracker.log_params({"registered_model": registered, "alias": report.registration.alias})


def signal_note(auc: float, ci_low: float) -> str:
    """Say plainly when a model has found little or nothing, instead of presenting it as an ICP."""
    if not np.isfinite(auc) or ci_low <= 0.5:
        return "no evidence of signal: the AUC's confidence interval includes 0.5"
    if auc < 0.6:
        return "weak signal (AUC < 0.6): treat any ICP from this outcome with caution"
    return ""


def _auc_metric(y: np.ndarray, p: np.ndarray) -> float:
    return float(roc_auc_score(y, p))


def summary_table(result: TrainingResult) -> pd.DataFrame:
    """One row per outcome: rows, positives, model, test AUC with CI, lift, alias or skip reason."""
    rows = []
    for name, r in result.reports.items():
        row: dict[str, Any] = {
            "outcome": name,
            "status": r.status,
            "rows": r.n_labelled,
            "positives": r.n_positive,
        }
        if r.status == "trained" and r.test is not None and r.model is not None:
            lo, hi = r.test.ci["roc_auc"]
            row |= {
                "model": r.model.kind,
                "test_auc": r.test.metrics["roc_auc"],
                "auc_ci": f"[{lo:.3f}, {hi:.3f}]",
                "top_decile_lift": r.test.metrics["top_decile_lift"],
                "ece": r.test.metrics["ece"],
                "alias": getattr(r.registration, "alias", "—"),
                "note": signal_note(r.test.metrics["roc_auc"], lo),
            }
        else:
            row |= {"model": "—", "alias": "—", "note": r.reason}
        rows.append(row)
    return pd.DataFrame(rows)
