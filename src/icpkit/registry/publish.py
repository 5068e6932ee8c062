"""Publish a complete training to MLflow: runs, metrics, plots, the ICP and the registered models.

Called once, at the very end of a run that trained and profiled successfully
(:func:`icpkit.workflow.train_and_profile`), so a crash during training or the ICP stage leaves
the registry and every ``@champion`` exactly as they were. All models are logged first; aliases
move last, together.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.metrics import roc_auc_score

from icpkit.models import evaluation as ev
from icpkit.models.explain import plot_beeswarm, plot_waterfall
from icpkit.registry.registry import (
    CHALLENGER,
    RegistrationResult,
    champion_score_on,
    log_model,
    register_with_gate,
)
from icpkit.registry.tracking import Tracker
from icpkit.secrets import mask_secrets

if TYPE_CHECKING:
    from icpkit.training import OutcomeReport
    from icpkit.workflow import TrainedRun

log = logging.getLogger(__name__)


@dataclass
class Candidate:
    """A logged model waiting for its alias: registered only after every model of the run is logged."""

    name: str
    model_uri: str
    score: float
    eligible: bool
    why_not: str
    X: Any = None
    y: Any = None


@dataclass
class PublishResult:
    run_id: str
    registrations: dict[str, RegistrationResult] = field(default_factory=dict)

    def alias(self, key: str) -> str:
        reg = self.registrations.get(key)
        return reg.alias if reg is not None else "—"


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    return float(roc_auc_score(y, p))


def _log_outcome(report: OutcomeReport, tracker: Tracker, parent_params: dict[str, Any]) -> Candidate:
    """Child run with params, metrics, plots and the model; returns the model as a candidate."""
    name = report.outcome
    with tracker.start_outcome(name):
        tracker.log_params(_outcome_params(report))
        tracker.log_metrics(report.test.as_flat("test"))
        for kind, evaluation in report.candidate_tests.items():
            tracker.log_metrics(evaluation.as_flat(f"{kind}_test"))
        tracker.log_metrics({f"{k}_val_roc_auc": v for k, v in report.validation_auc.items()})
        tracker.log_dict(report.single_feature_auc, "diagnostics/single_feature_auc.json")
        if report.tuning is not None:
            tracker.log_trials(report.tuning.trials)
        _log_plots(report, tracker)
        X_test, y_test = report.test_frame()
        with tempfile.TemporaryDirectory() as tmp:
            model_dir = report.model.save(Path(tmp) / "model")
            uri = log_model(tracker, model_dir, name=f"{name}_model", input_example=X_test.head(5))
    lo = report.test.ci["roc_auc"][0]
    return Candidate(
        name=name, model_uri=uri, score=float(report.test.metrics["roc_auc"]), eligible=bool(lo > 0.5),
        why_not="" if lo > 0.5 else "no evidence of signal (the test AUC's CI includes 0.5)", X=X_test, y=y_test,
    )  # fmt: skip


def _outcome_params(report: OutcomeReport) -> dict[str, Any]:
    return {
        "outcome": report.outcome,
        "model_kind": report.model.kind,
        "n_rows": report.n_rows,
        "n_labelled": report.n_labelled,
        "n_positive": report.n_positive,
        "split": report.split.describe(),
        "baseline": report.baseline_params,
        "lightgbm": dict(report.tuning.params) if report.tuning else {},
        "lightgbm.best_iteration": report.tuning.best_iteration if report.tuning else None,
        "refused_features": report.dataset.refused if report.dataset else {},
    }


def _log_plots(report: OutcomeReport, tracker: Tracker) -> None:
    X_test, y_test = report.test_frame()
    p_test = report.model.predict_proba(X_test)
    title = f"{report.outcome} — {report.model.kind}, test period from {report.split.test_start.date()}"
    tracker.log_figure(ev.plot_roc(y_test, p_test, title), "plots/roc.png")
    tracker.log_figure(ev.plot_calibration(y_test, p_test, title), "plots/calibration.png")
    tracker.log_figure(ev.plot_gains(y_test, p_test, title), "plots/gains.png")
    tracker.log_table(ev.gains_table(y_test, p_test), "tables/gains.csv")
    tracker.log_table(ev.calibration_table(y_test, p_test), "tables/calibration.csv")
    if report.explanation is not None and len(report.explanation.values):
        tracker.log_figure(plot_beeswarm(report.explanation, f"{report.outcome}: SHAP (test sample)"), "plots/shap_beeswarm.png")
        tracker.log_figure(
            plot_waterfall(report.explanation, 0, f"{report.outcome}: why the first test row scores as it does"),
            "plots/shap_waterfall_example.png",
        )


def _register(candidates: list[Candidate], tracker: Tracker, prefix: str) -> dict[str, RegistrationResult]:
    """Aliases move last, for every model together (nothing was registered while training)."""
    out = {}
    for c in candidates:
        registered = f"{prefix}-{c.name}"
        champion = None
        if c.X is not None:
            champion = champion_score_on(tracker.tracking_uri, registered, c.X, c.y, _auc, on_error="none")
        result = register_with_gate(
            tracker.tracking_uri, registered, c.model_uri, candidate_score=c.score if c.eligible else float("nan"),
            champion_score=champion, description=None,
        )  # fmt: skip
        if not c.eligible and result.alias == CHALLENGER:
            log.info("%s: registered as challenger: %s", registered, c.why_not)
        out[c.name] = result
    return out


def publish(run: TrainedRun, tracker: Tracker, icp_folder: Path | None = None) -> PublishResult:
    """Log the whole run (parent + one child per outcome), the ICP, and register every model."""
    cfg = run.config
    params = {"config": cfg.model_dump(mode="json"), "data_fingerprint": run.crm.fingerprint(), "version": run.version}
    tags = {"source": mask_secrets(cfg.data.source), "icpkit.dataset": run.dataset, "icpkit.version": run.version}
    with tracker.start_training(run_name=run.run_name, params=params, tags=tags) as run_id:
        candidates = [_log_outcome(r, tracker, params) for r in run.training.trained.values()]
        if run.icp is not None and icp_folder is not None:
            tracker.log_artifacts(icp_folder, "icp")
            tracker.set_tags({"icp.evidence": run.icp.profile["evidence"]["status"]})
        result = PublishResult(run_id)
        if cfg.tracking.register_models:
            result.registrations = _register(candidates, tracker, cfg.tracking.model_prefix)
    return result
