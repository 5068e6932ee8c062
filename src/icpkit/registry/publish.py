"""Publish a complete training to MLflow: runs, metrics, plots, the ICP and the registered models.

Called once, at the very end of a run that trained and profiled successfully
(:func:`icpkit.workflow.train_and_profile`), so a crash during training or the ICP stage leaves
the registry and every ``@champion`` exactly as they were. Every model is logged first, then
:func:`~icpkit.registry.gate.register_candidates` creates all versions and moves the aliases last,
together (a publish killed half-way is rolled back when the next training starts).

Models earn ``@champion`` only with evidence: an outcome model whose test AUC's CI includes 0.5,
and an ``icp-scorer`` whose profile says "insufficient evidence", are registered as challengers.
"""

from __future__ import annotations

import inspect
import logging
import tempfile
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from icpkit.features import account_attributes_as_of, raw_rows
from icpkit.memory import release_freed_memory
from icpkit.models import evaluation as ev
from icpkit.models.figures import FigureRenderer
from icpkit.registry.gate import Candidate, Registration, config_hash, dataset_key, register_candidates
from icpkit.registry.packaging import log_model, to_model_input
from icpkit.registry.tracking import Tracker
from icpkit.scoring.served import ICPScorer, icp_input_spec, outcome_input_spec
from icpkit.secrets import mask_secrets

if TYPE_CHECKING:
    from icpkit.training import OutcomeReport
    from icpkit.workflow import TrainedRun

log = logging.getLogger(__name__)

SCORER = "scorer"
#: How many rows of each kind the signature and the typical input example are learnt from.
REFERENCE_ROWS = 2000


@dataclass
class PublishResult:
    """The MLflow run a training was published to and each registered model's registration."""

    run_id: str
    registrations: dict[str, Registration] = field(default_factory=dict)

    def alias(self, key: str) -> str:
        """The alias the model ``key`` received (e.g. ``champion``), or "—" if it was not registered."""
        reg = self.registrations.get(key)
        return reg.alias if reg is not None else "—"


# ---------------------------------------------------------------------------------------------
# outcome models


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
        "tuning": report.tuning.describe() if report.tuning else {},
        "threads": report.threads or {},
        "fit_rows": report.fit_rows or {},
        "refit": report.refit or {},
    }


def _log_tables(report: OutcomeReport, tracker: Tracker) -> None:
    p_test, y_test = report.test_predictions()
    tracker.log_table(ev.gains_table(y_test, p_test), "tables/gains.csv")
    tracker.log_table(ev.calibration_table(y_test, p_test), "tables/calibration.csv")


def _test_raw_rows(run: TrainedRun, report: OutcomeReport) -> tuple[pd.DataFrame, np.ndarray]:
    """The test period in the raw form the registered model takes, with its labels."""
    positions = np.flatnonzero(report.dataset.labelled.to_numpy())[report.split.test]
    test = raw_rows(run.crm, report.dataset.spec, positions)
    return test, report.labelled_part(report.split.test, columns=[]).y.to_numpy(dtype=int)


#: Rows a registered model scores through MLflow's own ``predict`` to check its signature.
SIGNATURE_CHECK_ROWS = 5


def registered_output(model: Any, rows: pd.DataFrame) -> pd.DataFrame:
    """A registered model's output on raw rows, for judging it: its scores, reasons skipped.

    A few rows go through MLflow's ``predict`` first, so a changed schema fails as it would in
    serving; then the icpkit scorer inside scores every row with ``reasons=False``. A judge reads
    the scores only, and an outcome model's reasons are exact per-row SHAP (~1,000 rows/s): on a
    million accounts' test period, minutes per outcome. A model whose scorer cannot skip reasons
    is scored through ``predict`` whole.
    """
    data = to_model_input(rows)
    model.predict(data.head(SIGNATURE_CHECK_ROWS))
    scorer = getattr(model.unwrap_python_model(), "scorer", None)
    if scorer is None or "reasons" not in inspect.signature(scorer.predict).parameters:
        return model.predict(data)
    return scorer.predict(data, reasons=False)


def _champion_auc(run: TrainedRun, report: OutcomeReport) -> Callable[[Any], float]:
    """The registered champion's AUC on this run's test period, scored through its own inputs.

    The raw test rows are built only when a champion is scored (not held for every outcome
    until registration: at a million accounts they are ~0.3 GB each), with the same metric code
    as the candidate's test AUC, so equal predictions give a bit-equal score.
    """
    column = f"{report.outcome}_propensity"

    def score(model: Any) -> float:
        test, y = _test_raw_rows(run, report)
        return float(ev.roc_auc(y, registered_output(model, test)[column].to_numpy(dtype=float)))

    return score


