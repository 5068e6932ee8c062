"""Loading CRM exports onto the contract: mapping, labels, exclusions, typing, formats, Maven."""

import logging
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from icpkit.config import DataConfig, LabelRule, TableConfig, load_config
from icpkit.data.loading import load_crm
from icpkit.errors import DataContractError, ICPKitError

ROOT = Path(__file__).resolve().parents[2]
MAVEN_CONFIG = ROOT / "pipelines" / "configs" / "maven_crm.yaml"
T = pd.Timestamp
EXTRACT = T("2025-12-31")


def _raw_crm() -> dict[str, pd.DataFrame]:
    """A tiny CRM as an export would hold it: numeric ids, a status column, mixed attributes."""
    accounts = pd.DataFrame(
        {
            "id": [1, 2, 3, 4],  # numeric-looking ids must become "1", not "1.0"
            "industry": ["saas", "retail", None, "saas"],
            "employees": [120, 45, 3000, 8],
            "revenue_musd": [12.5, None, 410.0, 0.75],
            "is_public": [False, True, True, False],
            "notes": ["call back", "", "vip", None],  # "" is an empty cell in every format
        }
    )
    leads = pd.DataFrame(
        {
            "lead_id": ["L1", "L2", "L3"],
            "account_id": [1, 2, 4],
            "created_at": [T("2025-01-05"), T("2025-02-01 09:30"), T("2025-03-01")],
            "converted": pd.array([1, 0, pd.NA], dtype="Int8"),
            "lead_source": ["web", "event", "web"],
        }
    )
    deals = pd.DataFrame(
        {
            "deal": ["D1", "D2", "D3", "D4", "D5"],
            "company": [1, 1, 2, None, 3],
            "engaged": [T("2025-01-10"), T("2025-02-10"), T("2025-03-10"), T("2025-04-01"), T("2025-04-10")],
            "closed": [T("2025-02-01"), T("2025-03-01"), pd.NaT, pd.NaT, T("2025-05-01")],
            "value": [1000.0, 0.0, None, None, 250.0],
            "stage": ["Won", "Lost", "Open", "Open", "Won"],
            "product": ["Pro", "ProX", "Basic", "Basic", "Pro"],
        }
    )
    return {"accounts": accounts, "leads": leads, "deals": deals}


def _config(source: str) -> DataConfig:
    return DataConfig(
        source=source,
        tables={
            "accounts": TableConfig(rename={"id": "account_id"}, drop_columns=["notes"]),
            "opportunities": TableConfig(
                source="deals",
                rename={
                    "deal": "opportunity_id",
                    "company": "account_id",
                    "engaged": "created_at",
                    "closed": "closed_at",
                    "value": "amount",
                },
                label=LabelRule(column="stage", positive=["Won"], negative=["Lost"], open=["Open"]),
                values={"product": {"ProX": "Pro"}},
                exclude_rows_missing=["account_id"],
            ),
        },
    )


def _write_files(folder: Path, fmt: str, crm: dict[str, pd.DataFrame]) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    for name, df in crm.items():
        if fmt == "csv":
            df.to_csv(folder / f"{name}.csv", index=False)
        else:
            df.to_parquet(folder / f"{name}.parquet", index=False)
    return str(folder)


def _write_db(url: str, crm: dict[str, pd.DataFrame]) -> str:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for name, df in crm.items():
            df.to_sql(name, conn, index=False)
    engine.dispose()
    return url


@pytest.fixture
def csv_source(tmp_path) -> str:
    return _write_files(tmp_path / "csv", "csv", _raw_crm())


# --- formats ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["parquet", "sqlite", "duckdb"])
def test_formats_give_frames_identical_to_csv(tmp_path, csv_source, fmt):
    crm = _raw_crm()
    if fmt == "parquet":
        source = _write_files(tmp_path / "pq", "parquet", crm)
    else:
        source = _write_db(f"{fmt}:///{tmp_path / f'crm.{fmt}'}", crm)
    expected = load_crm(_config(csv_source), EXTRACT)
    got = load_crm(_config(source), EXTRACT)
    assert set(got.tables) == set(expected.tables) == {"accounts", "leads", "opportunities"}
    for name in expected.tables:
        pd.testing.assert_frame_equal(got[name], expected[name], check_exact=True)
    assert got.excluded == expected.excluded
    assert got.dropped_columns == expected.dropped_columns


