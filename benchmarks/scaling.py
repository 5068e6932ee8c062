"""Benchmark: wall time, CPU time and peak memory of every stage, from 5k to 1M accounts.

Run by hand (not a test)::

    python -m benchmarks.scaling --accounts 5000 20000 100000 1000000

For each size the project's own generator writes a synthetic CRM (CSV, as ``make train`` uses)
in one subprocess; a second, fresh subprocess then runs what ``make train`` runs on it with the
default config — load + validate, features, each outcome's training, the ICP derivation step by
step (segments among them), the profile, and publishing (MLflow logging + registration into a
temporary store) — and records each stage's wall time, CPU time and peak RSS (see
:mod:`benchmarks.meter`). Each size starts from a fresh interpreter, so nothing carries over.

It prints one table per size and a combined table, and checks that no stage grows faster than
linearly: between the two largest sizes, a stage's time may grow at most 1.25x faster than the
account count (stages under 1 s at the larger size are ignored: fixed costs). Figures go to
``--json`` (default ``benchmarks/results/scaling.json``) to be copied into RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.meter import Meter, rss_mb, speed_probe

ROOT = Path(__file__).resolve().parents[1]
EXTRACT = dt.date(2025, 12, 31)
CACHE = Path(tempfile.gettempdir()) / "icpkit_bench_crm"


def _generate(n: int, seed: int, folder: Path, out: Path) -> None:
    from icpkit.data.synthetic import generate_crm, write_synthetic_crm

    meter = Meter()
    meter.start("generate")
    crm = generate_crm(n, seed=seed, extract_date=EXTRACT)
    rows = {t: len(df) for t, df in crm.tables.items()}
    meter.start("write CSV")
    write_synthetic_crm(crm, folder)
    meter.dump(out, rows=rows)


def _config(folder: Path, tmp: Path):  # noqa: ANN202 - Config
    from icpkit.config import config_from_dict, load_config

    raw = load_config(ROOT / "pipelines" / "configs" / "default.yaml").model_dump(mode="json")
    raw["data"]["source"] = str(folder)
    raw["data"]["synthetic"] = None
    raw["tracking"]["tracking_uri"] = f"sqlite:///{tmp}/mlflow.db"
    return config_from_dict(raw)


def train_like_make_train(folder: Path, tmp: Path, mark: Callable[[str], None], n_trials: int | None = None):  # noqa: ANN201
    """What ``python -m pipelines.train`` does on ``folder``, calling ``mark(stage)`` as each starts.

    Publishing goes into a store under ``tmp``. Returns ``(run, published, the figure helper's
    peak RSS in MB)``. Shared by this
    benchmark and :mod:`benchmarks.memory_timeline`; ``n_trials`` overrides the config's.
    """
    mark("imports")
    from icpkit.data.loading import load_crm
    from icpkit.features import attribute_catalogue
    from icpkit.icp.result import build_icp
    from icpkit.memory import exempt_loaded_objects
    from icpkit.models.figures import FigureRenderer
    from icpkit.registry import Tracker
    from icpkit.registry.publish import publish
    from icpkit.training import train_outcomes
    from icpkit.workflow import TrainedRun, dataset_name, run_version, write_outputs

    cfg = _config(folder, tmp)
    if n_trials is not None:
        cfg.training.tuning.n_trials = n_trials
    mark("load + validate")
    crm = load_crm(cfg.data, EXTRACT)
    exempt_loaded_objects()  # as pipelines.train does before training
    # Features and fits of the four outcomes as make train runs them (train_outcomes: the
    # features one outcome at a time, then training.parallel_outcomes fits at a time).
    mark("features + train outcomes")
    training = train_outcomes(crm, cfg, attribute_catalogue(crm, cfg))
    with FigureRenderer() as figures:
        figures.submit_trained(training)  # the outcome plots render beside the ICP stage, as in the pipeline
        version, started = run_version(crm, cfg), dt.datetime.now(dt.UTC)
        icp = build_icp(  # features dropped after the negative ICP, as the pipeline does
            crm, training, cfg, version, dataset_name(cfg), on_step=lambda s: mark(f"ICP: {s}"),
            release_features=True,
        )  # fmt: skip
        # "ICP: value cohorts" runs until build_icp returns: cohorts, proposals, the profile, figures.
        mark("write ICP outputs")
        run = TrainedRun(crm, cfg, training, icp, dataset_name(cfg), version, started)
        folder_out = write_outputs(run, tmp / "outputs")
        mark("publish (MLflow log + register)")
        tracker = Tracker(cfg.tracking.tracking_uri, cfg.tracking.experiment, artifact_root=tmp / "artifacts")
        published = publish(run, tracker, folder_out, figures)
        helper_peak = figures.helper_peak_rss_mb
    return run, published, helper_peak


def _train(folder: Path, out: Path) -> None:
    meter = Meter(path=out.with_suffix(".partial.json"))
    with tempfile.TemporaryDirectory() as t:
        run, published, helper_peak = train_like_make_train(folder, Path(t), meter.start)
        meter.stop()
        info: dict[str, object] = {"rows": {name: len(df) for name, df in run.crm.tables.items()}}
        info["figure_helper_peak_rss_mb"] = helper_peak
        for name, r in run.training.trained.items():
            info[f"{name}_test_auc"] = round(float(r.test.metrics["roc_auc"]), 4)
            info[f"{name}_model"] = r.model.kind
            info[f"{name}_fit_rows"] = r.fit_rows
        info["registered"] = sorted(published.registrations)
        info["segments_k"] = run.icp.profile["segments"].get("k")
        info["evidence"] = run.icp.profile["evidence"]["status"]
        meter.dump(out, **info)


def _child(args: list[str], timeout: float) -> None:
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"}
    subprocess.run([sys.executable, "-m", "benchmarks.scaling", *args], check=True, env=env, timeout=timeout)


def run_size(n: int, seed: int, timeout: float) -> dict[str, object]:
    folder = CACHE / f"n{n}_s{seed}"
    gen_json = CACHE / f"n{n}_s{seed}.generate.json"
    if not (folder / "accounts.csv").is_file() or not gen_json.is_file():
        print(f"[{n:,}] generating into {folder}", flush=True)
        _child(["--child-generate", str(n), "--seed", str(seed), "--folder", str(folder), "--out", str(gen_json)], timeout)
    else:
        print(f"[{n:,}] reusing {folder} (generated earlier; its timings are from then)", flush=True)
    train_json = CACHE / f"n{n}_s{seed}.train.json"
    print(f"[{n:,}] training", flush=True)
    t = time.perf_counter()
    _child(["--child-train", "--folder", str(folder), "--out", str(train_json)], timeout)
    print(f"[{n:,}] done in {time.perf_counter() - t:.0f} s", flush=True)
    gen, train = json.loads(gen_json.read_text()), json.loads(train_json.read_text())
    return {"accounts": n, "generate": gen, "train": train}


def stage_table(results: list[dict[str, object]]) -> pd.DataFrame:
    rows = []
    for r in results:
        for part in ("generate", "train"):
            for s in r[part]["stages"]:  # type: ignore[index]
                rows.append({"accounts": r["accounts"], **s})
    return pd.DataFrame(rows)


#: The stages the figure helper process lives through (from the end of training to publishing).
HELPER_STAGES = ("ICP: ", "write ICP outputs", "publish")


def totals(df: pd.DataFrame, results: list[dict[str, object]] | None = None) -> pd.DataFrame:
    """End to end = everything ``make train`` does on existing data (generation reported apart).

    ``peak_rss_mb`` is the run's memory with the figure helper process: the training process's
    peak, or the helper's peak (from ``results``) on top of the process's largest peak while the
    helper lives, as if both peaked at once (an upper bound), whichever is larger.
    """
    train = df[~df["name"].isin(["generate", "write CSV"])]
    g = train.groupby("accounts")
    out = pd.DataFrame(
        {"wall_s": g["wall_s"].sum(), "cpu_s": g["cpu_s"].sum(), "process_peak_rss_mb": g["peak_rss_mb"].max()}
    )
    helper = {r["accounts"]: r["train"].get("figure_helper_peak_rss_mb") or 0.0 for r in results or []}  # type: ignore[union-attr]
    beside = train[train["name"].str.startswith(HELPER_STAGES)].groupby("accounts")["peak_rss_mb"].max()
    out["helper_peak_rss_mb"] = out.index.map(lambda n: helper.get(n, 0.0))
    out["peak_rss_mb"] = np.maximum(out["process_peak_rss_mb"], beside.reindex(out.index) + out["helper_peak_rss_mb"])
    fits = train[train["name"].str.contains("train")].groupby("accounts")["wall_s"].sum()
    out["training_wall_s"] = fits
    return out.reset_index()


def linearity(
    df: pd.DataFrame, ratio_limit: float = 1.25, floor_s: float = 1.0, value: str = "cpu_s"
) -> pd.DataFrame:
    """Growth of each stage's ``value`` between the two largest sizes.

    CPU by default: wall time on a shared machine measures the neighbours as much as the code.
    """
    sizes = sorted(df["accounts"].unique())
    if len(sizes) < 2:
        return pd.DataFrame()
    a, b = sizes[-2], sizes[-1]
    wide = df.pivot_table(index="name", columns="accounts", values=value, aggfunc="sum")
    rows = []
    for name, row in wide.iterrows():
        ta, tb = row.get(a), row.get(b)
        if ta is None or tb is None or math.isnan(ta) or math.isnan(tb):
            continue
        growth = (tb / ta) / (b / a) if ta > 0 else float("inf")
        exponent = math.log(tb / ta) / math.log(b / a) if ta > 0 and tb > 0 else float("nan")
        rows.append(
            {
                "stage": name,
                f"s@{a}": round(ta, 2),
                f"s@{b}": round(tb, 2),
                "time ratio / size ratio": round(growth, 2),
                "exponent": round(exponent, 2),
                "ok": bool(tb < floor_s or growth <= ratio_limit),
            }
        )
    return pd.DataFrame(rows)


def machine() -> dict[str, object]:
    import lightgbm
    import mlflow
    import numpy as np
    import optuna
    import psutil
    import sklearn

    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": platform.machine(),
        "nproc": os.cpu_count(),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "loadavg": os.getloadavg(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "scikit-learn": sklearn.__version__,
        "lightgbm": lightgbm.__version__,
        "optuna": optuna.__version__,
        "mlflow": mlflow.__version__,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--accounts", type=int, nargs="+", default=[5000, 20000, 100000, 1000000])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "scaling.json")
    parser.add_argument("--timeout", type=float, default=3600, help="per subprocess, seconds")
    parser.add_argument("--report", type=Path, nargs="*", help="only print the tables of these JSON files")
    parser.add_argument("--child-generate", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child-train", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_generate:
        _generate(args.child_generate, args.seed, args.folder, args.out)
        return
    if args.child_train:
        _train(args.folder, args.out)
        return

    pd.set_option("display.width", 220)
    pd.set_option("display.max_rows", 200)
    if args.report:
        report([r for p in args.report for r in json.loads(p.read_text())["results"]])
        return
    CACHE.mkdir(parents=True, exist_ok=True)
    env = machine()
    print("machine:", env, flush=True)
    results = []
    for n in sorted(args.accounts):
        load_before, probe = os.getloadavg(), speed_probe()  # the machine's speed at the time
        print(f"[{n:,}] speed probe: {probe}", flush=True)
        r = run_size(n, args.seed, args.timeout)
        r["loadavg_before"], r["loadavg_after"], r["speed_probe"] = load_before, os.getloadavg(), probe
        results.append(r)
        gc.collect()
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"machine": env, "results": results}, indent=1))
    report(results)
    print(f"\nfigures written to {args.json}; max RSS of this driver {rss_mb():.0f} MB")


def report(results: list[dict[str, object]]) -> None:
    df = stage_table(results)
    print("\nper stage (peak RSS = the process high-water mark during the stage):")
    for value in ("wall_s", "cpu_s", "peak_rss_mb"):
        print(f"\n{value}:")
        print(df.pivot_table(index="name", columns="accounts", values=value, aggfunc="sum", sort=False).round(1))
    print(df.drop(columns=["start_rss_mb"]).round(1).to_string(index=False))
    probes = {r["accounts"]: r["speed_probe"] for r in results if r.get("speed_probe")}
    if probes:
        print("\nspeed probe before each size (seconds; lower = a faster machine at the time):", probes)
    print("\nend to end (load .. publish; generation apart):")
    print(totals(df, results).round(1).to_string(index=False))
    lin = linearity(df)
    if len(lin):
        print("\nCPU-time growth between the two largest sizes (ok: at most 1.25x the account ratio, or < 1 s):")
        print(lin.to_string(index=False))


if __name__ == "__main__":
    main()
