"""Reading bad files: encodings, duplicate or case-clashing names, empty tables, secrets, name case."""

import logging

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from icpkit.config import DataConfig, LabelRule, TableConfig, config_from_dict
from icpkit.data.loading import load_crm
from icpkit.errors import ConfigError, DataContractError, ICPKitError

EXTRACT = pd.Timestamp("2025-12-31")
ACCOUNTS = "account_id,industry\nA1,saas\nA2,retail\n"
LEADS = "lead_id,account_id,created_at,converted\nL1,A1,2025-01-05,1\nL2,A2,2025-02-01,0\n"


def _write(folder, **files: str | bytes):
    for name, body in files.items():
        path = folder / name.replace("__", ".")
        path.write_bytes(body if isinstance(body, bytes) else body.encode())
    return str(folder)


def _load(source, **tables) -> object:
    return load_crm(DataConfig(source=str(source), tables=tables), EXTRACT)


# --- encodings ---------------------------------------------------------------------------------


def test_encoding_latin1_bytes_are_one_error_naming_file_line_and_key(tmp_path):
    _write(tmp_path, accounts__csv="account_id,city\nA1,Paris\nA2,K\xf6ln\n".encode("latin-1"))
    with pytest.raises(DataContractError) as info:
        _load(tmp_path)
    msg = str(info.value)
    assert info.value.table == "accounts" and "accounts.csv" in msg and "utf-8" in msg
    assert "line 3" in msg and "0xf6" in msg and "data.tables.accounts.encoding" in msg
    assert info.value.__cause__ is None and info.value.__suppress_context__  # no UnicodeDecodeError chain


def test_encoding_latin1_configured_reads_the_file(tmp_path):
    _write(tmp_path, accounts__csv="account_id,city\nA1,Paris\nA2,K\xf6ln\n".encode("latin-1"))
    crm = _load(tmp_path, accounts=TableConfig(encoding="latin-1"))
    assert crm["accounts"]["city"].tolist() == ["Paris", "Köln"]


def test_encoding_unknown_name_is_a_config_error():
    with pytest.raises(ConfigError, match=r"data\.tables\.accounts\.encoding.*unknown encoding 'latin-99'"):
        config_from_dict({"data": {"source": "/x", "tables": {"accounts": {"encoding": "latin-99"}}}})


def test_encoding_utf8_byte_order_mark_is_not_part_of_the_first_name(tmp_path):
    _write(tmp_path, accounts__csv=b"\xef\xbb\xbf" + ACCOUNTS.encode())
    assert list(_load(tmp_path)["accounts"].columns) == ["account_id", "industry"]


# --- duplicate and case-clashing names ------------------------------------------------------------


def test_duplicate_column_csv_is_caught_before_pandas_renames_it(tmp_path):
    _write(tmp_path, accounts__csv="account_id,industry,industry\nA1,saas,x\n")
    with pytest.raises(DataContractError) as info:
        _load(tmp_path)
    assert (info.value.table, info.value.column) == ("accounts", "industry")
    assert "more than once in accounts.csv" in str(info.value) and "industry.1" not in str(info.value)


def test_duplicate_column_parquet_is_an_error(tmp_path):
    table = pa.Table.from_arrays(
        [pa.array(["A1"]), pa.array(["x"]), pa.array(["y"])], ["account_id", "a", "a"]
    )
    pq.write_table(table, tmp_path / "accounts.parquet")
    with pytest.raises(DataContractError, match="more than once in accounts.parquet") as info:
        _load(tmp_path)
    assert info.value.column == "a"


def test_duplicate_column_sql_query_is_an_error(tmp_path):
    import sqlalchemy as sa

    url = f"sqlite:///{tmp_path / 'crm.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        pd.DataFrame({"account_id": ["A1"], "industry": ["saas"]}).to_sql("accounts", conn, index=False)
    engine.dispose()
    query = "SELECT account_id, industry, industry FROM accounts"
    with pytest.raises(DataContractError, match="more than once in the query result"):
        load_crm(DataConfig(source=url, tables={"accounts": TableConfig(query=query)}), EXTRACT)


def test_columns_differing_only_in_case_are_an_error(tmp_path):
    _write(tmp_path, accounts__csv="account_id,Industry,industry\nA1,saas,x\n")
    with pytest.raises(DataContractError, match=r"columns \['Industry', 'industry'\] differ only in case"):
        _load(tmp_path)


def test_columns_differing_only_in_case_pass_once_one_is_dropped(tmp_path):
    _write(tmp_path, accounts__csv="account_id,Industry,industry\nA1,saas,x\n")
    crm = _load(tmp_path, accounts=TableConfig(drop_columns=["Industry"]))
    assert list(crm["accounts"].columns) == ["account_id", "industry"]


# --- empty tables --------------------------------------------------------------------------------