def test_typing_ids_text_dates_numbers_labels_bools(csv_source):
    crm = load_crm(_config(csv_source), EXTRACT)
    acc, opp, leads = crm["accounts"], crm["opportunities"], crm["leads"]
    assert acc["account_id"].tolist() == ["1", "2", "3", "4"]
    assert str(acc["account_id"].dtype) == "str" and str(opp["account_id"].dtype) == "str"
    assert opp["account_id"].tolist() == ["1", "1", "2", "3"]
    assert acc["employees"].dtype == "float64" and acc["revenue_musd"].dtype == "float64"
    # Booleans stay two-value categories with their source spelling (never 1.0 / 0.0 floats).
    assert acc["is_public"].tolist() == ["False", "True", "True", "False"]
    assert str(acc["is_public"].dtype) == "str"
    assert str(acc["industry"].dtype) == "str" and pd.isna(acc.loc[2, "industry"])
    assert opp["created_at"].dtype == "datetime64[ns]" and opp["closed_at"].dtype == "datetime64[ns]"
    assert leads.loc[1, "created_at"] == T("2025-02-01 09:30")
    assert opp["amount"].dtype == "float64"
    assert str(opp["won"].dtype) == "Int8" and str(leads["converted"].dtype) == "Int8"
    assert leads["converted"].tolist()[:2] == [1, 0] and pd.isna(leads["converted"].iloc[2])
    assert list(acc.index) == list(range(len(acc)))


def test_columns_contract_first_then_attributes_in_source_order(csv_source):
    crm = load_crm(_config(csv_source), EXTRACT)
    assert list(crm["opportunities"].columns) == [
        "opportunity_id",
        "account_id",
        "created_at",
        "closed_at",
        "amount",
        "won",
        "stage",
        "product",
    ]
    assert list(crm["accounts"].columns) == [
        "account_id",
        "industry",
        "employees",
        "revenue_musd",
        "is_public",
    ]


# --- mapping, labels, fixes, exclusions --------------------------------------------------------


def test_label_rule_derives_won_and_keeps_status_column(csv_source):
    opp = load_crm(_config(csv_source), EXTRACT)["opportunities"]
    assert opp["won"].tolist()[:2] == [1, 0] and pd.isna(opp["won"].iloc[2]) and opp["won"].iloc[3] == 1
    assert opp["stage"].tolist() == ["Won", "Lost", "Open", "Won"]  # left for the leakage guard


def test_label_rule_unknown_status_value_is_an_error_listing_it(tmp_path):
    crm = _raw_crm()
    crm["deals"].loc[2, "stage"] = "On hold"
    source = _write_files(tmp_path, "csv", crm)
    with pytest.raises(DataContractError) as info:
        load_crm(_config(source), EXTRACT)
    err = info.value
    assert (err.table, err.column, err.n_rows) == ("opportunities", "stage", 1)
    assert "unknown stage values ['On hold']" in err.rule
    assert err.examples == [{"opportunity_id": "D3", "stage": "On hold"}]


def test_value_fixes_replace_bad_values(csv_source):
    opp = load_crm(_config(csv_source), EXTRACT)["opportunities"]
    assert "ProX" not in set(opp["product"]) and opp["product"].tolist() == ["Pro", "Pro", "Basic", "Pro"]


def test_exclude_rows_missing_removes_counts_and_logs(csv_source, caplog):
    with caplog.at_level(logging.INFO, logger="icpkit.data.loading"):
        crm = load_crm(_config(csv_source), EXTRACT)
    assert len(crm["opportunities"]) == 4 and "D4" not in set(crm["opportunities"]["opportunity_id"])
    assert [(e.table, e.count) for e in crm.excluded] == [("opportunities", 1)]
    assert "account_id" in crm.excluded[0].reason
    assert any("excluded 1 rows" in r.message and r.levelno == logging.INFO for r in caplog.records)


def test_drop_columns_removed_and_recorded(csv_source):
    crm = load_crm(_config(csv_source), EXTRACT)
    assert "notes" not in crm["accounts"].columns
    assert crm.dropped_columns == {"accounts": ["notes"]}


