"""Benchmark: do the four propensity models reach the oracle on the synthetic CRM, and how fast?

Run by hand (not a test):  .venv/bin/python -m benchmarks.propensity_quality [--accounts 20000]

Prints per outcome the model's test ROC-AUC, the oracle AUC of the generator's true
propensities on the same test rows, their ratio (target >= 0.97), and wall time and peak memory
per step. Results are recorded in benchmarks/README.md with the machine and library versions.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from icpkit.config import config_from_dict, load_config
from icpkit.data.loading import load_crm
from icpkit.data.synthetic import generate_crm, write_synthetic_crm
from icpkit.registry import Tracker
from icpkit.training import train_outcomes

ROOT = Path(__file__).resolve().parents[1]


def peak_mb() -> float:
    # ru_maxrss is KiB on Linux: the peak resident memory of this process so far.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    steps: list[tuple[str, float, float]] = []
    t0 = time.perf_counter()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        crm_synth = generate_crm(args.accounts, seed=args.seed, extract_date=dt.date(2025, 12, 31))
        write_synthetic_crm(crm_synth, tmp / "crm")
        steps.append(("generate + write", time.perf_counter() - t0, peak_mb()))

        raw = load_config(ROOT / "pipelines" / "configs" / "default.yaml").model_dump(mode="json")
        raw["data"]["source"] = str(tmp / "crm")
        raw["data"]["synthetic"] = None
        cfg = config_from_dict(raw)
        t = time.perf_counter()
        crm = load_crm(cfg.data, dt.date(2025, 12, 31))
        steps.append(("load + validate", time.perf_counter() - t, peak_mb()))

        tracker = Tracker(f"sqlite:///{tmp}/mlflow.db", "benchmark", artifact_root=tmp / "artifacts")
        timings: dict[str, float] = {}
        last = [time.perf_counter()]

        def on_outcome(name: str, state: str) -> None:
            if state != "start":
                timings[name] = time.perf_counter() - last[0]
                steps.append((f"train {name}", timings[name], peak_mb()))
            last[0] = time.perf_counter()

        with tracker.start_training("benchmark", params={}, tags={}):
            result = train_outcomes(crm, cfg, tracker=tracker, on_outcome=on_outcome)

        rows = []
        for name, report in result.trained.items():
            truth = crm_synth.propensities[name]
            ids_col = truth.columns[0]
            data = report.labelled.subset(report.split.test)
            true_p = truth.set_index(ids_col)["true_propensity"].reindex(data.ids.to_numpy()).to_numpy()
            y = data.y.to_numpy(dtype=int)
            model_auc = report.test.metrics["roc_auc"]
            oracle = roc_auc_score(y, true_p)
            lo, hi = report.test.ci["roc_auc"]
            rows.append(
                {
                    "outcome": name,
                    "model": report.model.kind,
                    "test_rows": len(y),
                    "model_auc": round(model_auc, 4),
                    "auc_95ci": f"[{lo:.3f}, {hi:.3f}]",
                    "oracle_auc": round(oracle, 4),
                    "ratio": round(model_auc / oracle, 4),
                    "meets_0.97": model_auc / oracle >= 0.97,
                }
            )
        for name, report in result.skipped.items():
            rows.append({"outcome": name, "model": f"skipped: {report.reason}"})

    total = time.perf_counter() - t0
    pd.set_option("display.width", 200)
    print(f"\nsynthetic CRM, {args.accounts:,} accounts, seed {args.seed}")
    print(pd.DataFrame(rows).to_string(index=False))
    print("\nstep timings (peak RSS is the process peak so far):")
    print(pd.DataFrame(steps, columns=["step", "seconds", "peak_rss_mb"]).round(1).to_string(index=False))
    print(f"\ntotal {total:.0f}s")
    import lightgbm  # noqa: E401 - versions for the record
    import mlflow
    import optuna
    import sklearn

    print(
        f"machine: {platform.machine()}, cores={os.cpu_count()}; "
        f"python {sys.version.split()[0]}, numpy {np.__version__}, pandas {pd.__version__}, "
        f"scikit-learn {sklearn.__version__}, lightgbm {lightgbm.__version__}, optuna {optuna.__version__}, "
        f"mlflow {mlflow.__version__}"
    )


if __name__ == "__main__":
    main()
