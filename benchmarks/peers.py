"""Benchmark: icpkit's test AUC next to logistic regression, default LightGBM and FLAML, same rows.

Run by hand (not a test)::

    python -m benchmarks.peers [--config pipelines/configs/default.yaml ...] [--flaml-budget 30]

For each config (default: the synthetic CRM and every real example whose config exists) it
trains icpkit as ``make train`` does (``train_outcomes``), then, per trained outcome, takes
icpkit's **own** labelled rows and split (``OutcomeReport.labelled`` / ``.split``: the same
feature frame, the same training, validation and test rows) and fits three peers on them:

- **logistic**: scikit-learn ``LogisticRegression`` (C=1) on median-imputed, standardised
  numbers and one-hot categories (values seen < 5 times pooled), fitted on train + validation;
- **lightgbm default**: ``LGBMClassifier()`` with its defaults and pandas categories, fitted on
  train + validation;
- **FLAML**: ``AutoML(metric="roc_auc", time_budget=--flaml-budget)`` given train + validation
  rows in time order (``split_type="time"``; stratified for a random split), holding out its own
  validation part and refitting its best model on all of them (``retrain_full``).

icpkit's final model is also fitted on train + validation (refit) with its choices made on the
validation period, so all four are scored on the same test rows having seen the same rows. All
fits are single-threaded. Wall time, CPU time and peak RSS per step (see :mod:`benchmarks.meter`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.meter import Meter

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ["default.yaml", "maven_crm.yaml", "ravenstack.yaml", "ibm_telco.yaml"]


def _categorical(X: pd.DataFrame) -> list[str]:
    return [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c]) or pd.api.types.is_bool_dtype(X[c])]


def _as_categories(fit: pd.DataFrame, *others: pd.DataFrame) -> list[pd.DataFrame]:
    """Non-numeric columns as pandas categories with the fitting rows' levels (unseen -> NaN)."""
    cats = _categorical(fit)
    out = []
    for X in (fit, *others):
        X = X.copy()
        for c in cats:
            levels = sorted(fit[c].dropna().astype(str).unique())
            X[c] = pd.Categorical(X[c].astype("object").where(X[c].notna(), None), categories=levels)
        for c in X.columns:
            if c not in cats:
                X[c] = pd.to_numeric(X[c], errors="coerce").astype("float64")
        out.append(X)
    return out


def _logistic(Xfit: pd.DataFrame, yfit: np.ndarray, Xte: pd.DataFrame, seed: int) -> np.ndarray:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    cats = _categorical(Xfit)
    nums = [c for c in Xfit.columns if c not in cats]

    def text(X: pd.DataFrame) -> pd.DataFrame:
        return X[cats].astype("object").where(X[cats].notna(), "(missing)").astype(str)

    pre = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), nums),
            ("cat", OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=5), cats),
        ]
    )
    pipe = make_pipeline(pre, LogisticRegression(C=1.0, max_iter=2000, random_state=seed))

    def frame(X: pd.DataFrame) -> pd.DataFrame:
        out = X[nums].apply(pd.to_numeric, errors="coerce").astype("float64")
        return pd.concat([out, text(X)], axis=1) if cats else out

    pipe.fit(frame(Xfit), yfit)
    return pipe.predict_proba(frame(Xte))[:, 1]


def _lightgbm(Xfit: pd.DataFrame, yfit: np.ndarray, Xte: pd.DataFrame, seed: int) -> np.ndarray:
    import lightgbm as lgb

    A, B = _as_categories(Xfit, Xte)
    model = lgb.LGBMClassifier(random_state=seed, n_jobs=1, verbose=-1)
    model.fit(A, yfit)
    return model.predict_proba(B)[:, 1]


def _flaml(
    Xfit: pd.DataFrame, yfit: np.ndarray, Xte: pd.DataFrame, seed: int, budget: float, split: str
) -> tuple[np.ndarray, str]:
    from flaml import AutoML

    A, B = _as_categories(Xfit, Xte)
    automl = AutoML()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        automl.fit(
            A, yfit, task="classification", metric="roc_auc", time_budget=budget, n_jobs=1, seed=seed,
            eval_method="holdout", split_type=split, retrain_full=True, verbose=0,
        )  # fmt: skip
    return automl.predict_proba(B)[:, 1], str(automl.best_estimator)


def _load(config: Path, tmp: Path):  # noqa: ANN202
    from icpkit.config import config_from_dict, load_config
    from icpkit.data.loading import load_crm
    from icpkit.data.synthetic import ensure_synthetic_crm

    cfg = load_config(config)
    if cfg.data.synthetic is not None:
        raw = cfg.model_dump(mode="json")
        raw["data"]["source"] = str(tmp / "synthetic")
        cfg = config_from_dict(raw)
    extract = cfg.data.extract_date or dt.date.today()
    if cfg.data.synthetic is not None:
        ensure_synthetic_crm(cfg.data.source, cfg.data.synthetic, extract)
    return cfg, load_crm(cfg.data, extract)


