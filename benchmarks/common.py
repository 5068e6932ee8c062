"""Shared benchmark plumbing: a synthetic CRM trained with the default config, timed step by step."""

from __future__ import annotations

import datetime as dt
import os
import platform
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from icpkit.config import Config, config_from_dict, load_config
from icpkit.data.crm import CRMData
from icpkit.data.loading import load_crm
from icpkit.data.synthetic import SyntheticCRM, generate_crm, write_synthetic_crm
from icpkit.registry import Tracker
from icpkit.training import TrainingResult, train_outcomes

ROOT = Path(__file__).resolve().parents[1]
EXTRACT = dt.date(2025, 12, 31)


def peak_mb() -> float:
    # ru_maxrss is KiB on Linux: the peak resident memory of this process so far.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class Run:
    synthetic: SyntheticCRM
    crm: CRMData
    cfg: Config
    tracker: Tracker
    result: TrainingResult | None = None
    steps: list[tuple[str, float, float]] = field(default_factory=list)

    def timed(self, name: str, fn: Callable[[], object]) -> object:
        t = time.perf_counter()
        out = fn()
        self.steps.append((name, time.perf_counter() - t, peak_mb()))
        return out


def prepare(folder: Path, accounts: int, seed: int, mangle: Callable[[CRMData], None] | None = None) -> Run:
    """Generate and load a synthetic CRM in ``folder`` with the default config and a private MLflow store."""
    t = time.perf_counter()
    synthetic = generate_crm(accounts, seed=seed, extract_date=EXTRACT)
    write_synthetic_crm(synthetic, folder / "crm")
    generated = time.perf_counter() - t
    raw = load_config(ROOT / "pipelines" / "configs" / "default.yaml").model_dump(mode="json")
    raw["data"]["source"] = str(folder / "crm")
    raw["data"]["synthetic"] = None
    cfg = config_from_dict(raw)
    tracker = Tracker(f"sqlite:///{folder}/mlflow.db", "benchmark", artifact_root=folder / "artifacts")
    run = Run(synthetic, None, cfg, tracker)  # type: ignore[arg-type]
    run.steps.append(("generate + write", generated, peak_mb()))
    run.crm = run.timed("load + validate", lambda: load_crm(cfg.data, EXTRACT))  # type: ignore[assignment]
    if mangle is not None:
        mangle(run.crm)
    return run


def train(run: Run) -> TrainingResult:
    last = [time.perf_counter()]

    def on_outcome(name: str, state: str) -> None:
        if state != "start":
            run.steps.append((f"train {name}", time.perf_counter() - last[0], peak_mb()))
        last[0] = time.perf_counter()

    run.result = train_outcomes(run.crm, run.cfg, on_outcome=on_outcome)
    return run.result


def print_steps(steps: list[tuple[str, float, float]]) -> None:
    print("\nstep timings (peak RSS is the process peak so far):")
    print(pd.DataFrame(steps, columns=["step", "seconds", "peak_rss_mb"]).round(1).to_string(index=False))


def print_versions() -> None:
    import lightgbm
    import mlflow
    import optuna
    import sklearn

    print(
        f"machine: {platform.machine()}, cores={os.cpu_count()}; "
        f"python {sys.version.split()[0]}, numpy {np.__version__}, pandas {pd.__version__}, "
        f"scikit-learn {sklearn.__version__}, lightgbm {lightgbm.__version__}, optuna {optuna.__version__}, "
        f"mlflow {mlflow.__version__}"
    )
