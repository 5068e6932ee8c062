"""Train the propensity model of each outcome: the work of ``python -m pipelines.train``.

``fit_outcome`` is pure (data in, report out). ``train_outcomes`` loops over the configured
outcomes, skipping those without a table or enough data. Nothing here touches MLflow: logging and
registration happen at the edge, at the end of a complete run (:mod:`icpkit.registry.publish`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy.stats import mannwhitneyu
from statsmodels.stats.multitest import multipletests

from icpkit.config import Config
from icpkit.data.crm import CRMData
from icpkit.errors import InsufficientDataError
from icpkit.features import Catalogue, OutcomeDataset, attribute_catalogue, build_outcome_dataset, ids_in
from icpkit.memory import release_freed_memory
from icpkit.models import evaluation as ev
from icpkit.models.explain import explain, to_frame
from icpkit.models.fitting import (
    RANDOM_SPLIT_CAVEAT,
    Split,
    TuningResult,
    bounded_fit_rows,
    fit_lightgbm,
    fit_logistic,
    fit_platt,
    refit_logistic,
    scaled_rounds,
    split_by_time,
    split_random,
    tune_lightgbm,
    validation_auc,
)
from icpkit.models.leakage import LeakageReport, add_permutation, screen_features
from icpkit.models.preprocessing import Preprocessor
from icpkit.models.propensity import PropensityModel
from icpkit.outcomes import OUTCOMES
from icpkit.threads import thread_limits

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
    split: Split | None = None
    model: PropensityModel | None = None
    candidates: dict[str, PropensityModel] = field(default_factory=dict)
    validation_auc: dict[str, float] = field(default_factory=dict)
    test: ev.Evaluation | None = None
    candidate_tests: dict[str, ev.Evaluation] = field(default_factory=dict)
    tuning: TuningResult | None = None
    baseline_params: dict[str, Any] = field(default_factory=dict)
    single_feature_auc: dict[str, float] = field(default_factory=dict)
    #: Every feature's leakage evidence and the suspected leaks (see icpkit.models.leakage).
    leakage: LeakageReport | None = None
    #: The chosen model on test rows whose account is in neither training nor validation rows
    #: (``None`` when those rows hold a single class), so memorising accounts cannot pass as skill.
    test_unseen: ev.Evaluation | None = None
    #: Test rows of unseen accounts (``test_unseen`` is measured on them).
    n_test_unseen: int = 0
    #: Thread policy applied while fitting (icpkit.threads.thread_report), to record on the run.
    threads: dict[str, Any] = field(default_factory=dict)
    #: Rows that fitted the models per part (``training.max_fit_rows``): ``{"train": ...,
    #: "validation": ..., "train_available": ..., "validation_available": ..., "sampled": bool}``.
    fit_rows: dict[str, Any] = field(default_factory=dict)
    #: How the final models were fitted: ``{"applied", "rows", "lightgbm_rounds", ...}``.
    refit: dict[str, Any] = field(default_factory=dict)
    #: The chosen model's calibrated probabilities on the test period, in its row order (kept
    #: at fit so the evidence, plots and signal tests do not re-encode a million test rows).
    test_propensity: np.ndarray | None = None
    #: TreeSHAP contributions (raw-score scale) on a sample of the test period, with its rows.
    shap_values: pd.DataFrame | None = None
    shap_rows: pd.DataFrame | None = None
    #: The same contributions as a ``shap.Explanation`` (feature names aligned with values).
    explanation: Any = None

    @property
    def labelled(self) -> OutcomeDataset:
        """The rows whose outcome is known."""
        assert self.dataset is not None
        return self.dataset.labelled_subset()

    def labelled_part(self, mask: np.ndarray | None = None, columns: list[str] | None = None) -> OutcomeDataset:
        """Labelled rows under ``mask`` (over the labelled rows), optionally only some feature columns.

        Cheaper than ``labelled.subset(mask)``: the other rows' features are never copied.
        """
        assert self.dataset is not None
        return self.dataset.labelled_subset(mask, columns)

    def test_frame(self, rows: np.ndarray | None = None) -> tuple[pd.DataFrame, np.ndarray]:
        """Raw test-period features and labels, e.g. to score a champion on the same rows.

        ``rows`` (sorted positions within the test period) takes only those rows; the others'
        features are never copied.
        """
        assert self.split is not None
        mask = self.split.test
        if rows is not None:
            mask = np.zeros_like(mask)
            mask[np.flatnonzero(self.split.test)[rows]] = True
        data = self.labelled_part(mask)
        return data.X, data.y.to_numpy(dtype=int)

    def test_predictions(self) -> tuple[np.ndarray, np.ndarray]:
        """The chosen model's test-period probabilities and the labels (scored once, at fit)."""
        assert self.split is not None and self.model is not None
        if self.test_propensity is None:
            X, y = self.test_frame()
            self.test_propensity = self.model.predict_proba(X)
            return self.test_propensity, y
        return self.test_propensity, self.labelled_part(self.split.test, columns=[]).y.to_numpy(dtype=int)