def outcome_candidate(
    run: TrainedRun, report: OutcomeReport, tracker: Tracker, prefix: str, p_value: float
) -> Candidate:
    """Log one outcome's child run and model; the model becomes a registration candidate.

    Its plots are drawn elsewhere and uploaded by :func:`publish` (see :mod:`icpkit.models.figures`).
    """
    name = report.outcome
    spec = report.dataset.spec
    reference = raw_rows(run.crm, spec, np.arange(min(REFERENCE_ROWS, len(run.crm[spec.table]))))
    # Learnt from every row's raw form when the features were built (a dataset made by hand: now).
    input_spec = report.dataset.input_spec or outcome_input_spec(spec, raw_rows(run.crm, spec)).to_dict()
    report.model.metadata["input_spec"] = input_spec
    report.model.metadata["max_unseen_share"] = run.config.scoring.max_unseen_share
    with tracker.start_outcome(name) as child:
        tracker.log_params(_outcome_params(report))
        tracker.log_metrics(report.test.as_flat("test"))
        for kind, evaluation in report.candidate_tests.items():
            tracker.log_metrics(evaluation.as_flat(f"{kind}_test"))
        tracker.log_metrics({f"{k}_val_roc_auc": v for k, v in report.validation_auc.items()})
        if report.leakage is not None:
            tracker.log_dict(report.leakage.to_dict(), "diagnostics/leakage.json")
            tracker.set_tags({"icpkit.suspected_leaks": ", ".join(report.leakage.suspected_names) or "none"})
        if report.test_unseen is not None:
            tracker.log_metrics(report.test_unseen.as_flat("test_unseen"))
        if report.tuning is not None and report.tuning.cut_by_timeout:
            tracker.set_tags({"icpkit.tuning_cut_by_timeout": "true"})
        if report.tuning is not None:
            tracker.log_trials(report.tuning.trials)
        _log_tables(report, tracker)
        with tempfile.TemporaryDirectory() as tmp:
            ref = log_model(tracker.tracking_uri, child, report.model.save(Path(tmp) / "model"), name, reference)
    release_freed_memory()
    lo = report.test.ci["roc_auc"][0]
    # Only a model that beats chance (Holm-adjusted across the run's outcomes) may become champion.
    signal = p_value < run.config.icp.significance_level
    return Candidate(
        name=f"{prefix}-{name}", model=ref,
        score=float(report.test.metrics["roc_auc"]) if signal else float("nan"),
        score_champion=_champion_auc(run, report),
        description=f"Calibrated propensity that {report.dataset.spec.table} rows {_verb(name)} "
        f"({run.dataset}); test AUC {report.test.metrics['roc_auc']:.3f} "
        f"[{lo:.3f}, {report.test.ci['roc_auc'][1]:.3f}]",
    )  # fmt: skip


def _verb(outcome: str) -> str:
    return {"conversion": "convert", "win": "are won", "expansion": "expand", "renewal": "renew"}.get(outcome, outcome)


# ---------------------------------------------------------------------------------------------
# the ICP scorer


def _scorer_holdouts(run: TrainedRun) -> Iterator[tuple[pd.DataFrame, np.ndarray]]:
    """Each fit outcome's test rows as raw account rows as of the row's time, with labels.

    One outcome at a time: at a million accounts the test periods together are ~0.4 GB of raw
    rows, and each is scored and dropped before the next is built.
    """
    fitted = run.icp.fitted
    for o in run.icp.derivation.evidence.with_signal:
        r = run.training.reports[o]
        test = r.labelled_part(r.split.test, columns=[])
        raw = account_attributes_as_of(run.crm, test.account_ids, test.as_of, fitted.input_columns()[1:])
        yield raw.assign(as_of=test.as_of.to_numpy()), test.y.to_numpy(dtype=int)


def _mean_auc(run: TrainedRun, fit_points: Callable[[pd.DataFrame], np.ndarray]) -> float:
    """The mean over the fit outcomes' test periods of the AUC of ``fit_points(rows)``."""
    aucs = [roc_auc_score(y, fit_points(rows)) for rows, y in _scorer_holdouts(run) if len(np.unique(y)) == 2]
    return float(np.mean(aucs)) if aucs else float("nan")


