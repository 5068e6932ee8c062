"""Small hand-made CRMs whose truth is known, shaped unlike the built-in generator.

One world, planted on purpose:

- ``industry`` (text) and ``is_enterprise`` (a yes/no flag spelled "Yes"/"No") drive winning;
- ``maturity`` is an ordinal 1-5 whose *middle* value 3 loses a little more (no trend: never a driver);
- ``signup_date`` is a date (an age, never a category);
- ``random_flag`` is a yes/no coin flip cutting across the three planted clusters (no effect);
- ``owner`` is the sales rep (sales organisation, never a trait), ``account_name`` an identifier;
- three planted clusters differ in ``seats`` and ``usage_hours`` and ``industry``;
- subscriptions carry ``billing_frequency``: annual terms are mostly still running at the export,
  except those that churned early — a censoring artefact, churn itself does not depend on it;
- ``plan`` is an offer term of the subscription.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

EXTRACT = pd.Timestamp("2025-06-30")
START = pd.Timestamp("2022-01-01")
INDUSTRY_EFFECT = {"Software": 1.2, "Banking": 0.8, "Retail": -0.6, "Education": -1.2}


def _days(rng: np.random.Generator, start: pd.Timestamp, end: pd.Timestamp, n: int) -> pd.Series:
    span = (end - start).days
    return pd.Series(start + pd.to_timedelta(rng.integers(0, span, n), unit="D"))


def make_world(n_accounts: int = 2500, seed: int = 0) -> dict[str, pd.DataFrame]:
    """The contract tables of the world described in the module docstring."""
    rng = np.random.default_rng(seed)
    n = n_accounts
    cluster = rng.integers(0, 3, n)
    industries = np.array(list(INDUSTRY_EFFECT))
    industry = np.where(rng.random(n) < 0.7, industries[cluster], industries[rng.integers(0, 4, n)])
    accounts = pd.DataFrame(
        {
            "account_id": [f"W{i:05d}" for i in range(n)],
            "account_name": [f"Company {i}" for i in range(n)],
            "industry": industry,
            "is_enterprise": np.where(rng.random(n) < 0.35, "Yes", "No"),
            "maturity": rng.integers(1, 6, n).astype(float),
            "signup_date": _days(rng, pd.Timestamp("2019-01-01"), START, n).dt.strftime("%Y-%m-%d"),
            "random_flag": np.where(rng.random(n) < 0.5, "yes", "no"),
            "owner": rng.choice(["Ann", "Bob", "Cem", "Dia"], n),
            "seats": np.round(np.exp(rng.normal([2.0, 3.5, 5.0][0], 0.25, n) + 1.5 * cluster)),
            "usage_hours": np.round(rng.normal(20 + 30 * cluster, 5, n), 1),
        }
    )
    logit_win = (
        pd.Series(industry).map(INDUSTRY_EFFECT).to_numpy()
        + np.where(accounts["is_enterprise"] == "Yes", 1.0, 0.0)
        + np.where(accounts["maturity"] == 3, -0.15, 0.0)
        - 0.3
    )
    return {"accounts": accounts, **_opportunities(rng, accounts, logit_win), **_subscriptions(rng, accounts)}


def _opportunities(rng: np.random.Generator, accounts: pd.DataFrame, logit: np.ndarray) -> dict[str, pd.DataFrame]:
    n = len(accounts)
    k = rng.integers(1, 3, n)
    idx = np.repeat(np.arange(n), k)
    created = _days(rng, START, EXTRACT - pd.Timedelta(days=40), len(idx))
    closed = created + pd.to_timedelta(rng.integers(10, 35, len(idx)), unit="D")
    won = (rng.random(len(idx)) < 1 / (1 + np.exp(-logit[idx]))).astype(int)
    return {
        "opportunities": pd.DataFrame(
            {
                "opportunity_id": [f"O{i:06d}" for i in range(len(idx))],
                "account_id": accounts["account_id"].to_numpy()[idx],
                "created_at": created.dt.strftime("%Y-%m-%d"),
                "closed_at": closed.dt.strftime("%Y-%m-%d"),
                "amount": np.round(rng.lognormal(9, 0.5, len(idx))),
                "won": won,
            }
        )
    }


def _subscriptions(rng: np.random.Generator, accounts: pd.DataFrame) -> dict[str, pd.DataFrame]:
    n = len(accounts)
    annual = rng.random(n) < 0.5
    start = _days(rng, START, EXTRACT - pd.Timedelta(days=60), n)
    term = np.where(annual, 365, 30)
    churn_p = np.where(accounts["usage_hours"].to_numpy() < 30, 0.35, 0.12)
    churned = rng.random(n) < churn_p
    # A churned term ends early; a renewed term ends when it is due.
    length = np.where(churned, rng.integers(10, 30, n), term)
    end = start + pd.to_timedelta(length, unit="D")
    due = end <= EXTRACT
    renewed = np.where(due, (~churned).astype(float), np.nan)
    return {
        "subscriptions": pd.DataFrame(
            {
                "subscription_id": [f"S{i:06d}" for i in range(n)],
                "account_id": accounts["account_id"],
                "start_date": start.dt.strftime("%Y-%m-%d"),
                "end_date": end.dt.strftime("%Y-%m-%d"),
                "arr": np.round(rng.lognormal(8, 0.4, n)),
                "billing_frequency": np.where(annual, "annual", "monthly"),
                "plan": rng.choice(["Basic", "Pro"], n),
                "renewed": pd.array(renewed, dtype="Float64"),
            }
        )
    }


def write_world(tables: dict[str, pd.DataFrame], folder) -> None:  # noqa: ANN001 - a path
    folder.mkdir(parents=True, exist_ok=True)
    for name, df in tables.items():
        df.to_csv(folder / f"{name}.csv", index=False)


def world_config(source, store, **overrides) -> dict:  # noqa: ANN001
    """A config dict for a world: tiny tuning, its own MLflow store."""
    cfg = {
        "seed": 3,
        "data": {"source": str(source), "extract_date": str(EXTRACT.date())},
        "attributes": {"dimensions": {"firmographic": ["industry", "seats"], "technographic": ["maturity"]}},
        "training": {
            "outcomes": ["win", "renewal"],
            "tuning": {"n_trials": 2, "timeout_seconds": 600},
            "max_boost_rounds": 150,
            "bootstrap_samples": 50,
            "shap_sample_rows": 300,
            "num_threads": 1,
        },
        "tracking": {"tracking_uri": f"sqlite:///{store}/mlflow.db", "experiment": "worlds"},
    }
    for key, value in overrides.items():
        node = cfg
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return cfg
