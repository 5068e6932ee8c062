"""A small synthetic CRM trained once per test session, shared by the end-to-end tests."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from icpkit.config import config_from_dict
from icpkit.data.loading import load_crm
from icpkit.data.synthetic import generate_crm, write_synthetic_crm
from icpkit.registry import Tracker
from icpkit.training import train_outcomes

EXTRACT = dt.date(2025, 12, 31)


def small_config(source: Path, store: Path, outcomes: list[str] | None = None):
    return config_from_dict(
        {
            "seed": 5,
            "data": {"source": str(source), "extract_date": str(EXTRACT)},
            "training": {
                "outcomes": outcomes or ["conversion", "win", "expansion", "renewal"],
                # A generous timeout: trials, not the clock, must end the search, or reruns could differ.
                "tuning": {"n_trials": 2, "timeout_seconds": 600},
                "max_boost_rounds": 200,
                "bootstrap_samples": 20,
                "shap_sample_rows": 300,
            },
            "tracking": {"tracking_uri": f"sqlite:///{store}/mlflow.db", "experiment": "it"},
        }
    )


def train(cfg, store: Path, crm=None):
    crm = crm if crm is not None else load_crm(cfg.data, EXTRACT)
    tracker = Tracker(cfg.tracking.tracking_uri, cfg.tracking.experiment, artifact_root=store / "artifacts")
    with tracker.start_training("train", params={}, tags={}):
        return train_outcomes(crm, cfg, tracker=tracker)


@pytest.fixture(scope="session")
def crm_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("crm")
    write_synthetic_crm(generate_crm(1_500, seed=11, extract_date=EXTRACT), folder)
    return folder


@pytest.fixture(scope="session")
def trained(crm_folder, tmp_path_factory):
    store = tmp_path_factory.mktemp("mlruns")
    cfg = small_config(crm_folder, store)
    return cfg, store, train(cfg, store)
