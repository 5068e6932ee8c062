"""Typing values: non-finite numbers, stray text in numbers, dates, booleans, placeholders, repairs."""

import logging

import numpy as np
import pandas as pd
import pytest

from icpkit.config import DataConfig, TableConfig
from icpkit.data.crm import Repair
from icpkit.data.loading import load_crm, load_table
from icpkit.errors import DataContractError

EXTRACT = pd.Timestamp("2025-12-31")


def _accounts_csv(folder, column: str, values: list[str]) -> str:
    rows = [f"A{i},{v}" for i, v in enumerate(values)]
    (folder / "accounts.csv").write_text("\n".join([f"account_id,{column}", *rows]) + "\n")
    return str(folder)


def _opportunities_csv(folder, amounts: list[str]) -> str:
    (folder / "accounts.csv").write_text("account_id\nA1\n")
    rows = [f"O{i},A1,2025-01-0{i + 1},,{a}" for i, a in enumerate(amounts)]
    header = "opportunity_id,account_id,created_at,closed_at,amount"
    (folder / "opportunities.csv").write_text("\n".join([header, *rows]) + "\n")
    return str(folder)


def _load(source: str, **kw) -> object:
    return load_crm(DataConfig(source=source, **kw), EXTRACT)


# --- non-finite numbers ---------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["inf", "-inf", "nan", "NaN", "1e999"])
def test_non_finite_contract_number_is_an_error_with_example_rows(tmp_path, bad):
    with pytest.raises(DataContractError, match="numbers must be finite") as info:
        _load(_opportunities_csv(tmp_path, ["100", bad, "250.5"]))
    err = info.value
    assert (err.table, err.column, err.n_rows) == ("opportunities", "amount", 1)
    assert err.examples == [{"opportunity_id": "O1", "amount": bad}]


def test_non_finite_contract_number_from_parquet_is_an_error(tmp_path):
    pd.DataFrame({"account_id": ["A1"]}).to_parquet(tmp_path / "accounts.parquet")
    subs = pd.DataFrame(
        {
            "subscription_id": ["S1", "S2"],
            "account_id": ["A1", "A1"],
            "start_date": pd.to_datetime(["2024-01-01", "2024-02-01"]),
            "end_date": pd.to_datetime(["2025-01-01", "2025-02-01"]),
            "arr": [1000.0, np.inf],
        }
    )
    subs.to_parquet(tmp_path / "subscriptions.parquet")
    with pytest.raises(DataContractError, match="numbers must be finite") as info:
        _load(str(tmp_path))
    assert info.value.examples == [{"subscription_id": "S2", "arr": float("inf")}]


def test_non_finite_attribute_becomes_missing_counted_as_a_repair(tmp_path):
    crm = _load(_accounts_csv(tmp_path, "employees", ["10", "inf", "20", "nan", "-inf"] + ["5"] * 20))
    emp = crm["accounts"]["employees"]
    assert emp.dtype == "float64" and int(emp.isna().sum()) == 3 and np.isfinite(emp.dropna()).all()
    assert crm.repairs == [Repair("accounts", "employees", "non_finite", 3, {"-inf": 1, "inf": 1, "nan": 1})]


# --- numeric attributes with stray text -----------------------------------------------------------


def test_numeric_attribute_stray_strings_become_missing_counted_per_value(tmp_path, caplog):
    values = [str(i) for i in range(96)] + ["N/A", "N/A", "unknown", "N/A"]
    with caplog.at_level(logging.WARNING, logger="icpkit.data.loading"):
        crm = _load(_accounts_csv(tmp_path, "employees", values))
    emp = crm["accounts"]["employees"]
    assert emp.dtype == "float64" and int(emp.isna().sum()) == 4 and emp.max() == 95.0
    assert crm.repairs == [Repair("accounts", "employees", "not_a_number", 4, {"N/A": 3, "unknown": 1})]
    assert any("employees" in r.message and "N/A" in r.message for r in caplog.records)


