"""Benchmark: scoring throughput on 1M synthetic rows, with and without reasons, next to raw LightGBM.

Run by hand (not a test)::

    python -m benchmarks.scoring_throughput --accounts 1000000 [--train-accounts 20000] [--no-spark]

It trains the default config on a synthetic CRM (``--train-accounts``), publishes it into a
temporary MLflow store, and builds the scoring inputs by drawing ``--accounts`` rows with
replacement from the trained CRM (fresh ids): the book's accounts in raw contract form (attributes
and engagement counts as of the extract date) for the ICP scorer, and the outcome table's raw
rows for the outcome scorer. It then times, on the same rows:

- ``icp-scorer`` (:class:`~icpkit.scoring.served.ICPScorer`): checks, fit / engagement scores,
  tiers, quadrant, segment, negative-ICP flags, with and without the top-3 reasons, in one
  process and in one worker process per usable core (the scorer's default for large batches);
- ``icp-<outcome>`` (:class:`~icpkit.scoring.served.OutcomeScorer`) for the first outcome whose
  chosen model is LightGBM: raw rows -> point-in-time features -> encoding -> calibrated
  propensity, without reasons (and with TreeSHAP reasons on a subset);
- raw LightGBM ``Booster.predict`` on that model's already encoded matrix of the same rows
  (1 and 2 threads): the ceiling;
- the Spark path (``icpkit.scoring.spark.score_spark``, ``mlflow.pyfunc.spark_udf``) on
  ``local[2]`` over a Parquet copy of the ICP scorer's input, scores written to Parquet by Spark,
  if pyspark is installed.

Targets (issue #9): the ICP scorer >= 50 % of raw throughput without reasons, >= 200,000 rows/s
with reasons, peak memory < 4 GB.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.meter import Meter
from benchmarks.scaling import CACHE, EXTRACT, ROOT, _config, machine


def _train(n: int, seed: int, tmp: Path):  # noqa: ANN202
    from icpkit.data.loading import load_crm
    from icpkit.data.synthetic import generate_crm, write_synthetic_crm
    from icpkit.registry import Tracker
    from icpkit.registry.publish import publish
    from icpkit.workflow import train_and_profile, write_outputs

    folder = CACHE / f"n{n}_s{seed}"
    if not (folder / "accounts.csv").is_file():
        write_synthetic_crm(generate_crm(n, seed=seed, extract_date=EXTRACT), folder)
    cfg = _config(folder, tmp)
    crm = load_crm(cfg.data, EXTRACT)
    run = train_and_profile(crm, cfg)
    icp_folder = write_outputs(run, tmp / "outputs")
    tracker = Tracker(cfg.tracking.tracking_uri, cfg.tracking.experiment, artifact_root=tmp / "artifacts")
    published = publish(run, tracker, icp_folder)
    return run, published, cfg


def _draw(frame: pd.DataFrame, n: int, id_column: str, seed: int) -> pd.DataFrame:
    idx = np.random.default_rng(seed).integers(0, len(frame), size=n)
    out = frame.iloc[idx].reset_index(drop=True)
    out[id_column] = [f"M{i:07d}" for i in range(n)]
    return out


def _rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--accounts", type=int, default=1_000_000)
    parser.add_argument("--train-accounts", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--shap-rows", type=int, default=100_000, help="rows for the TreeSHAP-reasons timing")
    parser.add_argument("--no-spark", action="store_true")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "scoring_throughput.json")
    args = parser.parse_args()
    pd.set_option("display.width", 200)
    env = machine()
    print("machine:", env, flush=True)
    from icpkit.features import raw_rows
    from icpkit.scoring.served import ICPScorer, OutcomeScorer, icp_input_spec, usable_cores

    meter = Meter()
    rows: list[dict[str, object]] = []

    def record(what: str, n: int, note: str = "") -> None:
        s = meter.stages[-1]
        rows.append(
            {"what": what, "rows": n, "seconds": round(s.wall_s, 2), "cpu_s": round(s.cpu_s, 2),
             "rows_per_s": round(_rate(n, s.wall_s)), "rows_per_cpu_s": round(_rate(n, s.cpu_s)),
             "peak_rss_mb": round(s.peak_rss_mb), "start_rss_mb": round(s.start_rss_mb), "note": note}
        )  # fmt: skip
        print(rows[-1], flush=True)

    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        meter.start("train + publish")
        run, published, cfg = _train(args.train_accounts, args.seed, tmp)
        meter.stop()
        print(f"trained on {args.train_accounts:,} accounts in {meter.stages[-1].wall_s:.0f} s", flush=True)
        fitted, book = run.icp.fitted, run.icp.derivation.book
        scorer = ICPScorer(fitted, icp_input_spec(fitted, book), cfg.scoring.max_unseen_share)
        market = _draw(book.reindex(columns=fitted.input_columns()), args.accounts, "account_id", args.seed)
        n = len(market)

        cores = usable_cores()
        for workers, reasons in ((1, False), (1, True), (None, False), (None, True)):
            scorer.workers = workers
            meter.start("icp")
            out = scorer.predict(market, reasons=reasons)
            meter.stop()
            assert len(out) == n and out["fit_score"].notna().mean() > 0.99
            procs = "1 process" if workers == 1 else f"{cores} worker processes"
            child_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
            record(f"icp-scorer predict, {'with' if reasons else 'without'} reasons ({procs})", n,
                   "" if workers == 1 else f"largest worker's peak RSS so far {child_mb:,.0f} MB")  # fmt: skip
        print(out.head(3).T, flush=True)
        del out

        # The outcome model: the first whose chosen model is LightGBM (else any LightGBM candidate).
        reports = run.training.trained
        name = next((o for o, r in reports.items() if r.model.kind == "lightgbm"), next(iter(reports)))
        report = reports[name]
        model = report.model if report.model.kind == "lightgbm" else report.candidates["lightgbm"]
        spec = report.dataset.spec
        entity = _draw(raw_rows(run.crm, spec), n, spec.id_column, args.seed)
        outcome_scorer = OutcomeScorer(model)

        meter.start("outcome")
        got = outcome_scorer.predict(entity, reasons=False)
        meter.stop()
        record(f"icp-{name} predict (raw rows in), without reasons", n)
        del got
        k = min(args.shap_rows, n)
        meter.start("outcome shap")
        outcome_scorer.predict(entity.head(k), reasons=True)
        meter.stop()
        record(f"icp-{name} predict, with TreeSHAP reasons", k)

        X = spec.features(entity, reference_date=None)
        E = model.encoder.transform(X).to_numpy(dtype=np.float64)
        del X
        for threads in (1, 2):
            meter.start("raw")
            raw = model.booster.predict(E, raw_score=True, num_threads=threads)
            meter.stop()
            record(f"raw LightGBM Booster.predict ({name}, encoded matrix, {threads} thread(s))", n)
        assert len(raw) == n
        del E, raw, entity

        if not args.no_spark:
            try:
                import pyspark  # noqa: F401
            except ImportError:
                rows.append({"what": "Spark local[2]", "note": "pyspark not installed"})
            else:
                from icpkit.scoring.spark import score_spark, spark_session

                reg = published.registrations.get("scorer")
                path = tmp / "market.parquet"
                market.to_parquet(path, index=False)
                meter.start("spark session")
                spark = spark_session("local[2]")
                meter.stop()
                record("Spark session start (local[2])", 0)
                try:
                    uri = f"models:/{reg.name}/{reg.version}"
                    # The whole-market path: Spark DataFrames written to Parquet by Spark (collecting a
                    # million scored rows into the driver needs more than its default 1 GB heap).
                    meter.start("spark")
                    # No keep=[...]: the scorer's output carries account_id already.
                    result = score_spark(spark, path, uri, scorer.input_spec, tracking_uri=cfg.tracking.tracking_uri)
                    result.scores.write.mode("overwrite").parquet(str(tmp / "spark_scores"))
                    result.rejected.write.mode("overwrite").parquet(str(tmp / "spark_rejected"))
                    meter.stop()
                    record("icp-scorer via Spark local[2] (spark_udf over Parquet, written to Parquet)", n,
                           "CPU s and peak RSS are the driver's; executors are JVM + Python workers")  # fmt: skip
                    got = pd.read_parquet(tmp / "spark_scores", columns=["fit_score"])
                    assert len(got) == n, len(got)
                    del got
                finally:
                    spark.stop()

    df = pd.DataFrame(rows)
    print("\n" + df.drop(columns=["start_rss_mb"]).to_string(index=False))
    by = df.set_index("what")["rows_per_s"]
    raw1 = by[[w for w in by.index if w.startswith("raw LightGBM") and "1 thread" in w][0]]
    cpu = df.set_index("what")["rows_per_cpu_s"]
    raw1_cpu = cpu[[w for w in cpu.index if w.startswith("raw LightGBM") and "1 thread" in w][0]]
    for what in [w for w in by.index if w.startswith("icp-scorer predict")]:
        print(f"\n{what}: {by[what]:,.0f} rows/s wall ({by[what] / raw1:.0%} of raw LightGBM, 1 thread), "
              f"{cpu[what]:,.0f} rows/CPU s ({cpu[what] / raw1_cpu:.0%} of raw)")  # fmt: skip
    print("targets: without reasons >= 50 % of raw; with reasons >= 200,000 rows/s on 2 cores; peak < 4 GB")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"machine": env, "loadavg_end": os.getloadavg(),
                                     "date": dt.datetime.now(dt.UTC).isoformat(), "rows": rows}, indent=1, default=str))  # fmt: skip


if __name__ == "__main__":
    main()
