"""What changed between two ICP profile versions."""

from __future__ import annotations

import json

from icpkit.icp.diff import diff_text, profile_diff

PREVIOUS = {
    "version": "3",
    "weights": {"employees": 30.0, "industry": 25.0, "region": 10.0, "tech_spend": 1.5},
    "traits": ["employees", "industry=Healthcare", "region=EMEA"],
    "tier_rates": {"Perfect": {"win_rate": 0.40}, "Strong": {"win_rate": 0.30}},
}
CURRENT = {
    "version": "4",
    "weights": {"employees": 22.0, "industry": 26.0, "region": 10.5, "uses_crm": 5.0},
    "traits": ["employees", "industry=Healthcare", "uses_crm=True"],
    "tier_rates": {"Perfect": {"win_rate": 0.45}, "Strong": {"win_rate": 0.30}, "Weak": {"win_rate": 0.05}},
}


def test_profile_diff_detects_moved_weights_and_traits():
    diff = profile_diff(PREVIOUS, CURRENT)
    assert diff["previous_version"] == "3" and diff["is_first_version"] is False
    assert diff["weights_moved"] == [
        {"attribute": "employees", "before": 30.0, "after": 22.0, "change": -8.0},
        {"attribute": "uses_crm", "before": 0.0, "after": 5.0, "change": 5.0},
    ]  # industry (+1), region (+0.5) and tech_spend (-1.5) are below the threshold
    assert diff["traits_gained"] == ["uses_crm=True"]
    assert diff["traits_lost"] == ["region=EMEA"]
    changes = {(c["tier"], c["rate"]): c["change"] for c in diff["tier_rate_changes"]}
    # Strong did not move (0.30 -> 0.30), Weak is new: only Perfect's change is reported.
    assert changes.keys() == {("Perfect", "win_rate")}
    assert abs(changes[("Perfect", "win_rate")] - 0.05) < 1e-12
    json.dumps(diff)


def test_profile_diff_threshold_includes_attributes_dropped_from_profile():
    diff = profile_diff(PREVIOUS, CURRENT, weight_threshold=1.5)
    assert [m["attribute"] for m in diff["weights_moved"]] == ["employees", "uses_crm", "tech_spend"]


def test_profile_diff_first_version():
    diff = profile_diff(None, CURRENT)
    assert diff["is_first_version"] is True and diff["previous_version"] is None
    assert diff["weights_moved"] == diff["traits_gained"] == diff["traits_lost"] == []
    assert diff["tier_rate_changes"] == []
    assert diff_text(diff) == "first version: nothing to compare."


def test_diff_text_lists_changes():
    text = diff_text(profile_diff(PREVIOUS, CURRENT))
    assert "employees 30 → 22" in text
    assert "new traits: uses_crm=True" in text
    assert "traits no longer significant: region=EMEA" in text
    assert "Perfect win_rate 0.40 → 0.45" in text


def test_diff_text_says_when_nothing_changed():
    text = diff_text(profile_diff(PREVIOUS, {**PREVIOUS, "version": "4", "tier_rates": {}}))
    assert text == "no attribute weight, trait or tier rate changed."


def test_tier_rate_changes_below_the_threshold_are_not_news():
    current = {
        **PREVIOUS,
        "version": "5",
        "tier_rates": {"Perfect": {"win_rate": 0.405}, "Strong": {"win_rate": 0.25}},
    }
    diff = profile_diff(PREVIOUS, current, rate_threshold=0.01)
    assert [(c["tier"], round(c["change"], 2)) for c in diff["tier_rate_changes"]] == [("Strong", -0.05)]