def test_numeric_attribute_below_the_share_stays_text(tmp_path):
    values = [str(i) for i in range(90)] + ["N/A"] * 10
    crm = _load(_accounts_csv(tmp_path, "employees", values))
    assert str(crm["accounts"]["employees"].dtype) == "str" and crm.repairs == []


def test_numeric_share_is_configurable(tmp_path):
    values = [str(i) for i in range(90)] + ["N/A"] * 10
    crm = _load(_accounts_csv(tmp_path, "employees", values), numeric_share=0.9)
    assert crm["accounts"]["employees"].dtype == "float64" and crm.repairs[0].count == 10


# --- dates ----------------------------------------------------------------------------------------


def _leads_csv(folder, dates: list[str]) -> str:
    (folder / "accounts.csv").write_text("account_id\nA1\n")
    rows = [f"L{i},A1,{d}" for i, d in enumerate(dates)]
    (folder / "leads.csv").write_text("\n".join(["lead_id,account_id,created_at", *rows]) + "\n")
    return str(folder)


def test_dates_day_month_without_format_is_refused_naming_the_key(tmp_path):
    with pytest.raises(DataContractError) as info:
        _load(_leads_csv(tmp_path, ["03/04/2024", "05/06/2024"]))
    err = info.value
    assert (err.table, err.column, err.n_rows) == ("leads", "created_at", 2)
    assert "ambiguous" in err.rule and "data.tables.leads.date_format" in err.rule
    assert err.examples[0] == {"lead_id": "L0", "created_at": "03/04/2024"}


def test_dates_day_month_with_date_format_parse_day_first(tmp_path):
    source = _leads_csv(tmp_path, ["03/04/2024", "25/12/2024"])
    crm = _load(source, tables={"leads": TableConfig(date_format="%d/%m/%Y")})
    assert crm["leads"]["created_at"].tolist() == [pd.Timestamp("2024-04-03"), pd.Timestamp("2024-12-25")]


@pytest.mark.parametrize("date_format", [None, "%d/%m/%Y"])
def test_dates_iso_mixed_with_day_month_is_refused(tmp_path, date_format):
    source = _leads_csv(tmp_path, ["2024-01-05", "03/04/2024"])
    with pytest.raises(DataContractError, match="ISO dates .* mixed with day/month dates") as info:
        _load(source, tables={"leads": TableConfig(date_format=date_format)})
    assert info.value.column == "created_at" and "data.tables.leads.date_format" in info.value.rule


def test_dates_not_matching_the_format_are_an_error_naming_the_format(tmp_path):
    source = _leads_csv(tmp_path, ["03/04/2024", "April 5th"])
    with pytest.raises(
        DataContractError, match="must match data.tables.leads.date_format '%d/%m/%Y'"
    ) as info:
        _load(source, tables={"leads": TableConfig(date_format="%d/%m/%Y")})
    assert info.value.examples == [{"lead_id": "L1", "created_at": "April 5th"}]


def test_dates_beyond_the_ns_range_are_an_error_not_a_crash(tmp_path):
    with pytest.raises(DataContractError, match="dates must lie between"):
        _load(_leads_csv(tmp_path, ["2024-01-05", "9999-12-31"]))


def test_date_attribute_iso_is_typed_datetime_with_strays_repaired(tmp_path):
    values = [f"2024-01-{d:02d}" for d in range(1, 29)] * 4 + ["soon"]
    crm = _load(_accounts_csv(tmp_path, "signup_date", values))
    col = crm["accounts"]["signup_date"]
    assert col.dtype == "datetime64[ns]" and int(col.isna().sum()) == 1
    assert crm.repairs == [Repair("accounts", "signup_date", "not_a_date", 1, {"soon": 1})]


def test_date_attribute_day_month_without_format_is_refused_not_a_category(tmp_path):
    with pytest.raises(DataContractError, match="ambiguous") as info:
        _load(_accounts_csv(tmp_path, "signup_date", ["03/04/2024", "13/04/2024"]))
    assert (info.value.table, info.value.column) == ("accounts", "signup_date")