def run_config(config: Path, budget: float) -> list[dict[str, object]]:
    from sklearn.metrics import roc_auc_score

    from icpkit.features import attribute_catalogue, build_outcome_dataset
    from icpkit.outcomes import OUTCOMES
    from icpkit.training import _skip_reason, fit_outcome

    rows = []
    meter = Meter()
    with tempfile.TemporaryDirectory() as t:
        meter.start("load")
        cfg, crm = _load(config, Path(t))
        catalogue = attribute_catalogue(crm, cfg)
        for name in cfg.training.outcomes:
            if _skip_reason(crm, name) is not None:
                continue
            meter.start(f"{name}: features")
            data = build_outcome_dataset(crm, OUTCOMES[name], catalogue, cfg)
            meter.start(f"{name}: icpkit")
            try:
                r = fit_outcome(data, cfg)
            except Exception as err:  # noqa: BLE001 - a skipped outcome is reported, not fatal
                meter.stop()
                print(f"{config.stem} {name}: skipped ({err})")
                continue
            meter.stop()
            lab, split = r.labelled, r.split
            y = lab.y.to_numpy(dtype=int)
            fit_mask = split.train | split.validation
            order = np.argsort(lab.as_of.to_numpy()[fit_mask], kind="stable")
            Xfit = lab.X[fit_mask].reset_index(drop=True).iloc[order].reset_index(drop=True)
            yfit = y[fit_mask][order]
            Xte, yte = lab.X[split.test].reset_index(drop=True), y[split.test]
            base = {
                "config": config.stem, "outcome": name, "fit_rows": int(fit_mask.sum()),
                "test_rows": int(split.test.sum()), "test_positive_rate": round(float(yte.mean()), 3),
                "split": split.kind, "features": lab.X.shape[1],
            }  # fmt: skip
            lo, hi = r.test.ci["roc_auc"]
            s = meter.stages[-1]
            rows.append(
                {**base, "model": f"icpkit ({r.model.kind})", "test_auc": r.test.metrics["roc_auc"],
                 "auc_ci": f"[{lo:.3f}, {hi:.3f}]", "wall_s": s.wall_s, "cpu_s": s.cpu_s, "peak_rss_mb": s.peak_rss_mb}
            )  # fmt: skip
            peers = {
                "logistic (C=1)": lambda: (_logistic(Xfit, yfit, Xte, cfg.seed), ""),
                "lightgbm default": lambda: (_lightgbm(Xfit, yfit, Xte, cfg.seed), ""),
                f"FLAML {budget:.0f}s": lambda: _flaml(
                    Xfit, yfit, Xte, cfg.seed, budget, "time" if split.kind == "time" else "stratified"
                ),
            }
            for label, fn in peers.items():
                meter.start(f"{name}: {label}")
                p, note = fn()
                meter.stop()
                s = meter.stages[-1]
                rows.append(
                    {**base, "model": label + (f" ({note})" if note else ""), "test_auc": roc_auc_score(yte, p),
                     "auc_ci": "", "wall_s": s.wall_s, "cpu_s": s.cpu_s, "peak_rss_mb": s.peak_rss_mb}
                )  # fmt: skip
            print(pd.DataFrame(rows[-4:]).round(4).to_string(index=False), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, nargs="*")
    parser.add_argument("--flaml-budget", type=float, default=30.0, help="seconds per outcome")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "peers.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    configs = args.config or [ROOT / "pipelines" / "configs" / c for c in CONFIGS]
    configs = [c for c in configs if c.is_file()]
    pd.set_option("display.width", 220)
    rows: list[dict[str, object]] = []
    for config in configs:
        print(f"\n== {config}", flush=True)
        rows += run_config(config, args.flaml_budget)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"date": dt.datetime.now(dt.UTC).isoformat(), "loadavg": os.getloadavg(),
                                         "rows": rows}, indent=1, default=str))  # fmt: skip
    df = pd.DataFrame(rows)
    print("\nall:")
    print(df.round(4).to_string(index=False))
    best = df[~df["model"].str.startswith("icpkit")].groupby(["config", "outcome"])["test_auc"].max()
    mine = df[df["model"].str.startswith("icpkit")].set_index(["config", "outcome"])["test_auc"]
    gap = (mine - best).rename("icpkit - best peer")
    print("\nicpkit minus the best peer (target >= -0.01):")
    print(gap.round(4).to_string())


if __name__ == "__main__":
    main()