def _champion_mean_auc(run: TrainedRun) -> Callable[[Any], float]:
    """The registered scorer's mean fit-points AUC on this run's holdout (built when called)."""

    def score(model: Any) -> float:
        return _mean_auc(run, lambda rows: registered_output(model, rows)["fit_points"].to_numpy(dtype=float))

    return score


def scorer_candidate(run: TrainedRun, tracker: Tracker, run_id: str, prefix: str) -> Candidate:
    """The fitted ICP as ``icp-scorer``, judged by its fit points' mean AUC on the test periods."""
    fitted = run.icp.fitted
    book = run.icp.derivation.book
    scorer = ICPScorer(fitted, icp_input_spec(fitted, book), run.config.scoring.max_unseen_share)
    score = float("nan")
    if run.icp.sufficient:
        score = _mean_auc(run, lambda rows: scorer.predict(rows)["fit_points"].to_numpy(dtype=float))
        release_freed_memory()
    with tempfile.TemporaryDirectory() as tmp:
        ref = log_model(tracker.tracking_uri, run_id, scorer.save(Path(tmp) / "scorer"), SCORER,
                        book.reindex(columns=fitted.input_columns()).head(REFERENCE_ROWS))  # fmt: skip
    status = run.icp.profile["evidence"]["status"]
    return Candidate(
        name=f"{prefix}-{SCORER}", model=ref, score=score, metric="test_fit_points_auc",
        score_champion=_champion_mean_auc(run),
        description=f"ICP scores of accounts ({run.dataset}): fit points and score, tier, engagement, quadrant, "
        f"segment, negative-ICP flags and reasons; ICP evidence {status}, version {run.version}",
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# the run


def _summary_metrics(run: TrainedRun) -> dict[str, dict[str, float]]:
    out = {}
    for name, r in run.training.trained.items():
        lo, hi = r.test.ci["roc_auc"]
        out[name] = {
            "test_roc_auc": r.test.metrics["roc_auc"], "test_roc_auc_ci_low": lo, "test_ece": r.test.metrics["ece"]
        }
    return out


def publish(
    run: TrainedRun, tracker: Tracker, icp_folder: Path | None = None, figures: FigureRenderer | None = None
) -> PublishResult:
    """Log the whole run (parent + one child per outcome), the ICP, and register every model.

    The outcome plots are drawn by ``figures`` (see :mod:`icpkit.models.figures`), where the
    caller may have submitted them already; by default a renderer of its own draws them in a
    helper process while the runs and models are logged.
    """
    cfg = run.config
    prefix = cfg.tracking.model_prefix
    params = {"config": cfg.model_dump(mode="json"), "data_fingerprint": run.crm.fingerprint(), "version": run.version}
    tags = {"source": mask_secrets(cfg.data.source), "icpkit.dataset": run.dataset, "icpkit.version": run.version}
    with (
        FigureRenderer() if figures is None else nullcontext(figures) as figures,
        tracker.start_training(run.run_name, params=params, tags=tags) as run_id,
    ):
        figures.submit_trained(run.training)  # those not submitted yet render while the runs are logged
        tracker.log_dataset_inputs(mask_secrets(cfg.data.source), run.crm.tables, run.crm.fingerprint())
        tracker.log_summary_metrics(_summary_metrics(run))
        p_values = run.training.signal_p_values()
        outcomes = {
            name: outcome_candidate(run, r, tracker, prefix, p_values[name]) for name, r in run.training.trained.items()
        }
        candidates = list(outcomes.values())
        if run.icp is not None:
            if icp_folder is not None:
                tracker.log_artifacts(icp_folder, "icp")
            tracker.set_tags({"icp.evidence": run.icp.profile["evidence"]["status"]})
            if run.icp.fitted.fit is not None:
                candidates.append(scorer_candidate(run, tracker, run_id, prefix))
        for name, candidate in outcomes.items():  # drawn meanwhile; uploaded before anything is registered
            figures.log(name, tracker, candidate.model.run_id)
        result = PublishResult(run_id)
        if cfg.tracking.register_models and candidates:
            regs = register_candidates(
                tracker.tracking_uri, candidates, run_id=run_id,
                dataset_key=dataset_key(cfg.data.source, {t: tc.source for t, tc in cfg.data.tables.items()}),
                config_hash=config_hash(cfg.model_dump(mode="json")), fingerprint=run.crm.fingerprint(),
                dataset_label=run.dataset, promote_on_schema_change=cfg.tracking.promote_on_schema_change,
            )  # fmt: skip
            result.registrations = {reg.name.removeprefix(f"{prefix}-"): reg for reg in regs}
    return result
