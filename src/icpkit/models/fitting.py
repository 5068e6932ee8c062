"""Fit one outcome: split, logistic baseline, Optuna-tuned LightGBM, Platt calibration, refit.

Everything random takes the caller's seed: the random split, Optuna's TPE sampler (with
``n_jobs=1`` and a trial-count budget, the only way it is reproducible), LightGBM
(``deterministic=True``, fixed threads) and the bootstrap.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import lightgbm as lgb
import numpy as np
import optuna
import pandas as pd
from scipy.special import expit
from sklearn.linear_model import LogisticRegression

from icpkit.config import TrainingConfig
from icpkit.models.evaluation import log_loss, roc_auc
from icpkit.models.preprocessing import Preprocessor
from icpkit.models.propensity import PropensityModel

log = logging.getLogger(__name__)

#: Logged (warning) whenever a random split is used.
RANDOM_SPLIT_CAVEAT = (
    "random split: the test period is not later than training; "
    "AUCs may be optimistic for a model used on future rows"
)
#: Regularisation strengths tried for the logistic baseline (chosen on validation log loss).
LOGISTIC_C = (0.01, 0.1, 1.0, 10.0)


# ---------------------------------------------------------------------------------------------- split


@dataclass(frozen=True)
class Split:
    """Masks over the labelled rows: train, validation (model choice, calibration) and test.

    ``kind="time"``: ordered in time, train < validation < test, with the two cut-off times.
    ``kind="random"``: stratified, seeded, grouped by account; the cut-offs are ``NaT``.
    """

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    validation_start: pd.Timestamp
    test_start: pd.Timestamp
    kind: Literal["time", "random"] = "time"

    def describe(self) -> dict[str, Any]:
        """The split's kind, row counts per part and (time splits) cut-off dates, for logging."""
        out: dict[str, Any] = {
            "kind": self.kind,
            "train_rows": int(self.train.sum()),
            "validation_rows": int(self.validation.sum()),
            "test_rows": int(self.test.sum()),
        }
        if self.kind == "time":
            out |= {
                "validation_start": str(self.validation_start.date()),
                "test_start": str(self.test_start.date()),
            }
        return out


#: The historical name: a time split is the default kind of :class:`Split`.

def split_by_time(as_of: pd.Series, test_fraction: float, validation_fraction: float) -> Split:
    """Split rows by as-of time: the latest ``test_fraction`` is the untouched test period.

    Cut-offs are timestamps, so rows sharing a timestamp never straddle two periods.
    """
    t = pd.to_datetime(as_of).reset_index(drop=True)
    test_start = t.quantile(1.0 - test_fraction)
    before = t[t < test_start]
    validation_start = before.quantile(1.0 - validation_fraction) if len(before) else test_start
    test = (t >= test_start).to_numpy()
    validation = ((t >= validation_start) & (t < test_start)).to_numpy()
    train = (t < validation_start).to_numpy()
    return Split(train, validation, test, pd.Timestamp(validation_start), pd.Timestamp(test_start))


def split_random(
    account_ids: pd.Series,
    y: np.ndarray,
    test_fraction: float,
    validation_fraction: float,
    seed: int,
) -> Split:
    """Random split for exports without dates: stratified, seeded and grouped by account.

    Every account's rows land on one side only, so the test measures accounts the model has
    not seen. Accounts are stratified by their labels (all negative / mixed / all positive) and,
    within each stratum in a seeded random order, assigned to test until the stratum's test share
    of *rows* reaches ``test_fraction``; then likewise to validation from what is left
    (``validation_fraction`` of the remaining rows). Rows without an account id are their own group.

    Parameters
    ----------
    account_ids
        Account of each labelled row.
    y
        0/1 labels, aligned with ``account_ids``.
    test_fraction, validation_fraction
        Shares as in :func:`split_by_time`.
    seed
        The config's seed.

    Returns
    -------
    Split
        ``kind="random"``; the cut-off times are ``NaT``.
    """
    y = np.asarray(y, dtype=int)
    codes, _ = pd.factorize(pd.Series(account_ids).reset_index(drop=True))
    missing = codes < 0
    codes = codes.astype(np.int64)
    codes[missing] = codes.max(initial=-1) + 1 + np.arange(int(missing.sum()))
    n_groups = int(codes.max(initial=-1)) + 1
    rows = np.bincount(codes, minlength=n_groups)
    positives = np.bincount(codes, weights=y, minlength=n_groups)
    stratum = np.where(positives == 0, 0, np.where(positives == rows, 2, 1))
    order = np.random.default_rng(seed).permutation(n_groups)
    part = np.zeros(n_groups, dtype=np.int8)  # 0 train, 1 validation, 2 test
    for s in (0, 1, 2):
        members = order[stratum[order] == s]
        _take(members, rows, test_fraction, part, 2)
        rest = members[part[members] == 0]
        _take(rest, rows, validation_fraction, part, 1)
    row_part = part[codes]
    nat = pd.Timestamp("NaT")
    return Split(row_part == 0, row_part == 1, row_part == 2, nat, nat, kind="random")