def test_empty_accounts_header_only_is_an_error_naming_accounts(tmp_path):
    _write(tmp_path, accounts__csv="account_id,industry\n", leads__csv=LEADS)
    with pytest.raises(DataContractError) as info:
        _load(tmp_path)
    assert info.value.table == "accounts" and "empty" in str(info.value) and "accounts.csv" in str(info.value)


@pytest.mark.parametrize("body", ["lead_id,account_id,created_at\n", ""], ids=["header-only", "0-bytes"])
def test_empty_optional_table_is_absent_with_a_log_line(tmp_path, caplog, body):
    _write(tmp_path, accounts__csv=ACCOUNTS, leads__csv=body)
    with caplog.at_level(logging.INFO, logger="icpkit.data.loading"):
        crm = _load(tmp_path)
    assert not crm.has("leads")
    assert any(r.message.startswith("leads:") and "empty" in r.message for r in caplog.records)


# --- names in another case ------------------------------------------------------------------------


def test_case_insensitive_contract_label_converted_is_read_as_converted(tmp_path, caplog):
    _write(tmp_path, accounts__csv=ACCOUNTS, leads__csv=LEADS.replace("converted", "Converted"))
    with caplog.at_level(logging.INFO, logger="icpkit.data.loading"):
        leads = _load(tmp_path)["leads"]
    assert leads["converted"].tolist() == [1, 0] and "Converted" not in leads.columns
    notes = [r.message for r in caplog.records if r.levelno == logging.INFO and "ignoring case" in r.message]
    assert any("'converted'" in m and "'Converted'" in m for m in notes)


def test_case_insensitive_required_column_rename_key_drop_and_exclude(tmp_path):
    _write(
        tmp_path,
        accounts__csv="ID,Industry,Notes\nA1,saas,x\nA2,retail,y\n",
        leads__csv="Lead_ID,Account_ID,Created_At\nL1,A1,2025-01-05\nL2,,2025-02-01\n",
    )
    crm = _load(
        tmp_path,
        accounts=TableConfig(rename={"id": "account_id"}, drop_columns=["notes"]),
        leads=TableConfig(exclude_rows_missing=["account_id"]),
    )
    assert list(crm["accounts"].columns) == ["account_id", "Industry"]
    assert crm.dropped_columns == {"accounts": ["Notes"]}
    assert crm["leads"]["lead_id"].tolist() == ["L1"] and crm.excluded[0].count == 1


def test_case_insensitive_label_rule_status_column(tmp_path):
    _write(
        tmp_path,
        accounts__csv=ACCOUNTS,
        deals__csv="opportunity_id,account_id,created_at,closed_at,Stage\nO1,A1,2025-01-01,2025-02-01,Won\n",
    )
    rule = LabelRule(column="stage", positive=["Won"], negative=["Lost"])
    crm = _load(tmp_path, opportunities=TableConfig(source="deals.csv", label=rule))
    assert crm["opportunities"]["won"].tolist() == [1] and "Stage" in crm["opportunities"].columns


# --- readable failures and secrets ----------------------------------------------------------------


def test_csv_rows_longer_than_the_header_are_an_error_naming_the_line(tmp_path):
    # pandas would silently shift the header onto the last cells (account_id = "extra").
    _write(tmp_path, accounts__csv="account_id,industry\nA1,saas,extra,cells\n")
    with pytest.raises(DataContractError, match="accounts.csv: line 2 has 4 cells but the header names 2"):
        _load(tmp_path)


def test_csv_trailing_delimiters_are_ignored(tmp_path):
    _write(tmp_path, accounts__csv="account_id,industry\nA1,saas,\nA2,retail,\n")
    assert _load(tmp_path)["accounts"]["account_id"].tolist() == ["A1", "A2"]


def test_csv_ragged_short_and_long_rows_are_an_error_naming_the_file(tmp_path):
    _write(tmp_path, accounts__csv="account_id,industry\nA1,saas\nA2,retail,extra\n")
    with pytest.raises(ICPKitError, match="cannot read accounts.csv as CSV"):
        _load(tmp_path)


def test_secrets_database_url_password_never_in_the_error(tmp_path):
    url = "postgresql://alice:S3cretPW@127.0.0.1:1/x"
    with pytest.raises(ICPKitError) as info:
        load_crm(DataConfig(source=url), EXTRACT)
    assert "S3cretPW" not in str(info.value) and "alice:***@127.0.0.1" in str(info.value)


def test_opportunities_without_amount_load(tmp_path):
    _write(
        tmp_path,
        accounts__csv=ACCOUNTS,
        opportunities__csv="opportunity_id,account_id,created_at,closed_at,won\nO1,A1,2025-01-01,2025-02-01,1\n",
    )
    opp = _load(tmp_path)["opportunities"]
    assert "amount" not in opp.columns and opp["won"].tolist() == [1]