@dataclass
class TrainingResult:
    """Every configured outcome's report (trained or skipped) and the attribute catalogue."""

    reports: dict[str, OutcomeReport]
    #: Every attribute's role and kind, as the features were built.
    catalogue: Catalogue = field(default_factory=dict)
    _p_values: dict[str, float] | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def trained(self) -> dict[str, OutcomeReport]:
        """The reports of the outcomes that trained."""
        return {k: r for k, r in self.reports.items() if r.status == "trained"}

    @property
    def skipped(self) -> dict[str, OutcomeReport]:
        """The reports of the outcomes that were skipped."""
        return {k: r for k, r in self.reports.items() if r.status == "skipped"}

    def release_features(self) -> None:
        """Drop every outcome's feature columns (see :meth:`OutcomeDataset.release_features`)."""
        for r in self.reports.values():
            if r.dataset is not None:
                r.dataset.release_features()

    def signal_p_values(self) -> dict[str, float]:
        """Per trained outcome, the Holm-adjusted one-sided p-value of "test AUC > 0.5".

        The test is Mann-Whitney's (AUC is its U statistic scaled), exact under "the scores say
        nothing about the label"; Holm across the outcomes keeps the chance that *any* model of a
        run on noise is called a signal at the significance level, not one per outcome. Computed
        once per result (it scores every test row; the ICP and publishing both ask).
        """
        if self._p_values is None:
            self._p_values = self._signal_p_values()
        return dict(self._p_values)

    def _signal_p_values(self) -> dict[str, float]:
        raw = {}
        for name, r in self.trained.items():
            p, y = r.test_predictions()
            raw[name] = float(mannwhitneyu(p[y == 1], p[y == 0], alternative="greater").pvalue)
        if not raw:
            return {}
        adjusted = multipletests(list(raw.values()), method="holm")[1]
        return dict(zip(raw, (float(a) for a in adjusted), strict=True))


def _check_minimum(n_labelled: int, n_pos: int, cfg: Config) -> None:
    t = cfg.training
    n_neg = n_labelled - n_pos
    if n_labelled < t.min_rows:
        raise InsufficientDataError(f"{n_labelled} labelled rows, fewer than training.min_rows={t.min_rows}")
    if min(n_pos, n_neg) < t.min_positives:
        raise InsufficientDataError(
            f"{n_pos} positive and {n_neg} negative rows; the rarer class needs at least "
            f"training.min_positives={t.min_positives}"
        )


def _split(labelled: OutcomeDataset, y: np.ndarray, cfg: Config) -> Split:
    t = cfg.training
    if t.split == "random":
        log.warning("%s: %s", labelled.outcome, RANDOM_SPLIT_CAVEAT)
        return split_random(labelled.account_ids, y, t.test_fraction, t.validation_fraction, cfg.seed)
    return split_by_time(labelled.as_of, t.test_fraction, t.validation_fraction)


def fit_outcome(
    dataset: OutcomeDataset,
    cfg: Config,
    on_trial: Callable[[int, int], None] | None = None,
) -> OutcomeReport:
    """Fit, choose, calibrate, refit and evaluate one outcome's model.

    Parameters
    ----------
    dataset
        The outcome's rows (labelled and not) with features, labels, accounts and as-of times.
    cfg
        The run's config (``training``, ``leakage`` and ``seed`` are read).
    on_trial
        Called as ``on_trial(done, total)`` after each tuning trial (for a progress bar).

    Returns
    -------
    OutcomeReport

    Raises
    ------
    InsufficientDataError
        Too few rows or positives, or a period with a single class.
    LeakageError
        A feature's single-feature AUC exceeds ``leakage.max_single_feature_auc``.
    """
    # One thread per fit by default, for LightGBM, BLAS and OpenMP alike (icpkit.threads).
    with thread_limits(cfg.training.num_threads) as threads:
        report = _fit_outcome(dataset, cfg, on_trial)
    report.threads = threads
    return report


