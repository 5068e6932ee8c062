import numpy as np
import pandas as pd

from icpkit.config import AttributesConfig
from icpkit.data.crm import CRMData
from icpkit.features import RECENCY_FEATURE, build_outcome_dataset, engagement_features
from icpkit.outcomes import OUTCOMES

T = pd.Timestamp


def _crm(activities: pd.DataFrame) -> CRMData:
    accounts = pd.DataFrame(
        {"account_id": ["a1", "a2"], "industry": ["fintech", "retail"], "employees": [100.0, 20.0]}
    )
    leads = pd.DataFrame(
        {
            "lead_id": ["l1", "l2", "l3"],
            "account_id": ["a1", "a1", "a2"],
            "created_at": [T("2024-03-01"), T("2024-06-01"), T("2024-03-01")],
            "converted": pd.array([1, 0, pd.NA], dtype="Int8"),
            "lead_source": ["web", "event", "web"],
            "stage": ["won", "lost", "open"],
        }
    )
    return CRMData(
        tables={"accounts": accounts, "leads": leads, "activities": activities}, extract_date=T("2024-12-31")
    )


ACTS = pd.DataFrame(
    {
        "account_id": ["a1", "a1", "a1", "a2", "a1"],
        "occurred_at": [T("2024-02-20"), T("2024-01-15"), T("2023-06-01"), T("2024-02-28"), T("2024-03-01")],
        "activity_type": ["web_visit", "meeting", "web_visit", "web_visit", "meeting"],
    }
)


def _dataset(acts):
    return build_outcome_dataset(
        _crm(acts),
        OUTCOMES["conversion"],
        AttributesConfig(dimensions={"firmographic": ["industry"]}),
        [30, 90],
        deny_columns=["stage"],
    )


def test_engagement_counts_windows_strictly_before_as_of():
    ds = _dataset(ACTS)
    X = ds.X
    # l1 (a1, 2024-03-01): web 02-20 (in 30d), meeting 01-15 (in 90d), web 2023 (out),
    # meeting 03-01 (same instant: excluded)
    assert X.loc[0, "activity_all_30d"] == 1
    assert X.loc[0, "activity_all_90d"] == 2
    assert X.loc[0, "activity_meeting_90d"] == 1
    assert X.loc[0, "activity_web_visit_30d"] == 1
    assert X.loc[0, RECENCY_FEATURE] == 10.0
    # l3 (a2): only its own account's activity counts
    assert X.loc[2, "activity_all_30d"] == 1 and X.loc[2, "activity_meeting_90d"] == 0


def test_activity_after_as_of_changes_no_feature():
    before = _dataset(ACTS).X
    late = pd.DataFrame(
        {
            "account_id": ["a1", "a2"],
            "occurred_at": [T("2024-03-02"), T("2024-03-01")],
            "activity_type": ["meeting", "web_visit"],
        }
    )
    after = _dataset(pd.concat([ACTS, late], ignore_index=True)).X
    # l1 and l3 are as of 2024-03-01: nothing changes for them
    pd.testing.assert_frame_equal(before.iloc[[0, 2]], after.iloc[[0, 2]])


def test_dataset_refuses_deny_listed_column_and_keeps_entity_and_account_attributes():
    ds = _dataset(ACTS)
    assert "stage" not in ds.X.columns and "stage" in ds.refused
    assert {"lead_source", "industry", "employees"} <= set(ds.X.columns)
    assert not {"lead_id", "account_id", "created_at", "converted"} & set(ds.X.columns)
    assert ds.X.loc[1, "industry"] == "fintech"
    assert ds.feature_source["activity_meeting_30d"] == "activity: meeting"
    assert ds.source_dimension["activity: meeting"] == "behavioral"
    assert ds.source_dimension["industry"] == "firmographic"
    assert ds.y.isna().tolist() == [False, False, True]


def test_engagement_features_without_activities_is_empty_frame():
    out = engagement_features(None, pd.Series(["a"]), pd.Series([T("2024-01-01")]), [30])
    assert out.shape == (1, 0)


def test_recency_is_nan_when_no_earlier_activity():
    out = engagement_features(
        ACTS, pd.Series(["a2", "zz"]), pd.Series([T("2024-01-01"), T("2024-06-01")]), [30]
    )
    assert np.isnan(out[RECENCY_FEATURE]).all()


def test_expansion_label_is_empty_until_due_and_positive_when_arr_grows():
    subs = pd.DataFrame({"expansion_arr": [0.0, 500.0, np.nan]})
    assert OUTCOMES["expansion"].label(subs).tolist() == [0, 1, pd.NA]