def test_date_attribute_uses_the_table_date_format(tmp_path):
    source = _accounts_csv(tmp_path, "signup_date", ["03/04/2024", "13/04/2024"])
    crm = _load(source, tables={"accounts": TableConfig(date_format="%d/%m/%Y")})
    assert crm["accounts"]["signup_date"].tolist() == [pd.Timestamp("2024-04-03"), pd.Timestamp("2024-04-13")]


# --- booleans, placeholders, fixes ----------------------------------------------------------------


@pytest.mark.parametrize("values", [["True", "false", "TRUE"], ["yes", "No", "yes"]])
def test_booleans_stay_text_with_their_source_spelling(tmp_path, values):
    crm = _load(_accounts_csv(tmp_path, "is_public", values))
    col = crm["accounts"]["is_public"]
    assert str(col.dtype) == "str" and col.tolist() == values


def test_booleans_typed_in_parquet_become_true_false_text():
    raw = pd.DataFrame({"account_id": ["A1", "A2"], "flag": [True, False]})
    assert load_table("accounts", raw).frame["flag"].tolist() == ["True", "False"]


def test_placeholders_become_missing_counted_per_table_and_column(tmp_path):
    (tmp_path / "accounts.csv").write_text(
        "account_id,industry,employees\nA1,Select,10\nA2, N/A ,-\nA3,saas,20\nA4,retail,unknown\n"
    )
    crm = _load(
        str(tmp_path),
        missing_values=["Select", "N/A", "-"],
        tables={"accounts": TableConfig(missing_values=["unknown"])},
    )
    acc = crm["accounts"]
    assert acc["industry"].isna().tolist() == [True, True, False, False]
    assert acc["employees"].dtype == "float64" and acc["employees"].tolist()[0] == 10.0
    assert crm.repairs == [
        Repair("accounts", "industry", "missing_value", 2, {"N/A": 1, "Select": 1}),
        Repair("accounts", "employees", "missing_value", 2, {"-": 1, "unknown": 1}),
    ]


def test_value_fixes_are_reported_as_repairs(tmp_path):
    source = _accounts_csv(tmp_path, "sector", ["technolgy", "retail", "technolgy"])
    crm = _load(source, tables={"accounts": TableConfig(values={"sector": {"technolgy": "technology"}})})
    assert crm.repairs == [Repair("accounts", "sector", "value_fix", 2, {"technolgy -> technology": 2})]
    assert "accounts.sector: 2 value_fix -> fixed" in crm.repairs[0].describe()


def test_repairs_survive_shuffled_labels_copy(tmp_path):
    crm = _load(_accounts_csv(tmp_path, "employees", ["1"] * 30 + ["N/A"]))
    assert crm.with_shuffled_labels(seed=1).repairs == crm.repairs


def test_numbers_read_from_repeated_texts_equal_those_read_cell_by_cell():
    # A column with few distinct texts is parsed once per text (speed at a million rows); the
    # values, non-finite and unparsed cells must be those of parsing every cell.
    from icpkit.data.values import _parse_numbers, to_numbers, to_text

    texts = ["1", " 2 ", "N/A", None, "inf", "-INF", "true", "False", "1e999", "3.5", "1_000", "１２", "007", ""]
    s = pd.Series(texts * 5, dtype="str")
    for booleans in (False, True):
        fast = to_numbers(s, booleans=booleans)
        values, non_finite = _parse_numbers(to_text(s), booleans)
        pd.testing.assert_series_equal(fast.values, values, check_names=False)
        pd.testing.assert_series_equal(fast.non_finite, non_finite, check_names=False)
        assert fast.unparsed.tolist() == (values.isna() & s.notna() & ~non_finite).tolist()
        assert fast.values.iloc[1] == 2.0 and fast.non_finite.iloc[4] and fast.unparsed.iloc[2]
    # Distinct texts (no repeats) take the cell-by-cell path and agree with the repeated one.
    assert to_numbers(pd.Series(texts, dtype="str")).values.equals(to_numbers(s).values.iloc[: len(texts)])