def _fit_outcome(dataset: OutcomeDataset, cfg: Config, on_trial: Callable[[int, int], None] | None) -> OutcomeReport:
    outcome = dataset.outcome
    t = cfg.training
    # Ids, times and labels of the labelled rows; their features are copied per part below.
    labelled = dataset.labelled_subset(columns=[])
    y_all = labelled.y.to_numpy(dtype=int)
    report = OutcomeReport(
        outcome=outcome,
        status="trained",
        n_rows=len(dataset.y),
        n_labelled=len(y_all),
        n_positive=int(y_all.sum()),
        dataset=dataset,
    )
    _check_minimum(len(y_all), int(y_all.sum()), cfg)
    split = _split(labelled, y_all, cfg)
    report.split = split
    for part, mask in (("train", split.train), ("validation", split.validation), ("test", split.test)):
        y_part = y_all[mask]
        if len(np.unique(y_part)) < 2:
            raise InsufficientDataError(
                f"the {part} period ({mask.sum()} rows) holds only one class; "
                + ("more history is needed for a time-based split" if split.kind == "time" else "more rows are needed")
            )

    # Fits see a bounded sample of the training and validation periods (training.max_fit_rows).
    fit_train, fit_validation = bounded_fit_rows(split, t.max_fit_rows, cfg.seed)
    report.fit_rows = {
        "train": int(fit_train.sum()),
        "validation": int(fit_validation.sum()),
        "train_available": int(split.train.sum()),
        "validation_available": int(split.validation.sum()),
        "sampled": bool(fit_train.sum() + fit_validation.sum() < split.train.sum() + split.validation.sum()),
    }
    if report.fit_rows["sampled"]:
        log.info(
            "%s: models fit on a seeded sample of %d of %d training + validation rows (training.max_fit_rows)",
            outcome,
            fit_train.sum() + fit_validation.sum(),
            split.train.sum() + split.validation.sum(),
        )
    tr, va, te = (dataset.labelled_subset(m) for m in (fit_train, fit_validation, split.test))
    ytr, yva, yte = (d.y.to_numpy(dtype=int) for d in (tr, va, te))
    log.info("%s: leakage screen on %d training rows", outcome, len(ytr))
    leakage = screen_features(
        tr.X, ytr, outcome, cfg.leakage.max_single_feature_auc, dataset.feature_source, seed=cfg.seed
    )
    report.single_feature_auc = leakage.single_feature_auc()

    # Model choice and settings are decided on train -> validation; the encoder sees training rows only.
    encoder = Preprocessor().fit(tr.X)
    Etr, Eva = encoder.transform(tr.X), encoder.transform(va.X)

    log.info("%s: logistic baseline", outcome)
    logistic, report.baseline_params = fit_logistic(Etr, ytr, Eva, yva, encoder, outcome)
    cap = f", {t.tuning.timeout_seconds:.0f}s safety cap" if t.tuning.timeout_seconds else ""
    log.info("%s: tuning LightGBM (%d trials%s)", outcome, t.tuning.n_trials, cap)
    report.tuning = tune_lightgbm(Etr, ytr, Eva, yva, encoder.categorical_columns_, t, cfg.seed, on_trial=on_trial)
    lightgbm = fit_lightgbm(Etr, ytr, encoder.categorical_columns_, report.tuning, encoder, outcome)

    selection = {"logistic": logistic, "lightgbm": lightgbm}
    for name, model in selection.items():
        model.calibration = fit_platt(model.raw_score(Eva, encoded=True), yva)
        report.validation_auc[name] = validation_auc(model, Eva, yva)
    # The simpler model wins ties: it is easier to explain and no worse.
    chosen = "lightgbm" if report.validation_auc["lightgbm"] > report.validation_auc["logistic"] else "logistic"
    other = "logistic" if chosen == "lightgbm" else "lightgbm"

    # Permutation losses need a model that has not seen the validation rows: the train-only fit.
    picked = selection[chosen]
    report.leakage = add_permutation(
        leakage, lambda E: picked.raw_score(E, encoded=True), Eva, yva, seed=cfg.seed,
        shuffled=picked.shuffled_raw_scores(Eva),
    )  # fmt: skip
    for s in report.leakage.suspected:
        log.warning(
            "%s: suspected leak '%s': %s. If it is filled in after the outcome, add it to leakage.deny_columns.",
            outcome,
            s.feature,
            s.evidence,
        )

    if t.refit:
        report.candidates, report.refit = _refit(tr, va, selection, report, outcome)
    else:
        report.candidates = selection
        report.refit = {"applied": False, "rows": len(ytr)}

    # CIs for the chosen model only: the other candidate is a point of comparison. One
    # candidate's encoded test rows at a time (a million accounts' test period is ~0.3 GB each).
    p_test = {}
    for name in (chosen, other):
        model = report.candidates[name]
        p_test[name] = model.predict_proba(model.encoder.transform(te.X), encoded=True)
        report.candidate_tests[name] = ev.evaluate(
            yte, p_test[name], n_boot=t.bootstrap_samples if name == chosen else 0, seed=cfg.seed
        )
    report.model = report.candidates[chosen]
    report.test = report.candidate_tests[chosen]
    report.test_propensity = p_test[chosen]

    # Test rows of accounts never seen in training or validation: skill that is not memory.
    unseen = ~ids_in(te.account_ids, labelled.account_ids[split.train | split.validation].dropna())
    report.n_test_unseen = int(unseen.sum())
    if len(np.unique(yte[unseen])) == 2:
        report.test_unseen = ev.evaluate(
            yte[unseen], p_test[chosen][unseen], n_boot=t.bootstrap_samples, seed=cfg.seed
        )

    report.model.metadata.update(
        {
            "outcome": outcome,
            "chosen_over": other,
            "validation_auc": report.validation_auc,
            "split": split.describe(),
            "fit_rows": report.fit_rows,
            "refit": report.refit,
            "features": report.model.encoder.columns_,
            "feature_source": dataset.feature_source,
            "source_dimension": dataset.source_dimension,
            "feature_spec": dataset.spec.to_dict() if dataset.spec else None,
        }
    )

    # Explanations for the plots and the ICP weights: a seeded sample of the test period.
    rng = np.random.default_rng(cfg.seed)
    n = min(t.shap_sample_rows, len(te.X))
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


