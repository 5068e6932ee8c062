"""Fit one outcome: time split, logistic baseline, Optuna-tuned LightGBM, Platt calibration.

Everything random takes the caller's seed: Optuna's TPE sampler (with ``n_jobs=1``, the only way
it is reproducible), LightGBM (``deterministic=True``, fixed threads) and the bootstrap.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
import optuna
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, roc_auc_score

from icpkit.config import TrainingConfig
from icpkit.models.preprocessing import Preprocessor
from icpkit.models.propensity import PropensityModel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TimeSplit:
    """Masks over the labelled rows, ordered in time: train < validation < test."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    validation_start: pd.Timestamp
    test_start: pd.Timestamp

    def describe(self) -> dict[str, Any]:
        return {
            "train_rows": int(self.train.sum()),
            "validation_rows": int(self.validation.sum()),
            "test_rows": int(self.test.sum()),
            "validation_start": str(self.validation_start.date()),
            "test_start": str(self.test_start.date()),
        }


def split_by_time(as_of: pd.Series, test_fraction: float, validation_fraction: float) -> TimeSplit:
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
    return TimeSplit(train, validation, test, pd.Timestamp(validation_start), pd.Timestamp(test_start))


def fit_platt(raw: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Platt scaling on held-out raw scores. Monotone, so it never changes a ranking (or AUC)."""
    lr = LogisticRegression(C=1e6, max_iter=1000)
    lr.fit(np.asarray(raw).reshape(-1, 1), np.asarray(y, dtype=int))
    return float(lr.coef_[0, 0]), float(lr.intercept_[0])


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
    best: tuple[float, float, LogisticRegression] | None = None
    for C in (0.01, 0.1, 1.0, 10.0):
        lr = LogisticRegression(C=C, max_iter=5000)
        lr.fit(Dtr, ytr)
        loss = log_loss(yva, lr.predict_proba(Dva)[:, 1], labels=[0, 1])
        if best is None or loss < best[0] - 1e-12:
            best = (loss, C, lr)
    assert best is not None
    _, C, lr = best
    model = PropensityModel(
        outcome=outcome,
        kind="logistic",
        encoder=encoder,
        coef=lr.coef_[0].tolist(),
        intercept=float(lr.intercept_[0]),
    )
    return model, {"C": C}


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
    params: dict[str, Any]
    best_iteration: int
    best_validation_logloss: float
    trials: pd.DataFrame = field(default_factory=pd.DataFrame)


def tune_lightgbm(
    Xtr: pd.DataFrame,
    ytr: np.ndarray,
    Xva: pd.DataFrame,
    yva: np.ndarray,
    categorical: list[str],
    training: TrainingConfig,
    seed: int,
) -> TuningResult:
    """Optuna TPE search over LightGBM, early-stopped and pruned on the validation period."""
    # Trials vary min_data_in_leaf, which a pre-filtered Dataset cannot follow.
    dtrain = lgb.Dataset(
        Xtr, ytr, categorical_feature=categorical, free_raw_data=False, params={"feature_pre_filter": False}
    )
    dval = lgb.Dataset(
        Xva, yva, reference=dtrain, categorical_feature=categorical, free_raw_data=False,
        params={"feature_pre_filter": False},
    )  # fmt: skip
    base = _lgb_params(seed, training.num_threads)

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

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="minimize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=30),
    )
    study.optimize(
        objective,
        n_trials=training.tuning.n_trials,
        timeout=training.tuning.timeout_seconds,
        n_jobs=1,
        show_progress_bar=False,
    )
    best = study.best_trial
    params = {**base, **best.params, "bagging_freq": 1}
    trials = study.trials_dataframe(attrs=("number", "value", "params", "user_attrs", "state", "duration"))
    return TuningResult(params, int(best.user_attrs["best_iteration"]), float(best.value), trials)


def fit_lightgbm(
    Xtr: pd.DataFrame,
    ytr: np.ndarray,
    categorical: list[str],
    tuning: TuningResult,
    encoder: Preprocessor,
    outcome: str,
) -> PropensityModel:
    """Refit the best trial's configuration on the training period (deterministic)."""
    dtrain = lgb.Dataset(Xtr, ytr, categorical_feature=categorical)
    booster = lgb.train(tuning.params, dtrain, num_boost_round=max(tuning.best_iteration, 1))
    return PropensityModel(outcome=outcome, kind="lightgbm", encoder=encoder, booster=booster)


def validation_auc(model: PropensityModel, Xva_enc: pd.DataFrame, yva: np.ndarray) -> float:
    return float(roc_auc_score(yva, model.raw_score(Xva_enc, encoded=True)))
