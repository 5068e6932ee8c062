"""The ICP on a hand-made world shaped unlike the built-in generator (see tests/worlds.py).

On that world and on the same world with its labels shuffled, each claim of the profile is checked
against the truth.
"""

from __future__ import annotations

import pandas as pd
import pytest

from icpkit.config import config_from_dict
from icpkit.data.loading import load_crm
from icpkit.icp.model import FittedICP
from icpkit.workflow import train_and_profile
from tests.worlds import EXTRACT, make_world, world_config, write_world

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    folder = tmp_path_factory.mktemp("world")
    write_world(make_world(2500, seed=0), folder)
    cfg = config_from_dict(world_config(folder, tmp_path_factory.mktemp("store")))
    crm = load_crm(cfg.data, EXTRACT.date())
    return crm, cfg, train_and_profile(crm, cfg)


@pytest.fixture(scope="module")
def shuffled(world):
    crm, cfg, _ = world
    noise = crm.with_shuffled_labels(seed=5)
    return noise, train_and_profile(noise, cfg)


def _icp_attributes(profile) -> list[str]:
    return [w["attribute"] for w in profile["weights"]["icp"]]


def test_planted_drivers_are_the_icp_and_noise_is_not(world):
    _, _, run = world
    p = run.icp.profile
    assert p["evidence"]["status"] == "sufficient"
    icp = _icp_attributes(p)
    assert {"industry", "is_enterprise"} <= set(icp)
    # a coin flip, the sales rep and an identifier are never customer traits
    assert not {"random_flag", "owner", "account_name"} & set(icp)
    # offer terms are levers of the offer, not traits, and earn no fit points
    offer = {w["attribute"] for w in p["weights"]["offer_levers"]}
    assert not offer & set(icp)
    points = pd.DataFrame(p["scorecard"]["points"])
    assert set(points["feature"]) == set(icp)


def test_a_yes_no_flag_reads_as_two_values_everywhere(world):
    _, _, run = world
    points = pd.DataFrame(run.icp.profile["scorecard"]["points"])
    flag = points[points["feature"] == "is_enterprise"]
    assert {"Yes", "No"} <= set(flag["value_or_range"])
    assert flag.set_index("value_or_range").loc["Yes", "points"] > flag.set_index("value_or_range").loc["No", "points"]
    assert not points["value_or_range"].str.contains("e-").any()


def test_a_date_is_an_age_never_a_category(world):
    _, _, run = world
    ds = run.training.reports["win"].dataset
    assert "signup_date" not in ds.X.columns and "days_since_signup_date" in ds.X.columns
    drivers = run.icp.tables["negative_icp_drivers"]
    assert not drivers["value"].astype(str).str.match(r"\d{4}-\d\d-\d\d").any()


def test_the_middle_of_an_ordinal_is_no_driver_and_exclusions_do_not_overlap(world):
    _, _, run = world
    drivers = run.icp.tables["negative_icp_drivers"]
    maturity = drivers[(drivers["attribute"] == "maturity") & drivers["significant"]]
    assert maturity.empty or maturity["value"].str.startswith(("<", ">=")).all()
    exclusions = run.icp.profile["negative_icp"]["exclusions"]
    keys = [(e["attribute"], e["kind"], tuple(e["values"])) for e in exclusions]
    assert len(keys) == len(set(keys))
    assert all(e["accounts"] > 0 for e in exclusions)
    penalised = run.icp.profile["negative_icp"]["penalty"]["share_penalised"]
    assert penalised <= 0.25


def test_a_censoring_artefact_is_flagged_not_made_a_driver(world):
    _, _, run = world
    flagged = {c["attribute"] for c in run.icp.profile["negative_icp"]["censoring"]["renewal"]}
    assert "billing_frequency" in flagged
    rules = [*run.icp.fitted.exclusions, *run.icp.fitted.penalty_rules]
    assert "billing_frequency" not in {r.attribute for r in rules}
    assert any("unlabelled" in line for line in run.icp.profile["negative_icp"]["unlabelled"])


def test_segments_do_not_split_on_the_random_flag(world):
    _, _, run = world
    seg = run.icp.profile["segments"]
    assert "random_flag" not in seg.get("attributes", [])


def test_every_claim_about_tiers_is_tested_on_test_periods(world):
    _, _, run = world
    p = run.icp.profile
    validation = p["scorecard"]["validation"]
    assert set(validation) == {"win", "renewal"}
    assert validation["win"]["beats_chance"]
    # one computed sentence per fit outcome, naming the trend test
    assert len(p["tiers"]["statements"]) == 2 and all("trend test" in s for s in p["tiers"]["statements"])
    assert p["tiers"]["validated"] == all(v["beats_chance"] for v in validation.values()) and (
        p["tiers"]["validated"] == run.icp.fitted.validation["tiers_validated"]
    )


def test_the_fitted_icp_reloads_and_scores_the_book_exactly(world, tmp_path):
    crm, _, run = world
    folder = run.icp.fitted.save(tmp_path / "icp")
    loaded = FittedICP.load(folder)
    accounts = run.icp.derivation.scores["account_id"]
    book = crm["accounts"].set_index("account_id").reindex(accounts).reset_index()
    again = loaded.score(book, EXTRACT)
    pd.testing.assert_frame_equal(
        again.drop(columns=["engagement_points", "engagement_score", "quadrant"]),
        run.icp.account_scores.drop(columns=["engagement_points", "engagement_score", "quadrant"]),
    )


def test_reasons_use_the_points_table(world):
    _, _, run = world
    scores = run.icp.account_scores
    points = pd.DataFrame(run.icp.profile["scorecard"]["points"])
    sample = scores["reasons_up"][scores["reasons_up"] != ""].head(50)
    for text in sample:
        for reason in text.split("; "):
            feature = reason.split(" ", 1)[0]
            earned = int(reason.rsplit("(+", 1)[1].split(" of ")[0])
            assert earned in set(points.loc[points["feature"] == feature, "points"])


def test_shuffled_labels_name_nothing(shuffled):
    _, run = shuffled
    p = run.icp.profile
    assert p["evidence"]["status"] == "insufficient"
    assert p["weights"]["icp"] == []
    assert p["summary"]["best_customers"] == [] and p["summary"]["avoid"] == []
    assert p["negative_icp"]["exclusions"] == [] and p["negative_icp"]["drivers"] == []
    assert "profiles" not in p["segments"]
    assert p["cohorts"].get("traits", []) == []
    assert (run.icp.account_scores["tier"] == "Unscored").all() and p["summary"]["tier_statements"] == []
