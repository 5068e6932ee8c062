"""Benchmark: whether the four propensity models reach the oracle on the synthetic CRM, and how fast.

Run by hand (not a test):  .venv/bin/python -m benchmarks.propensity_quality [--accounts 20000]

Prints per outcome the model's test ROC-AUC, the oracle AUC of the generator's true
propensities on the same test rows, their ratio (target >= 0.97), and wall time and peak memory
per step. Results are recorded in benchmarks/README.md with the machine and library versions.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd
from sklearn.metrics import roc_auc_score

from benchmarks.common import prepare, print_steps, print_versions, train


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        run = prepare(Path(tmp), args.accounts, args.seed)
        result = train(run)
        rows = []
        for name, report in result.trained.items():
            truth = run.synthetic.propensities[name]
            data = report.labelled.subset(report.split.test)
            true_p = truth.set_index(truth.columns[0])["true_propensity"].reindex(data.ids.to_numpy())
            y = data.y.to_numpy(dtype=int)
            model_auc = report.test.metrics["roc_auc"]
            oracle = roc_auc_score(y, true_p.to_numpy())
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
    pd.set_option("display.width", 200)
    print(f"\nsynthetic CRM, {args.accounts:,} accounts, seed {args.seed}")
    print(pd.DataFrame(rows).to_string(index=False))
    print_steps(run.steps)
    print(f"\ntotal {time.perf_counter() - t0:.0f}s")
    print_versions()


if __name__ == "__main__":
    main()