def _take(groups: np.ndarray, rows: np.ndarray, fraction: float, part: np.ndarray, label: int) -> None:
    """Mark the first groups (in the given order) whose cumulative rows reach ``fraction`` of all."""
    if not groups.size:
        return
    sizes = rows[groups]
    target = fraction * sizes.sum()
    # A group goes in while its midpoint is below the target: the share lands as near as groups allow.
    cum = np.cumsum(sizes)
    part[groups[(cum - sizes / 2.0) < target]] = label


def bounded_fit_rows(split: Split, max_rows: int | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Masks of the training and validation rows that fit the models: all, or a seeded sample.

    When training + validation hold more than ``max_rows`` rows, each part keeps its share of
    ``max_rows`` (at least one row), drawn without replacement with the config's seed; rows keep
    their order. The test period is never sampled.
    """
    n_tr, n_va = int(split.train.sum()), int(split.validation.sum())
    if max_rows is None or n_tr + n_va <= max_rows:
        return split.train.copy(), split.validation.copy()
    rng = np.random.default_rng(seed)
    out = []
    for mask, n in ((split.train, n_tr), (split.validation, n_va)):
        keep = max(1, int(round(max_rows * n / (n_tr + n_va))))
        rows = np.flatnonzero(mask)
        sub = np.zeros_like(mask, dtype=bool)
        sub[np.sort(rng.choice(rows, size=min(keep, n), replace=False))] = True
        out.append(sub)
    return out[0], out[1]


# ------------------------------------------------------------------------------------------- logistic


def fit_platt(raw: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Platt scaling on held-out raw scores. Monotone, so it never changes a ranking (or AUC)."""
    lr = LogisticRegression(C=1e6, max_iter=1000)
    lr.fit(np.asarray(raw).reshape(-1, 1), np.asarray(y, dtype=int))
    return float(lr.coef_[0, 0]), float(lr.intercept_[0])


def _logistic(D: np.ndarray, y: np.ndarray, C: float, encoder: Preprocessor, outcome: str) -> PropensityModel:
    lr = LogisticRegression(C=C, max_iter=5000)
    lr.fit(D, y)
    return PropensityModel(
        outcome=outcome,
        kind="logistic",
        encoder=encoder,
        coef=lr.coef_[0].tolist(),
        intercept=float(lr.intercept_[0]),
    )


def fit_logistic(
    Xtr: pd.DataFrame,
    ytr: np.ndarray,
    Xva: pd.DataFrame,
    yva: np.ndarray,
    encoder: Preprocessor,
    outcome: str,
) -> tuple[PropensityModel, dict[str, Any]]:
    """Interpretable baseline: L2 logistic regression, C chosen on the validation period.

    Parameters
    ----------
    Xtr, Xva : DataFrame
        Training and validation rows as ``encoder``'s codes (the model reads their design).
    ytr, yva : ndarray
        0/1 labels.
    encoder : Preprocessor
        Fitted on the training rows.
    outcome : str
        The outcome's name.

    Returns
    -------
    tuple of PropensityModel and dict
        The uncalibrated model and the chosen ``{"C": ...}``.
    """
    Dtr, Dva = encoder.design_array(Xtr), encoder.design_array(Xva)
    best: tuple[float, float, PropensityModel] | None = None
    for C in LOGISTIC_C:
        model = _logistic(Dtr, ytr, C, encoder, outcome)
        loss = log_loss(yva, expit(Dva @ np.asarray(model.coef) + model.intercept))
        if best is None or loss < best[0] - 1e-12:
            best = (loss, C, model)
    assert best is not None
    _, C, model = best
    return model, {"C": C}


def refit_logistic(X: pd.DataFrame, y: np.ndarray, encoder: Preprocessor, outcome: str, C: float) -> PropensityModel:
    """The logistic baseline refitted on ``X`` (training + validation codes) with a chosen ``C``."""
    return _logistic(encoder.design_array(X), y, C, encoder, outcome)


# ------------------------------------------------------------------------------------------- lightgbm


def _lgb_params(seed: int, num_threads: int) -> dict[str, Any]:
    return {
        "objective": "binary",
        "metric": "binary_logloss",
        "verbosity": -1,
        "seed": seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": num_threads,
    }


@dataclass
class TuningResult:
    """The Optuna search's outcome, with what a reader needs to judge whether it is complete.

    ``cut_by_timeout`` is true when ``training.tuning.timeout_seconds`` stopped the search
    before ``n_trials`` trials had run; reruns of a cut search may then choose differently.
    """

    params: dict[str, Any]
    best_iteration: int
    best_validation_logloss: float
    trials: pd.DataFrame = field(default_factory=pd.DataFrame)
    #: Trials asked for (``training.tuning.n_trials``).
    n_trials: int = 0
    #: Trials that finished (completed or pruned).
    n_trials_done: int = 0
    cut_by_timeout: bool = False
    timeout_seconds: float | None = None

    def describe(self) -> dict[str, Any]:
        """Budget and completeness, for the run's params and the summary."""
        return {
            "n_trials": self.n_trials,
            "n_trials_done": self.n_trials_done,
            "cut_by_timeout": self.cut_by_timeout,
            "timeout_seconds": self.timeout_seconds,
            "best_iteration": self.best_iteration,
        }


def tune_lightgbm(
    Xtr: pd.DataFrame,
    ytr: np.ndarray,
    Xva: pd.DataFrame,
    yva: np.ndarray,
    categorical: list[str],
    training: TrainingConfig,
    seed: int,
    on_trial: Callable[[int, int], None] | None = None,
) -> TuningResult:
    """Optuna TPE search over LightGBM, early-stopped and pruned on the validation period.

    The budget is ``training.tuning.n_trials``: with a seeded sampler and one job, the same data
    gives the same trials and the same best settings on any machine. An optional
    ``training.tuning.timeout_seconds`` is only a safety net; when it cuts the search the result
    says so (``cut_by_timeout``, ``n_trials_done``) and a warning is logged.

    Parameters
    ----------
    Xtr, ytr, Xva, yva
        Encoded training / validation frames and labels.
    categorical
        Columns LightGBM treats as categorical codes.
    training
        The ``training`` config section (budget, rounds cap, threads).
    seed
        The config's seed.
    on_trial
        Called as ``on_trial(done, total)`` after each finished trial (for a progress bar).

    Returns
    -------
    TuningResult
    """
    # Trials vary min_data_in_leaf, which a pre-filtered Dataset cannot follow.
    dtrain = lgb.Dataset(
        Xtr, ytr, categorical_feature=categorical, free_raw_data=False, params={"feature_pre_filter": False}
    )
    dval = lgb.Dataset(
        Xva, yva, reference=dtrain, categorical_feature=categorical, free_raw_data=False,
        params={"feature_pre_filter": False},
    )  # fmt: skip
    base = _lgb_params(seed, training.num_threads)
    n_trials = training.tuning.n_trials
    timeout = training.tuning.timeout_seconds

    def objective(trial: optuna.Trial) -> float:
        params = {
            **base,
            "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.2, log=True),
            "num_leaves": trial.suggest_int("num_leaves", 4, 64, log=True),
            "min_data_in_leaf": trial.suggest_int("min_data_in_leaf", 10, 200, log=True),
            "feature_fraction": trial.suggest_float("feature_fraction", 0.5, 1.0),
            "bagging_fraction": trial.suggest_float("bagging_fraction", 0.6, 1.0),
            "bagging_freq": 1,
            "lambda_l2": trial.suggest_float("lambda_l2", 1e-3, 10.0, log=True),
            "cat_smooth": trial.suggest_float("cat_smooth", 1.0, 50.0, log=True),
        }

        def prune(env: lgb.callback.CallbackEnv) -> None:
            if env.iteration % 10 == 0 and env.evaluation_result_list:
                trial.report(env.evaluation_result_list[0][2], env.iteration)
                if trial.should_prune():
                    raise optuna.TrialPruned()

        booster = lgb.train(
            params,
            dtrain,
            num_boost_round=training.max_boost_rounds,
            valid_sets=[dval],
            callbacks=[lgb.early_stopping(50, verbose=False), prune],
        )
        trial.set_user_attr("best_iteration", int(booster.best_iteration or booster.current_iteration()))
        return float(booster.best_score["valid_0"]["binary_logloss"])

    callbacks = []
    if on_trial is not None:
        callbacks.append(lambda study, _trial: on_trial(len(study.trials), n_trials))

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=30),
    )
    study.optimize(
        objective,
        n_trials=n_trials,
        timeout=timeout,
        n_jobs=1,
        callbacks=callbacks,
        show_progress_bar=False,
    )
    # A cap shorter than one trial leaves nothing to choose from: the search always completes at
    # least one trial (the first trials are never pruned: n_startup_trials=5), cap or not.
    while (
        not any(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
        and len(study.trials) < n_trials
    ):
        study.optimize(objective, n_trials=1, n_jobs=1, callbacks=callbacks, show_progress_bar=False)
    done = sum(t.state.is_finished() for t in study.trials)
    cut = timeout is not None and done < n_trials
    if cut:
        log.warning(
            "tuning stopped by training.tuning.timeout_seconds=%s after %d of %d trials: "
            "a rerun may choose other settings (use the trial count as the budget to repeat results)",
            timeout,
            done,
            n_trials,
        )
    best = study.best_trial
    params = {**base, **best.params, "bagging_freq": 1}
    trials = study.trials_dataframe(attrs=("number", "value", "params", "user_attrs", "state", "duration"))
    return TuningResult(
        params,
        int(best.user_attrs["best_iteration"]),
        float(best.value),
        trials,
        n_trials=n_trials,
        n_trials_done=int(done),
        cut_by_timeout=cut,
        timeout_seconds=timeout,
    )


def scaled_rounds(best_iteration: int, n_fit_rows: int, n_train_rows: int) -> int:
    """Boosting rounds for a refit on more rows: the early-stopped count scaled by the row ratio.

    With more rows each round fits less noise, so the same learning rate supports
    proportionally more rounds before overfitting (the usual rule when refitting after early
    stopping, e.g. in scikit-learn's and XGBoost's guides).
    """
    if n_train_rows <= 0:
        raise ValueError("n_train_rows must be positive")
    return max(1, int(round(max(best_iteration, 1) * n_fit_rows / n_train_rows)))


def fit_lightgbm(
    Xtr: pd.DataFrame,
    ytr: np.ndarray,
    categorical: list[str],
    tuning: TuningResult,
    encoder: Preprocessor,
    outcome: str,
    num_boost_round: int | None = None,
) -> PropensityModel:
    """Fit the best trial's configuration on ``Xtr`` (deterministic).

    ``num_boost_round`` defaults to the tuned best iteration (for a fit on the training rows);
    for a refit on training + validation rows pass :func:`scaled_rounds`.
    """
    rounds = num_boost_round if num_boost_round is not None else max(tuning.best_iteration, 1)
    dtrain = lgb.Dataset(Xtr, ytr, categorical_feature=categorical)
    booster = lgb.train(tuning.params, dtrain, num_boost_round=rounds)
    return PropensityModel(outcome=outcome, kind="lightgbm", encoder=encoder, booster=booster)


def validation_auc(model: PropensityModel, Xva_enc: pd.DataFrame, yva: np.ndarray) -> float:
    """ROC-AUC of the model's raw score on encoded validation rows."""
    return roc_auc(yva, model.raw_score(Xva_enc, encoded=True))
