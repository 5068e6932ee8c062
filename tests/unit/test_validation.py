"""Each contract rule: good input passes, bad input raises the named DataContractError."""

import pandas as pd
import pytest

from icpkit.data.validation import validate_crm
from icpkit.errors import DataContractError

T = pd.Timestamp
EXTRACT = T("2025-12-31")


def _tables() -> dict[str, pd.DataFrame]:
    """A small, valid CRM already typed as the loader types it."""
    accounts = pd.DataFrame({"account_id": ["A1", "A2", "A3"], "industry": ["saas", "retail", "saas"]})
    leads = pd.DataFrame(
        {
            "lead_id": ["L1", "L2", "L3"],
            "account_id": ["A1", "A2", "A3"],
            "created_at": [T("2025-01-05"), T("2025-02-01"), T("2025-03-01")],
            "converted": pd.array([1, 0, pd.NA], dtype="Int8"),
        }
    )
    opportunities = pd.DataFrame(
        {
            "opportunity_id": ["O1", "O2", "O3", "O4"],
            "account_id": ["A1", "A1", "A2", "A3"],
            "created_at": [T("2025-01-10"), T("2025-02-10"), T("2025-03-10"), T("2025-04-10")],
            "closed_at": [T("2025-02-01"), T("2025-03-01"), pd.NaT, pd.NaT],
            "amount": [1000.0, 0.0, None, 500.0],
            "won": pd.array([1, 0, pd.NA, pd.NA], dtype="Int8"),
        }
    )
    subscriptions = pd.DataFrame(
        {
            "subscription_id": ["S1", "S2", "S3"],
            "account_id": ["A1", "A2", "A3"],
            "start_date": [T("2024-01-01"), T("2024-06-01"), T("2025-01-01")],
            "end_date": [T("2025-01-01"), T("2025-06-01"), T("2026-01-01")],
            "arr": [10_000.0, 5_000.0, 7_500.0],
            "renewed": pd.array([1, 0, pd.NA], dtype="Int8"),
        }
    )
    activities = pd.DataFrame(
        {
            "account_id": ["A1", "A2", "A1"],
            "occurred_at": [T("2025-01-01"), T("2025-01-02"), T("2025-01-03")],
            "activity_type": ["web_visit", "meeting", "email"],
        }
    )
    return {
        "accounts": accounts,
        "leads": leads,
        "opportunities": opportunities,
        "subscriptions": subscriptions,
        "activities": activities,
    }


def _raises(tables: dict[str, pd.DataFrame]) -> DataContractError:
    with pytest.raises(DataContractError) as info:
        validate_crm(tables, EXTRACT)
    return info.value


def test_validate_good_crm_passes():
    assert validate_crm(_tables(), EXTRACT) is None


def test_validate_accounts_only_passes():
    assert validate_crm({"accounts": _tables()["accounts"]}, EXTRACT) is None


def test_validate_missing_accounts_table_is_an_error():
    err = _raises({"leads": _tables()["leads"]})
    assert err.table == "accounts" and "required" in str(err)


def test_required_columns_missing_lists_missing_and_found_and_hints_rename():
    t = _tables()
    t["accounts"] = t["accounts"].rename(columns={"account_id": "account"})
    err = _raises(t)
    assert (err.table, err.column) == ("accounts", "account_id")
    msg = str(err)
    assert "missing required column(s) ['account_id']" in msg
    assert "columns found: ['account', 'industry']" in msg
    assert "data.tables.accounts.rename" in msg and "account: account_id" in msg


def test_required_columns_several_missing_are_all_listed():
    t = _tables()
    t["opportunities"] = t["opportunities"].drop(columns=["created_at", "closed_at"])
    err = _raises(t)
    assert err.table == "opportunities" and err.column is None
    assert "['created_at', 'closed_at']" in str(err)


def test_not_null_empty_required_cell_is_an_error():
    t = _tables()
    t["leads"].loc[1, "created_at"] = pd.NaT
    err = _raises(t)
    assert (err.table, err.column, err.rule, err.n_rows) == ("leads", "created_at", "must not be empty", 1)
    assert err.examples == [{"lead_id": "L2", "created_at": None}]


def test_id_duplicate_is_an_error_showing_all_copies():
    t = _tables()
    t["opportunities"].loc[3, "opportunity_id"] = "O1"
    err = _raises(t)
    assert (err.table, err.column, err.rule, err.n_rows) == (
        "opportunities",
        "opportunity_id",
        "ids must be unique",
        2,
    )
    assert err.examples == [{"opportunity_id": "O1"}, {"opportunity_id": "O1"}]