def _refit(
    tr: OutcomeDataset,
    va: OutcomeDataset,
    selection: dict[str, PropensityModel],
    report: OutcomeReport,
    outcome: str,
) -> tuple[dict[str, PropensityModel], dict[str, Any]]:
    """Both candidates refitted on training + validation rows with the settings chosen on validation."""
    assert report.tuning is not None
    X = pd.concat([tr.X, va.X], ignore_index=True)
    y = np.concatenate([tr.y.to_numpy(dtype=int), va.y.to_numpy(dtype=int)])
    encoder = Preprocessor().fit(X)
    E = encoder.transform(X)
    rounds = scaled_rounds(report.tuning.best_iteration, len(y), len(tr.y))
    log.info("%s: refit on %d training + validation rows (%d LightGBM rounds)", outcome, len(y), rounds)
    final = {
        "logistic": refit_logistic(E, y, encoder, outcome, report.baseline_params["C"]),
        "lightgbm": fit_lightgbm(
            E, y, encoder.categorical_columns_, report.tuning, encoder, outcome, num_boost_round=rounds
        ),
    }
    # Calibration stays out of sample: each refit model takes the Platt scaling fitted on the
    # validation scores of its train-only twin. No held-out rows are left to fit it on the refit
    # model itself, and its own (in-sample) scores would be overconfident. The twin has the same
    # settings and 4/5 of the rows (LightGBM rounds scaled to match), so its raw scores sit on the
    # same scale; Platt is monotone, so any mismatch cannot change a ranking or AUC, and it would
    # show in the test ECE, which is measured on the refit model.
    for name, model in final.items():
        model.calibration = selection[name].calibration
    info = {
        "applied": True,
        "rows": len(y),
        "train_rows": len(tr.y),
        "lightgbm_rounds": rounds,
        "lightgbm_train_rounds": report.tuning.best_iteration,
        "logistic_C": report.baseline_params["C"],
        "calibration": "Platt scaling of the train-only fit on validation scores",
    }
    return final, info


