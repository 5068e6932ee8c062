"""The ICP derived from a small trained synthetic CRM: consistent scores, a readable profile,
a registered segment model, versions that diff, and silence when there is no signal."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from icpkit.data.loading import load_crm
from icpkit.icp import build as icp_build
from icpkit.icp.build import build_icp, log_icp
from icpkit.registry import Tracker, load_champion, to_model_input
from icpkit.training import train_outcomes
from tests.integration.conftest import EXTRACT, small_config


@pytest.fixture(scope="module")
def crm(trained):
    cfg, _, _ = trained
    return load_crm(cfg.data, EXTRACT)


@pytest.fixture(scope="module")
def icp(trained, crm):
    cfg, _, result = trained
    return build_icp(crm, result, cfg, version="v1")


def test_weights_sum_to_100_and_noise_needs_evidence(icp):
    for outcome, records in icp.profile["weights"]["by_outcome"].items():
        w = pd.DataFrame(records)
        # 100, or 0 when no attribute shows evidence (small outcomes on this tiny CRM).
        assert w["weight"].sum() in (pytest.approx(100.0), 0.0), outcome
        # Attributes without out-of-sample evidence carry no weight, whatever their SHAP mass.
        assert (w.loc[~w["evidence"], "weight"] == 0).all()
    dims = pd.DataFrame(icp.profile["weights"]["blended_fit_by_dimension"])
    assert dims["weight"].sum() == pytest.approx(100.0)


def test_explanations_add_up_to_the_raw_score(trained):
    _, _, result = trained
    for report in result.trained.values():
        X, _ = report.test_frame()
        contributions, base = report.model.contributions(X.head(50))
        np.testing.assert_allclose(
            contributions.sum(axis=1).to_numpy() + base, report.model.raw_score(X.head(50)), atol=1e-6
        )


def test_scores_tiers_and_quadrants_are_consistent(icp, trained):
    cfg, _, _ = trained
    s = icp.account_scores
    assert s["fit_score"].between(0, 100).all() and s["engagement_score"].between(0, 100).all()
    np.testing.assert_allclose(s["fit_score"], np.clip(s["fit_percentile"] - s["fit_penalty"], 0, 100))
    bounds = [s["fit_score"] >= 80, s["fit_score"] >= 60, s["fit_score"] >= 40]
    expected = np.select(bounds, ["Perfect", "Strong", "Moderate"], "Weak")
    assert (s["tier"].to_numpy() == expected).all()
    hot = (s["fit_score"] >= cfg.icp.high_fit) & (s["engagement_score"] >= cfg.icp.high_engagement)
    assert ((s["quadrant"] == "hot") == hot).all()
    # The fit points are the scorecard: the percentile ranks accounts by them.
    assert s["fit_points"].corr(s["fit_percentile"], method="spearman") > 0.99


def test_scorecard_agreement_is_reported_and_real(icp):
    agreement = icp.profile["scores"]["fit_scorecard_agreement"]
    assert set(agreement) <= {"win", "renewal", "expansion"} and "win" in agreement
    # Win is driven by account attributes, so the account-only scorecard ranks like its model.
    assert agreement["win"]["spearman_vs_model"] > 0.6
    points = icp.tables["fit_scorecard_points"]
    assert {"feature", "value_or_range", "points"} <= set(points.columns)


def test_profile_is_written_whole_and_atomically(icp, tmp_path, monkeypatch):
    folder = icp.write(tmp_path / "icp")
    profile = json.loads((folder / "icp_profile.json").read_text())
    assert profile["version"] == "v1" and profile["evidence"]["status"] == "sufficient"
    md = (folder / "icp_profile.md").read_text()
    assert md.startswith("# Ideal Customer Profile") and "## What changed" in md.split("## Evidence")[0]
    assert {"tier_rates.png", "weights_by_dimension.png", "segments.png"} <= {
        p.name for p in (folder / "plots").iterdir()
    }
    assert (folder / "models" / "segments" / "model.json").is_file()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(icp_build, "save_segment_model", broken)
    with pytest.raises(OSError):
        icp.write(folder)
    assert json.loads((folder / "icp_profile.json").read_text()) == profile


def test_a_new_version_says_what_changed(icp, trained, crm):
    cfg, _, result = trained
    previous = json.loads(json.dumps(icp.profile, default=str))
    previous["diff_summary"]["weights"] = {k: v + 5.0 for k, v in previous["diff_summary"]["weights"].items()}
    previous["diff_summary"]["traits"] = ["made-up trait"]
    again = build_icp(crm, result, cfg, version="v2", previous=previous)
    changes = again.profile["changes"]
    assert changes["previous_version"] == "v1" and not changes["is_first_version"]
    assert changes["weights_moved"] and "made-up trait" in changes["traits_lost"]
    assert "v1" in again.markdown.split("## Evidence")[0]


def test_segments_are_registered_and_load_without_pickles(icp, trained, tmp_path, monkeypatch):
    cfg, store, _ = trained
    folder = icp.write(tmp_path / "icp")
    tracker = Tracker(cfg.tracking.tracking_uri, cfg.tracking.experiment, artifact_root=store / "artifacts")
    with tracker.start_training("icp", params={}, tags={}):
        registered = log_icp(icp, folder, cfg, tracker)
    assert registered["segments"].alias == "champion"
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    model = load_champion(cfg.tracking.tracking_uri, "icp-segments")
    served = model.predict(to_model_input(icp.segment_frame))
    assert (served["segment"].to_numpy() == icp.account_scores["segment"].to_numpy()).all()
    with tracker.start_training("next", params={}, tags={}):
        assert tracker.previous_training_json("icp/icp_profile.json")["version"] == "v1"


def test_no_signal_means_insufficient_evidence_and_no_traits(crm, crm_folder, tmp_path):
    cfg = small_config(crm_folder, tmp_path)
    noise = crm.with_shuffled_labels(seed=3)
    result = train_outcomes(noise, cfg)
    profile = build_icp(noise, result, cfg, version="noise").profile
    assert profile["evidence"]["status"] == "insufficient", profile["evidence"]["by_outcome"]
    assert "Insufficient evidence" in profile["evidence"]["statement"]
    assert profile["cohorts"].get("traits", []) == []
    assert profile["negative_icp"]["exclusion_criteria"] == []
    assert profile.get("segments", {}).get("distinct_icps", []) == []
