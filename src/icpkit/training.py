"""Train the propensity model of each outcome: the work of ``python -m pipelines.train``.

``fit_outcome`` is pure (data in, report out). ``train_outcomes`` loops over the configured
outcomes, skipping those without a table or enough data. Nothing here touches MLflow: logging and
registration happen at the edge, at the end of a complete run (:mod:`icpkit.registry.publish`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from icpkit.config import Config
from icpkit.data.crm import CRMData
from icpkit.errors import InsufficientDataError
from icpkit.features import Catalogue, OutcomeDataset, attribute_catalogue, build_outcome_dataset
from icpkit.models import evaluation as ev
from icpkit.models.encoding import FeatureEncoder
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
from icpkit.models.explain import explain, to_frame
from icpkit.models.leakage import check_single_feature_leakage
from icpkit.models.propensity import PropensityModel
from icpkit.outcomes import OUTCOMES

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
    #: The same contributions as a ``shap.Explanation`` (feature names aligned with values).
    explanation: Any = None

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
    #: Every attribute's role and kind, as the features were built.
    catalogue: Catalogue = field(default_factory=dict)

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
    encoder = FeatureEncoder().fit(tr.X)
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
            "feature_spec": dataset.spec.to_dict() if dataset.spec else None,
        }
    )
    report.test = report.candidate_tests[chosen]

    # Explanations for the plots and the ICP weights: a seeded sample of the test period.
    rng = np.random.default_rng(cfg.seed)
    n = min(cfg.training.shap_sample_rows, len(te.X))
    idx = np.sort(rng.choice(len(te.X), size=n, replace=False))
    rows = te.X.iloc[idx].reset_index(drop=True)
    report.explanation = explain(report.model, rows)
    report.shap_values, report.shap_rows = to_frame(report.explanation), rows
    return report


def _skip_reason(crm: CRMData, name: str) -> str | None:
    outcome = OUTCOMES[name]
    if not crm.has(outcome.table):
        return f"table '{outcome.table}' is absent"
    if len(crm[outcome.table]) == 0:
        return f"table '{outcome.table}' has no rows"
    missing = [c for c in outcome.needs_columns if c not in crm[outcome.table].columns]
    if missing:
        return f"table '{outcome.table}' has no column {', '.join(missing)}"
    return None


def train_outcomes(
    crm: CRMData,
    cfg: Config,
    catalogue: Catalogue | None = None,
    on_outcome: Callable[[str, str], None] | None = None,
) -> TrainingResult:
    """Train every configured outcome (pure: nothing is logged or registered here).

    ``catalogue`` holds every attribute's role and kind (inferred if not given);
    ``on_outcome(outcome, status)`` is called as each outcome starts and ends (for progress).
    """
    catalogue = catalogue if catalogue is not None else attribute_catalogue(crm, cfg)
    reports: dict[str, OutcomeReport] = {}
    for name in cfg.training.outcomes:
        if on_outcome:
            on_outcome(name, "start")
        reason = _skip_reason(crm, name)
        if reason is not None:
            reports[name] = OutcomeReport(name, "skipped", reason)
        else:
            dataset = build_outcome_dataset(crm, OUTCOMES[name], catalogue, cfg)
            try:
                reports[name] = fit_outcome(dataset, cfg)
            except InsufficientDataError as err:
                y = dataset.y.dropna()
                reports[name] = OutcomeReport(
                    name, "skipped", str(err), len(dataset.y), len(y), int(y.sum()), dataset=dataset
                )
        if reports[name].status == "skipped":
            log.warning("%s: skipped: %s", name, reports[name].reason)
        if on_outcome:
            on_outcome(name, reports[name].status)
    return TrainingResult(reports, catalogue=catalogue)


def signal_note(auc: float, ci_low: float) -> str:
    """Say plainly when a model has found little or nothing, instead of presenting it as an ICP."""
    if not np.isfinite(auc) or ci_low <= 0.5:
        return "no evidence of signal: the AUC's confidence interval includes 0.5"
    if auc < 0.6:
        return "weak signal (AUC < 0.6): treat any ICP from this outcome with caution"
    return ""


def summary_table(result: TrainingResult, aliases: dict[str, str] | None = None) -> pd.DataFrame:
    """One row per outcome: rows, positives, model, test AUC with CI, lift, alias or skip reason.

    ``aliases`` maps an outcome to the alias its registered version got (``—`` when absent).
    """
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
                "alias": (aliases or {}).get(name, "—"),
                "note": signal_note(r.test.metrics["roc_auc"], lo),
            }
        else:
            row |= {"model": "—", "alias": "—", "note": r.reason}
        rows.append(row)
    return pd.DataFrame(rows)