def train_outcomes(
    crm: CRMData,
    cfg: Config,
    catalogue: Catalogue | None = None,
    on_outcome: Callable[[str, str], None] | None = None,
    on_trial: Callable[[str, int, int], None] | None = None,
) -> TrainingResult:
    """Train every configured outcome (pure: nothing is logged or registered here).

    ``catalogue`` holds every attribute's role and kind (inferred if not given);
    ``on_outcome(outcome, status)`` is called as each outcome starts and ends, and
    ``on_trial(outcome, done, total)`` after each tuning trial (for progress displays).
    """
    catalogue = catalogue if catalogue is not None else attribute_catalogue(crm, cfg)

    names = list(cfg.training.outcomes)
    workers = min(cfg.training.parallel_outcomes, len(names))

    def build(name: str) -> OutcomeDataset | OutcomeReport:
        reason = _skip_reason(crm, name)
        if reason is not None:
            return OutcomeReport(name, "skipped", reason)
        dataset = build_outcome_dataset(crm, OUTCOMES[name], catalogue, cfg)
        release_freed_memory()  # the raw rows behind the features
        return dataset

    def fit(name: str, built: OutcomeDataset | OutcomeReport) -> OutcomeReport:
        if isinstance(built, OutcomeReport):
            report = built
        else:
            try:
                trial = (lambda done, total, n=name: on_trial(n, done, total)) if on_trial else None
                report = fit_outcome(built, cfg, trial)
            except InsufficientDataError as err:
                y = built.y.dropna()
                report = OutcomeReport(name, "skipped", str(err), len(built.y), len(y), int(y.sum()), dataset=built)
        if report.status == "skipped":
            log.warning("%s: skipped: %s", name, report.reason)
        if on_outcome:
            on_outcome(name, report.status)
        return report

    reports = _run_outcomes(names, build, fit, on_outcome, workers, cfg.training.num_threads)
    release_freed_memory()  # the fits' encoded frames and tuning datasets
    return TrainingResult(reports, catalogue=catalogue)


def _run_outcomes(
    names: list[str],
    build: Callable[[str], Any],
    fit: Callable[[str, Any], OutcomeReport],
    on_outcome: Callable[[str, str], None] | None,
    workers: int,
    num_threads: int,
) -> dict[str, OutcomeReport]:
    """``fit(name, build(name))`` for every outcome, in turn or ``workers`` fits side by side."""
    if workers <= 1:
        reports = {}
        for name in names:
            if on_outcome:
                on_outcome(name, "start")
            reports[name] = fit(name, build(name))
        return reports
    # Outcomes fit side by side in threads (LightGBM, BLAS and scikit-learn release the GIL),
    # each single-threaded as the policy says; the limit is set once around all of them so no
    # thread's exit can lift it under another. Each fit is seeded and self-contained, so the
    # reports are the same as one at a time. Every outcome's features are built first, one at a
    # time: building holds the raw rows beside the features, the memory peak at a million rows,
    # and a build beside two fits would add their peaks.
    built = {}
    for name in names:
        if on_outcome:
            on_outcome(name, "start")
        built[name] = build(name)
    with thread_limits(num_threads), ThreadPoolExecutor(workers, "icpkit-outcome") as pool:
        futures = {name: pool.submit(fit, name, built.pop(name)) for name in names}
        try:
            return {name: futures[name].result() for name in names}
        except BaseException:
            for f in futures.values():
                f.cancel()
            raise


#: Expected calibration error above which the summary warns (the profile uses the same figure).
HIGH_ECE = 0.1


def signal_note(auc: float, ci_low: float, ece: float = 0.0) -> str:
    """Say plainly when a model has found little or nothing, or is poorly calibrated."""
    notes = []
    if not np.isfinite(auc) or ci_low <= 0.5:
        notes.append("no evidence of signal: the AUC's confidence interval includes 0.5")
    elif auc < 0.6:
        notes.append("weak signal (AUC < 0.6): treat any ICP from this outcome with caution")
    if ece > HIGH_ECE:
        notes.append(f"calibration error {ece:.2f}: the probabilities are off, rankings are not")
    return "; ".join(notes)


def _extra_columns(r: OutcomeReport) -> dict[str, Any]:
    """Unseen-account AUC, suspected leaks and tuning completeness of a trained outcome."""
    row: dict[str, Any] = {"unseen_rows": r.n_test_unseen}
    if r.test_unseen is not None:
        lo, hi = r.test_unseen.ci.get("roc_auc", (float("nan"), float("nan")))
        row |= {"unseen_auc": r.test_unseen.metrics["roc_auc"], "unseen_auc_ci": f"[{lo:.3f}, {hi:.3f}]"}
    else:
        row |= {"unseen_auc": float("nan"), "unseen_auc_ci": "—"}
    row["suspected_leaks"] = ", ".join(r.leakage.suspected_names) if r.leakage is not None else ""
    if r.tuning is not None:
        row["tuning_trials"] = f"{r.tuning.n_trials_done}/{r.tuning.n_trials}"
        row["tuning_cut_by_timeout"] = r.tuning.cut_by_timeout
    return row


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
                "note": signal_note(r.test.metrics["roc_auc"], lo, r.test.metrics["ece"]),
            }
            row |= _extra_columns(r)
        else:
            row |= {"model": "—", "alias": "—", "note": r.reason}
        rows.append(row)
    return pd.DataFrame(rows)
