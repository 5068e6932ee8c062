"""Entities to score: open leads, open opportunities, renewals due, and their model frames."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from icpkit.scoring.entities import (
    account_frame,
    entities_to_score,
    entity_frame,
    expected_value,
    open_leads,
    open_opportunities,
    renewals_due,
)

DAY = dt.date(2025, 6, 30)


def _ts(*days: str | None) -> pd.Series:
    return pd.to_datetime(pd.Series(list(days), dtype=object))


@pytest.fixture
def accounts() -> pd.DataFrame:
    return pd.DataFrame(
        {"account_id": ["A", "B"], "industry": ["Banking", "Retail"], "employees": [10.0, 99.0]}
    )


@pytest.fixture
def activities() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "account_id": ["A", "A", "A", "B"],
            "occurred_at": _ts("2025-06-01", "2025-06-29", "2025-06-30", "2025-01-01"),
            "activity_type": ["email", "web", "web", "web"],
        }
    )


def test_open_leads_are_the_unconverted_ones():
    leads = pd.DataFrame(
        {"lead_id": ["l1", "l2", "l3"], "converted": pd.array([1, pd.NA, 0], dtype="Int8"), "account_id": "A"}
    )
    assert open_leads(leads)["lead_id"].tolist() == ["l2"]


def test_open_leads_all_open_without_label_column():
    assert open_leads(pd.DataFrame({"lead_id": ["l1", "l2"]}))["lead_id"].tolist() == ["l1", "l2"]


def test_open_opportunities_need_no_label_and_no_close_date():
    opps = pd.DataFrame(
        {
            "opportunity_id": ["o1", "o2", "o3", "o4"],
            "won": pd.array([pd.NA, pd.NA, 1, 0], dtype="Int8"),
            "closed_at": _ts(None, "2025-05-01", "2025-05-01", "2025-05-02"),
        }
    )
    # o2 has a close date but no label: closed, not open.
    assert open_opportunities(opps)["opportunity_id"].tolist() == ["o1"]


def test_renewals_due_within_horizon_inclusive():
    subs = pd.DataFrame(
        {
            "subscription_id": ["past", "today", "edge", "later", "renewed", "in"],
            "end_date": _ts(
                "2025-06-29", "2025-06-30", "2025-09-28", "2025-09-29", "2025-07-10", "2025-07-10"
            ),
            "renewed": pd.array([pd.NA, pd.NA, pd.NA, pd.NA, 1, pd.NA], dtype="Int8"),
        }
    )
    due = renewals_due(subs, DAY, horizon_days=90)
    assert due["subscription_id"].tolist() == ["today", "edge", "in"]
    assert renewals_due(subs, DAY, horizon_days=0)["subscription_id"].tolist() == ["today"]


def test_expected_value_is_propensity_times_amount_missing_stays_missing():
    ev = expected_value(pd.Series([0.5, 0.2, 0.9]), pd.Series([1000.0, np.nan, 10.0]))
    assert ev.iloc[0] == 500.0 and np.isnan(ev.iloc[1]) and ev.iloc[2] == pytest.approx(9.0)
    assert ev.name == "expected_value"


def test_account_frame_counts_engagement_up_to_and_including_the_date(accounts, activities):
    frame = account_frame(accounts, activities, DAY, [30])
    assert frame["account_id"].tolist() == ["A", "B"]
    # A: 06-01, 06-29 and 06-30 (the scoring date, as in the training book) count; B's January
    # visit is too old.
    assert frame["activity_all_30d"].tolist() == [3.0, 0.0]
    assert (frame["as_of"] == pd.Timestamp(DAY)).all()
    assert frame["activity_web_30d"].tolist() == [2.0, 0.0]
    assert frame["industry"].tolist() == ["Banking", "Retail"]


def test_entity_frame_joins_account_and_engagement_as_of_the_row(accounts, activities):
    leads = pd.DataFrame(
        {
            "lead_id": ["l1", "l2"],
            "account_id": ["A", "A"],
            "created_at": _ts("2025-06-02", "2025-06-30"),
            "employees": [5.0, 6.0],  # the entity's own column wins over the account's
        }
    )
    frame = entity_frame(leads, accounts, activities, "created_at", [30])
    assert frame["industry"].tolist() == ["Banking", "Banking"]
    assert frame["employees"].tolist() == [5.0, 6.0]
    assert frame["activity_all_30d"].tolist() == [1.0, 2.0]
    assert list(frame.columns).count("employees") == 1


def test_entities_to_score_skips_absent_tables():
    tables = {"leads": pd.DataFrame({"lead_id": ["l1"], "converted": pd.array([pd.NA], dtype="Int8")})}
    out = entities_to_score(tables, DAY, 90)
    assert list(out) == ["open_leads"] and len(out["open_leads"]) == 1