def test_rename_missing_required_column_is_an_error_hinting_rename(tmp_path):
    source = _write_files(tmp_path, "csv", _raw_crm())
    cfg = _config(source)
    cfg.tables["accounts"] = TableConfig()  # forgot to map id -> account_id
    with pytest.raises(DataContractError, match=r"missing required column\(s\) \['account_id'\]") as info:
        load_crm(cfg, EXTRACT)
    assert info.value.table == "accounts" and "rename" in str(info.value)


def test_rename_onto_existing_column_is_an_error(tmp_path):
    crm = _raw_crm()
    crm["accounts"]["account_id"] = ["x", "y", "z", "w"]
    source = _write_files(tmp_path, "csv", crm)
    with pytest.raises(DataContractError, match="already has a column 'account_id'"):
        load_crm(_config(source), EXTRACT)


# --- typing errors and validation on load -------------------------------------------------------


def test_dates_unparseable_value_is_an_error_not_nat(tmp_path):
    crm = _raw_crm()
    crm["leads"]["created_at"] = ["2025-01-05", "next week", "2025-03-01"]
    source = _write_files(tmp_path, "csv", crm)
    with pytest.raises(DataContractError) as info:
        load_crm(_config(source), EXTRACT)
    err = info.value
    assert (err.table, err.column, err.n_rows) == ("leads", "created_at", 1)
    assert err.rule.startswith("dates must parse")
    assert err.examples == [{"lead_id": "L2", "created_at": "next week"}]


def test_numbers_unparseable_amount_is_an_error(tmp_path):
    crm = _raw_crm()
    crm["deals"]["value"] = ["1000", "0", "", "", "lots"]
    source = _write_files(tmp_path, "csv", crm)
    with pytest.raises(DataContractError, match="numbers must parse") as info:
        load_crm(_config(source), EXTRACT)
    assert info.value.examples == [{"opportunity_id": "D5", "amount": "lots"}]


def test_labels_non_binary_value_is_an_error_on_load(tmp_path):
    crm = _raw_crm()
    crm["leads"]["converted"] = ["1", "yes", ""]
    source = _write_files(tmp_path, "csv", crm)
    with pytest.raises(DataContractError, match="labels must be 0, 1 or empty") as info:
        load_crm(_config(source), EXTRACT)
    assert info.value.examples == [{"lead_id": "L2", "converted": "yes"}]


def test_validation_runs_on_load_unknown_account(tmp_path):
    crm = _raw_crm()
    crm["leads"].loc[0, "account_id"] = 99
    source = _write_files(tmp_path, "csv", crm)
    with pytest.raises(DataContractError, match="every account_id must exist in accounts") as info:
        load_crm(_config(source), EXTRACT)
    assert info.value.examples == [{"lead_id": "L1", "account_id": "99"}]


# --- missing things ------------------------------------------------------------------------------


def test_accounts_missing_table_is_an_error(tmp_path):
    crm = _raw_crm()
    del crm["accounts"]
    source = _write_files(tmp_path, "csv", crm)
    with pytest.raises(ICPKitError, match="accounts table is required"):
        load_crm(_config(source), EXTRACT)


def test_optional_table_missing_is_skipped_with_info_log(csv_source, caplog):
    with caplog.at_level(logging.INFO, logger="icpkit.data.loading"):
        crm = load_crm(_config(csv_source), EXTRACT)
    assert not crm.has("subscriptions") and not crm.has("activities")
    skipped = [r.message for r in caplog.records if "skipping" in r.message and r.levelno == logging.INFO]
    assert any(m.startswith("subscriptions") for m in skipped) and any(
        m.startswith("activities") for m in skipped
    )


