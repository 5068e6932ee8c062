import numpy as np
import pandas as pd

from icpkit.config import config_from_dict
from icpkit.data.crm import CRMData
from icpkit.features import (
    RECENCY_FEATURE,
    FeatureSpec,
    attribute_catalogue,
    build_outcome_dataset,
    engagement_features,
    ids_in,
    raw_rows,
)
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


def _cfg(**attributes):
    return config_from_dict(
        {
            "data": {"source": "unused"},
            "attributes": {"dimensions": {"firmographic": ["industry"]}, **attributes},
            "leakage": {"deny_columns": ["stage"]},
            "training": {"engagement_windows_days": [30, 90]},
        }
    )


def _dataset(acts, crm=None, **attributes):
    crm = crm if crm is not None else _crm(acts)
    cfg = _cfg(**attributes)
    return build_outcome_dataset(crm, OUTCOMES["conversion"], attribute_catalogue(crm, cfg), cfg)


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


def _rich_crm() -> CRMData:
    """Accounts with a date, a yes/no flag, an id-like name, an owner and a numeric code."""
    n = 60
    accounts = pd.DataFrame(
        {
            "account_id": [f"a{i}" for i in range(n)],
            "account_name": [f"Company {i}" for i in range(n)],
            "signup_date": pd.to_datetime(["2023-01-01"] * (n // 2) + ["2024-02-01"] * (n // 2)),
            "soc2_required": ["Yes", "No"] * (n // 2),
            "region_code": [1.0, 2.0, 3.0] * (n // 3),
            "account_owner": ["Ann", "Bob"] * (n // 2),
            "tickets_90d": np.arange(n, dtype=float),
        }
    )
    leads = pd.DataFrame(
        {
            "lead_id": [f"l{i}" for i in range(n)],
            "account_id": accounts["account_id"],
            "created_at": [T("2024-10-01")] * (n - 1) + [T("2023-06-01")],
            "converted": pd.array([1, 0] * (n // 2), dtype="Int8"),
        }
    )
    return CRMData(tables={"accounts": accounts, "leads": leads}, extract_date=T("2024-12-31"))


def test_attribute_kinds_and_roles_shape_the_features():
    crm = _rich_crm()
    ds = _dataset(None, crm=crm, categorical=["region_code"], dimensions={"behavioral": ["tickets_90d"]})
    X, spec = ds.X, ds.spec
    # a date becomes its age in days at the row's as-of time, never a category
    assert "signup_date" not in X.columns
    assert X.loc[0, "days_since_signup_date"] == (T("2024-10-01") - T("2023-01-01")).days
    assert np.isnan(X.loc[59, "days_since_signup_date"])  # signed up after the lead: not known then
    # a yes/no flag is a two-value category; a numeric code declared categorical is text
    assert set(X["soc2_required"].dropna()) == {"Yes", "No"}
    assert set(X["region_code"].dropna()) == {"1", "2", "3"}
    # an identifier is refused; the owner is a feature with the sales_org role, never a customer trait
    assert "account_name" not in X.columns and "identifier" in ds.refused["account_name"]
    assert ds.source_role["account_owner"] == "sales_org"
    assert ds.source_role["soc2_required"] == "customer"
    # behavioral snapshots are not used for rows older than snapshot_max_age_days (180)
    assert spec.snapshot_columns == ["tickets_90d"]
    assert X.loc[0, "tickets_90d"] == 0.0 and np.isnan(X.loc[59, "tickets_90d"])


def test_account_history_is_joined_as_of_each_row():
    crm = _rich_crm()
    history = pd.DataFrame(
        {
            "account_id": ["a0", "a0", "a1"],
            "valid_from": [T("2023-01-01"), T("2024-02-15"), T("2024-11-01")],
            "tickets_90d": [1.0, 7.0, 3.0],
        }
    )
    crm.tables["account_history"] = history
    ds = _dataset(None, crm=crm, dimensions={"behavioral": ["tickets_90d"]})
    assert ds.spec.history_columns == ["tickets_90d"] and ds.spec.snapshot_columns == []
    assert ds.X.loc[0, "tickets_90d"] == 7.0  # a0 as of 2024-10-01: the 2024-02-15 record
    assert np.isnan(ds.X.loc[1, "tickets_90d"])  # a1 first record is after its lead


def test_registered_models_rebuild_features_from_raw_rows():
    crm = _rich_crm()
    crm.tables["activities"] = ACTS.assign(account_id=["a0", "a0", "a1", "a2", "a0"])
    ds = _dataset(None, crm=crm, categorical=["region_code"])
    spec = FeatureSpec.from_dict(ds.spec.to_dict())
    rebuilt = spec.features(raw_rows(crm, spec), crm.extract_date)
    pd.testing.assert_frame_equal(rebuilt, ds.X)


def test_engagement_counts_are_held_as_float32_only_when_every_value_is_exact():
    from icpkit.features import _compact_counts

    counts = _compact_counts(pd.Series([0, 3, None, 2**24]))
    assert counts.dtype == np.float32
    assert np.array_equal(counts.astype("float64"), [0, 3, np.nan, 2**24], equal_nan=True)
    # A value float32 would round (a fraction, or a count past 2^24) keeps the column float64.
    for values in ([1.0, 0.1], [1.0, 2**24 + 1]):
        kept = _compact_counts(pd.Series(values))
        assert kept.dtype == np.float64 and kept.tolist() == values


def test_raw_rows_of_some_positions_equal_those_rows_of_the_whole_table():
    crm = _rich_crm()
    crm.tables["activities"] = ACTS.assign(account_id=["a0", "a0", "a1", "a2", "a0"])
    spec = _dataset(None, crm=crm, categorical=["region_code"]).spec
    full = raw_rows(crm, spec)
    picked = [len(full) - 1, 0]
    pd.testing.assert_frame_equal(raw_rows(crm, spec, np.array(picked)), full.iloc[picked].reset_index(drop=True))


def test_rows_of_a_few_accounts_count_exactly_what_the_whole_book_counts():
    # Rows covering few accounts drop the other accounts' activities before counting (memory);
    # the counts and recency must be those of the same rows among every account's rows.
    rng = np.random.default_rng(3)
    accounts = [f"a{i}" for i in range(40)]
    n = 4_000
    acct = pd.Series(rng.choice([*accounts, None], size=n), dtype="str")
    for dtype in ("str", "category"):
        acts = pd.DataFrame(
            {
                "account_id": acct.astype(dtype),
                "occurred_at": T("2024-01-01") + pd.to_timedelta(rng.integers(0, 400 * 86400, n), unit="s"),
                "activity_type": pd.Series(rng.choice(["web", "call", "email"], size=n)).astype(dtype),
            }
        ).sort_values(["occurred_at"], kind="stable", ignore_index=True)  # unsorted by account
        rows = pd.Series([*accounts, None, "a-new"], dtype="str")
        as_of = pd.Series(T("2024-06-01") + pd.to_timedelta(rng.integers(0, 200, len(rows)), unit="D"))
        everyone = engagement_features(acts, rows, as_of, [7, 30, 365], ["web", "call", "email", "fax"])
        few = [3, 17, len(accounts), len(accounts) + 1]  # two accounts, the empty one, one with no activity
        part = engagement_features(
            acts, rows.iloc[few].reset_index(drop=True), as_of.iloc[few].reset_index(drop=True), [7, 30, 365],
            ["web", "call", "email", "fax"],
        )  # fmt: skip
        pd.testing.assert_frame_equal(part, everyone.iloc[few].reset_index(drop=True))
        assert part.loc[0, "activity_all_365d"] > 0 and part.loc[3, "activity_all_365d"] == 0


def test_attributes_of_a_few_accounts_equal_those_of_the_whole_book():
    # Few rows (a test period, an input example) look up only their accounts' snapshot and
    # history records (memory); every value must be the one the whole book's lookup gives.
    from icpkit.features import FEW_ROWS, history_as_of, snapshot_attributes

    rng = np.random.default_rng(5)
    ids = [f"a{i}" for i in range(600)]
    accounts = pd.DataFrame(
        {
            "account_id": ids,
            "industry": rng.choice(["fintech", "retail", None], 600),
            "employees": rng.integers(1, 500, 600),
        }
    )
    history = pd.DataFrame(
        {
            "account_id": rng.choice(ids, 3000),
            "valid_from": T("2023-01-01") + pd.to_timedelta(rng.integers(0, 700, 3000), unit="D"),
            "tickets_90d": rng.integers(0, 20, 3000).astype(float),
        }
    ).drop_duplicates(["account_id", "valid_from"], ignore_index=True)
    rows = pd.Series(rng.choice([*ids, "a-unknown", None], 200), dtype="str")
    as_of = pd.Series(T("2023-06-01") + pd.to_timedelta(rng.integers(0, 600, 200), unit="D"))
    everyone_snap = snapshot_attributes(accounts, rows, ["industry", "employees"])
    everyone_hist = history_as_of(history, rows, as_of, ["tickets_90d"])
    assert everyone_hist["tickets_90d"].notna().sum() > 20 and everyone_snap["industry"].notna().sum() > 20
    few = [7, 3, 7, *np.flatnonzero(rows.isna() | (rows == "a-unknown"))[:2]]  # a repeat, unknown, empty
    assert len(few) < FEW_ROWS * min(len(accounts), len(history))  # the filtered path is the one tested
    assert len(rows) >= FEW_ROWS * len(history)  # and the whole book's lookup the other
    part_rows, part_as_of = rows.iloc[few].reset_index(drop=True), as_of.iloc[few].reset_index(drop=True)
    pd.testing.assert_frame_equal(
        snapshot_attributes(accounts, part_rows, ["industry", "employees"]),
        everyone_snap.iloc[few].reset_index(drop=True),
    )
    pd.testing.assert_frame_equal(
        history_as_of(history, part_rows, part_as_of, ["tickets_90d"]), everyone_hist.iloc[few].reset_index(drop=True)
    )
    # The whole book in table order shares the table's columns and gives the same values.
    book = snapshot_attributes(accounts, accounts["account_id"], ["industry"])
    assert book["industry"].tolist() == accounts["industry"].tolist()


def test_ids_in_equals_pandas_isin_for_text_numbers_and_missing_ids():
    text = pd.Series(["a1", "a2", None, "a4", "a1"], dtype="str")
    among = pd.Series(["a1", "a4", "zz"], dtype="str")
    expected = text.isin(among).to_numpy()
    np.testing.assert_array_equal(ids_in(text, among), expected)
    np.testing.assert_array_equal(ids_in(text, {"a1", "a4", "zz"}), expected)
    np.testing.assert_array_equal(ids_in(text, pd.Series(["a2", None], dtype="str")), [False, True, True, False, False])
    numbers = pd.Series([1, 2, 3])
    np.testing.assert_array_equal(ids_in(numbers, [3, 1]), [True, False, True])