def test_account_reference_unknown_account_is_an_error():
    t = _tables()
    t["opportunities"].loc[0, "account_id"] = "ZZZ"
    err = _raises(t)
    assert (err.table, err.column, err.n_rows) == ("opportunities", "account_id", 1)
    assert err.rule == "every account_id must exist in accounts"
    assert err.examples == [{"opportunity_id": "O1", "account_id": "ZZZ"}]
    assert str(err) == (
        "table 'opportunities', column 'account_id': every account_id must exist in accounts (1 row)\n"
        "  example rows:\n"
        "    {'opportunity_id': 'O1', 'account_id': 'ZZZ'}"
    )


def test_account_reference_event_table_examples_use_account_id():
    t = _tables()
    t["activities"].loc[2, "account_id"] = "NOPE"
    err = _raises(t)
    assert (err.table, err.column) == ("activities", "account_id")
    assert err.examples == [{"account_id": "NOPE", "occurred_at": "2025-01-03"}]


def test_label_value_other_than_0_1_is_an_error():
    t = _tables()
    t["leads"]["converted"] = pd.array([1, 2, pd.NA], dtype="Int8")
    err = _raises(t)
    assert (err.table, err.column, err.rule, err.n_rows) == (
        "leads",
        "converted",
        "labels must be 0, 1 or empty",
        1,
    )
    assert err.examples == [{"lead_id": "L2", "converted": 2}]


def test_dates_unparseable_text_is_an_error():
    t = _tables()
    t["activities"]["occurred_at"] = ["2025-01-01", "soon", "2025-01-03"]
    err = _raises(t)
    assert (err.table, err.column, err.n_rows) == ("activities", "occurred_at", 1)
    assert err.rule.startswith("dates must parse")
    assert err.examples == [{"account_id": "A2", "occurred_at": "soon"}]


def test_dates_as_text_that_parse_pass():
    t = _tables()
    t["activities"]["occurred_at"] = ["2025-01-01", "2025-01-02", "2025-01-03"]
    assert validate_crm(t, EXTRACT) is None


def test_dates_after_extract_date_is_an_error():
    t = _tables()
    t["opportunities"].loc[3, "created_at"] = T("2026-02-01")
    err = _raises(t)
    assert (err.table, err.column, err.n_rows) == ("opportunities", "created_at", 1)
    assert err.rule == "date after the extract date 2025-12-31"
    assert err.examples == [{"opportunity_id": "O4", "created_at": "2026-02-01"}]


def test_dates_on_the_extract_day_pass():
    t = _tables()
    t["activities"].loc[0, "occurred_at"] = T("2025-12-31 17:30")
    assert validate_crm(t, EXTRACT) is None


def test_opportunity_closed_before_created_is_an_error():
    t = _tables()
    t["opportunities"].loc[1, "closed_at"] = T("2025-01-01")
    err = _raises(t)
    assert (err.table, err.column, err.rule, err.n_rows) == (
        "opportunities",
        "closed_at",
        "closed_at must not be before created_at",
        1,
    )
    assert err.examples == [{"opportunity_id": "O2", "created_at": "2025-02-10", "closed_at": "2025-01-01"}]


def test_subscription_end_before_start_is_an_error():
    t = _tables()
    t["subscriptions"].loc[0, "end_date"] = T("2023-06-01")
    err = _raises(t)
    assert (err.table, err.column, err.rule) == (
        "subscriptions",
        "end_date",
        "end_date must not be before start_date",
    )
    assert err.examples == [{"subscription_id": "S1", "start_date": "2024-01-01", "end_date": "2023-06-01"}]


def test_won_opportunity_without_closed_at_is_an_error():
    t = _tables()
    t["opportunities"].loc[2, "won"] = 1
    err = _raises(t)
    assert (err.table, err.column, err.n_rows) == ("opportunities", "closed_at", 1)
    assert err.rule == "an opportunity with a won label must have closed_at"
    assert err.examples == [{"opportunity_id": "O3", "won": 1, "closed_at": None}]


def test_first_violation_is_reported_in_table_order():
    t = _tables()
    t["activities"].loc[0, "account_id"] = "NOPE"  # later table
    t["leads"].loc[0, "lead_id"] = "L2"  # earlier table
    err = _raises(t)
    assert (err.table, err.column) == ("leads", "lead_id")


def test_examples_are_capped_at_five_rows():
    accounts = pd.DataFrame({"account_id": ["A"] * 7})
    err = _raises({"accounts": accounts})
    assert err.n_rows == 7 and len(err.examples) == 5
