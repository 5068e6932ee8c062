"""One small synthetic CRM trained, profiled and published once per test session.

It is shared by the end-to-end tests: the only full training of a test run; everything else is unit-sized.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from icpkit.config import config_from_dict
from icpkit.data.loading import load_crm
from icpkit.data.synthetic import generate_crm, write_synthetic_crm
from icpkit.registry import Tracker
from icpkit.registry.publish import publish
from icpkit.workflow import train_and_profile, write_outputs

EXTRACT = dt.date(2025, 12, 31)
ACCOUNTS = 3000


def small_config(source: Path, store: Path, outcomes: list[str] | None = None, **training):
    return config_from_dict(
        {
            "seed": 5,
            "data": {"source": str(source), "extract_date": str(EXTRACT)},
            "attributes": {
                "dimensions": {
                    "firmographic": ["industry", "employees", "annual_revenue", "region", "funding_stage"],
                    "technographic": ["crm_platform", "marketing_automation", "cloud_provider",
                                      "competitor_product", "digital_maturity"],  # fmt: skip
                    "behavioral": ["web_visits_30d", "email_clicks_30d", "intent_score", "support_tickets_90d"],
                    "business_need": ["compliance_need"],
                    "growth": ["hiring_growth_pct"],
                }
            },
            "training": {
                "outcomes": outcomes or ["conversion", "win", "expansion", "renewal"],
                "tuning": {"n_trials": 2},
                "max_boost_rounds": 200,
                "bootstrap_samples": 50,
                "shap_sample_rows": 300,
                **training,
            },
            "tracking": {"tracking_uri": f"sqlite:///{store}/mlflow.db", "experiment": "it"},
        }
    )


def train_and_publish(cfg, store: Path, crm=None):
    """Train, profile, write and publish, as ``python -m pipelines.train`` does."""
    crm = crm if crm is not None else load_crm(cfg.data, EXTRACT)
    tracker = Tracker(cfg.tracking.tracking_uri, cfg.tracking.experiment, artifact_root=store / "artifacts")
    run = train_and_profile(crm, cfg, tracker.previous_training_json("icp/icp_profile.json"))
    folder = write_outputs(run, store / "outputs")
    return run, publish(run, tracker, folder), folder


@pytest.fixture(scope="session")
def crm_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("crm")
    write_synthetic_crm(generate_crm(ACCOUNTS, seed=11, extract_date=EXTRACT), folder)
    return folder


@pytest.fixture(scope="session")
def trained(crm_folder, tmp_path_factory):
    """``(cfg, store, run, published, icp_folder)`` of the session's one training."""
    store = tmp_path_factory.mktemp("mlruns")
    cfg = small_config(crm_folder, store)
    return (cfg, store, *train_and_publish(cfg, store))
