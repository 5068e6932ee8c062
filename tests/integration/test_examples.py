"""Each real-data example config loads its export, trains the outcomes it is meant to train and
says what the README says it says (on a smaller tuning budget than the documented run).

The exports are real (or third-party) data the project was not tuned to: RavenStack (subscription
churn and upgrades independent of every recorded attribute: no signal), IBM Telco (renewal
carried by offer terms: contract, internet service, payment method) and Maven CRM (win rate
barely moves with firmographics: no signal).
"""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from icpkit.config import load_config
from icpkit.data.loading import load_crm
from icpkit.workflow import train_and_profile

CONFIGS = Path(__file__).resolve().parents[2] / "pipelines" / "configs"

#: A small budget: the documented runs use 10 trials and 200 bootstrap resamples.
SMALL = {
    "training.tuning.n_trials": 2,
    "training.bootstrap_samples": 50,
    "training.shap_sample_rows": 300,
    "training.max_boost_rounds": 200,
}


def _load(name: str, tmp_path: Path, **overrides):
    over = {**SMALL, "tracking.tracking_uri": f"sqlite:///{tmp_path}/mlflow.db", **overrides}
    cfg = load_config(CONFIGS / f"{name}.yaml", over)
    return cfg, load_crm(cfg.data, cfg.data.extract_date)


def _train(name: str, tmp_path: Path, **overrides):
    cfg, crm = _load(name, tmp_path, **overrides)
    started = time.perf_counter()
    run = train_and_profile(crm, cfg)
    print(f"{name}: trained and profiled in {time.perf_counter() - started:.1f}s")
    return crm, run


def _verdicts(run) -> dict:  # noqa: ANN001
    return run.icp.profile["evidence"]["by_outcome"]


# ---------------------------------------------------------------------------------------------
# mapping only: every example loads without a prep script


def test_ravenstack_maps_five_tables_with_queries_derive_and_two_activity_sources(tmp_path):
    _, crm = _load("ravenstack", tmp_path)
    subs, acts = crm["subscriptions"], crm["activities"]
    assert len(crm["accounts"]) == 500 and len(subs) == 5000
    # Both activity sources: 2,000 tickets and 25,000 usage rows joined to their account.
    assert acts["activity_type"].value_counts().to_dict() == {"feature_use": 25_000, "support_ticket": 2_000}
    # Every subscription has an end date now (active ones: the first term's end).
    assert subs["end_date"].notna().all()
    # A term is labelled exactly when it is due, whatever its outcome: no censoring by the outcome.
    months = subs["billing_frequency"].map({"annual": 12, "monthly": 1})
    term_end = [s + pd.DateOffset(months=m) for s, m in zip(subs["start_date"], months, strict=True)]
    due = pd.Series(term_end) <= pd.Timestamp("2024-12-31")
    assert (subs["renewed"].notna() == due).all() and (subs["expansion_arr"].notna() == due).all()
    assert int(due.sum()) == 2383 and int((subs["renewed"] == 0).sum()) == 81
    assert int((subs["expansion_arr"] > 0).sum()) == 261  # upgrade_flag on a due term
    # The outcome and the identifier are not attributes; the signup plan keeps its own name.
    assert {"churn_flag", "account_name", "is_trial"}.isdisjoint(crm["accounts"].columns)
    assert {"signup_plan_tier", "signup_seats"} <= set(crm["accounts"].columns)


def test_telco_makes_accounts_and_terms_from_one_file(tmp_path):
    _, crm = _load("ibm_telco", tmp_path)
    accounts, subs = crm["accounts"], crm["subscriptions"]
    assert len(accounts) == len(subs) == 7043
    assert set(accounts.columns) == {"account_id", "gender", "SeniorCitizen", "Partner", "Dependents"}
    assert subs["renewed"].value_counts().to_dict() == {1: 5174, 0: 1869}  # Churn = Yes is 1,869
    assert (subs["end_date"] == pd.Timestamp("2018-01-31")).all()
    # tenure counted back: the longest-standing customers (72 months) started in January 2012.
    assert subs["start_date"].min() == pd.Timestamp("2012-01-31")
    assert {"tenure", "TotalCharges", "Churn"}.isdisjoint(subs.columns)


# ---------------------------------------------------------------------------------------------
# training: the honest answer of each example


def test_telco_renewal_beats_chance_and_its_signal_is_in_the_offer(tmp_path):
    crm, run = _train("ibm_telco", tmp_path)
    assert list(run.training.trained) == ["renewal"]
    v = _verdicts(run)["renewal"]
    assert v["status"] == "signal" and v["auc_95ci"][0] > 0.75, v
    p = run.icp.profile
    # Contract, internet service, payment method are levers of the offer, never customer traits.
    levers = {w["attribute"] for w in p["weights"]["offer_levers"]}
    assert {"Contract", "InternetService", "PaymentMethod"} <= levers
    assert not levers & {w["attribute"] for w in p["weights"]["icp"]}
    # Demographics do not help the model out of sample once the offer is known: no ICP is invented.
    assert p["evidence"]["status"] == "insufficient" and p["weights"]["icp"] == []
    assert "offer terms" in p["evidence"]["statement"]
    # The offer's churn risks are still told (the outcome has signal), confirmed by the model...
    month_to_month = [d for d in p["negative_icp"]["drivers"] if d["value"] == "Month-to-month"]
    assert month_to_month and month_to_month[0]["role"] == "offer" and month_to_month[0]["confirmed_by_model"]
    assert month_to_month[0]["bad_rate"] > 0.4 > 0.3 > month_to_month[0]["baseline_rate"]
    # ...but an offer term is never an exclusion of accounts, and no account gets an unvalidated tier.
    assert p["negative_icp"]["exclusions"] == [] and p["summary"]["avoid"] == []
    assert (run.icp.account_scores["tier"] == "Unscored").all()


def test_ravenstack_trains_renewal_and_expansion_and_finds_no_signal(tmp_path):
    _, run = _train("ravenstack", tmp_path)
    assert sorted(run.training.trained) == ["expansion", "renewal"]
    verdicts = _verdicts(run)
    assert sorted(verdicts) == ["expansion", "renewal"]
    assert {v["status"] for v in verdicts.values()} == {"no evidence"}
    p = run.icp.profile
    assert p["evidence"]["status"] == "insufficient"
    assert p["weights"]["icp"] == [] and p["negative_icp"]["exclusions"] == []
    assert p["negative_icp"]["drivers"] == []  # no renewal model beats chance: no driver is named
    assert "profiles" not in p["segments"]
    # Annual terms come due a year after they start: far fewer are labelled. Flagged, not a driver.
    flagged = p["negative_icp"]["censoring"]["renewal"]
    assert [c["attribute"] for c in flagged] == ["billing_frequency"]
    assert any("2,617 of 5,000 rows unlabelled" in line for line in p["negative_icp"]["unlabelled"])


def test_maven_crm_says_there_is_no_signal(tmp_path):
    _, run = _train("maven_crm", tmp_path)
    assert list(run.training.trained) == ["win"]
    assert _verdicts(run)["win"]["status"] == "no evidence"
    p = run.icp.profile
    assert p["evidence"]["status"] == "insufficient" and "beats chance" in p["evidence"]["statement"]
    assert p["weights"]["icp"] == [] and p["summary"]["best_customers"] == [] and p["summary"]["avoid"] == []