def test_source_folder_missing_is_an_error_naming_path(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(ICPKitError, match=str(missing)):
        load_crm(DataConfig(source=str(missing)), EXTRACT)


@pytest.mark.parametrize("backend", ["sqlite", "duckdb"])
def test_database_file_missing_is_an_error_naming_path(tmp_path, backend):
    db = tmp_path / f"missing.{backend}"
    with pytest.raises(ICPKitError, match="database file not found") as info:
        load_crm(DataConfig(source=f"{backend}:///{db}"), EXTRACT)
    assert str(db) in str(info.value) and not db.exists()


def test_table_in_csv_and_parquet_is_an_error_naming_both(tmp_path):
    crm = _raw_crm()
    source = _write_files(tmp_path, "csv", crm)
    crm["accounts"].to_parquet(tmp_path / "accounts.parquet")
    with pytest.raises(ICPKitError) as info:
        load_crm(_config(source), EXTRACT)
    assert "accounts.csv" in str(info.value) and "accounts.parquet" in str(info.value)


def test_configured_source_file_missing_is_an_error(tmp_path):
    source = _write_files(tmp_path, "csv", _raw_crm())
    cfg = _config(source)
    cfg.tables["leads"] = TableConfig(source="lead_export.csv")
    with pytest.raises(ICPKitError, match="lead_export.csv"):
        load_crm(cfg, EXTRACT)


# --- the Maven example ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def maven():
    cfg = load_config(MAVEN_CONFIG)
    return cfg, load_crm(cfg.data, cfg.data.extract_date)


def test_maven_config_maps_the_export(maven):
    cfg, _ = maven
    assert Path(cfg.data.source) == (ROOT / "examples" / "maven_crm").resolve()
    assert str(cfg.data.extract_date) == "2017-12-31"
    opp = cfg.data.tables["opportunities"]
    assert opp.source == "sales_pipeline.csv"
    assert opp.rename == {
        "account": "account_id",
        "engage_date": "created_at",
        "close_date": "closed_at",
        "close_value": "amount",
    }
    assert cfg.data.tables["accounts"].rename == {"account": "account_id"}
    assert "amount" in cfg.leakage.deny_columns and "deal_stage" in cfg.leakage.deny_columns
    assert cfg.training.outcomes == ["win"]
    for col in ("sector", "year_established", "revenue", "employees", "office_location", "subsidiary_of"):
        assert cfg.attributes.dimension_of(col) == "firmographic"


def test_maven_exclusions_are_counted_exactly(maven):
    _, crm = maven
    assert [(e.table, e.count) for e in crm.excluded] == [("opportunities", 1425), ("opportunities", 163)]
    assert "account_id" in crm.excluded[0].reason and "created_at" in crm.excluded[1].reason
    assert crm.summary() == {"accounts": 85, "opportunities": 8800 - 1425 - 163}


def test_maven_labels_from_deal_stage(maven):
    _, crm = maven
    opp = crm["opportunities"]
    assert int((opp["won"] == 1).sum()) == 4238 and int((opp["won"] == 0).sum()) == 2473
    assert int(opp["won"].isna().sum()) == 501  # engaged open deals with an account: scored only
    assert set(opp.loc[opp["won"].isna(), "deal_stage"]) == {"Engaging"}
    assert "deal_stage" in opp.columns  # kept so the leakage guard can refuse it


def test_maven_value_fixes_applied(maven):
    _, crm = maven
    assert "technolgy" not in set(crm["accounts"]["sector"])
    assert int((crm["accounts"]["sector"] == "technology").sum()) == 12
    assert "GTXPro" not in set(crm["opportunities"]["product"])


def test_maven_types(maven):
    _, crm = maven
    opp, acc = crm["opportunities"], crm["accounts"]
    assert opp["created_at"].dtype == "datetime64[ns]" and opp["amount"].dtype == "float64"
    assert acc["employees"].dtype == "float64" and str(acc["sector"].dtype) == "str"
    assert opp["closed_at"].isna().sum() == 501 and (opp.loc[opp["won"] == 0, "amount"] == 0).all()


def test_shuffled_labels_keep_rates_and_break_links():
    import numpy as np

    from icpkit.data.crm import CRMData

    leads = pd.DataFrame(
        {"lead_id": [f"L{i}" for i in range(200)], "converted": [1] * 50 + [0] * 140 + [None] * 10}
    )
    leads["converted"] = leads["converted"].astype("Int8")
    crm = CRMData({"leads": leads}, pd.Timestamp("2025-01-01"))
    shuffled = crm.with_shuffled_labels(seed=1)["leads"]
    assert shuffled["converted"].sum() == 50 and shuffled["converted"].isna().sum() == 10
    assert (shuffled["converted"].isna() == leads["converted"].isna()).all()  # open rows stay open
    assert not shuffled["converted"].equals(leads["converted"])
    assert crm["leads"]["converted"].equals(leads["converted"])  # the original is untouched
    assert np.isfinite(shuffled["converted"].astype(float).fillna(0)).all()
