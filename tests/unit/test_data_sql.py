"""Tables defined by SQL: DuckDB queries over the export's files, derived columns, several sources.

The RavenStack- and Telco-shaped exports below are small hand-made copies of the real ones'
layout (see ../shared/data/*/SOURCE.md), mapped onto the contract by config alone.
"""

import textwrap

import pandas as pd
import pytest
import sqlalchemy as sa

from icpkit.config import DataConfig, SourceConfig, TableConfig, config_from_dict
from icpkit.data.loading import load_crm
from icpkit.errors import ConfigError, DataContractError, ICPKitError

T = pd.Timestamp


def _files(folder, **files: str) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    for name, body in files.items():
        (folder / name.replace("__", ".")).write_text(textwrap.dedent(body).lstrip())
    return str(folder)


def _cfg(source: str, extract: str, tables: dict) -> DataConfig:
    return config_from_dict({"data": {"source": source, "extract_date": extract, "tables": tables}}).data


def _load(cfg: DataConfig):
    return load_crm(cfg, cfg.extract_date)


# --- queries --------------------------------------------------------------------------------------


def test_query_reads_files_relative_to_the_source_folder_and_is_mapped_like_a_file(tmp_path, monkeypatch):
    source = _files(
        tmp_path / "export",
        customers__csv="""
            cust,Segment,Status
            C1,smb,Won
            C2,ent,Lost
        """,
    )
    (tmp_path / "export" / "accounts.csv").write_text("account_id\nC1\nC2\n")
    monkeypatch.chdir(tmp_path)  # relative paths must not depend on the working directory
    tables = {
        "leads": {
            "query": "SELECT cust AS lead_id, cust AS account_id, DATE '2025-01-01' AS created_at, * "
            "EXCLUDE (cust) FROM 'customers.csv'",
            "label": {"column": "status", "positive": ["Won"], "negative": ["Lost"]},
        }
    }
    leads = _load(_cfg(source, "2025-06-30", tables))["leads"]
    assert leads["lead_id"].tolist() == ["C1", "C2"] and leads["converted"].tolist() == [1, 0]
    assert leads["created_at"].dtype == "datetime64[ns]" and list(leads.columns)[-2:] == ["Segment", "Status"]


def test_query_and_source_both_set_is_a_config_error():
    with pytest.raises(ConfigError, match="either source .* or query, not both"):
        config_from_dict(
            {"data": {"source": "/x", "tables": {"leads": {"source": "a.csv", "query": "SELECT 1"}}}}
        )


@pytest.mark.parametrize("query", ["COPY (SELECT 1) TO 'out.csv'", "SELECT 1; SELECT 2"])
def test_query_must_be_a_single_select(tmp_path, query):
    source = _files(tmp_path, accounts__csv="account_id\nA1\n")
    with pytest.raises(ICPKitError, match="single SELECT"):
        _load(_cfg(source, "2025-06-30", {"leads": {"query": query}}))
    assert not (tmp_path / "out.csv").exists()


def test_query_error_names_the_table_and_key(tmp_path):
    source = _files(tmp_path, accounts__csv="account_id\nA1\n")
    with pytest.raises(ICPKitError, match=r"table 'leads': data.tables.leads.query failed: .*nope\.csv"):
        _load(_cfg(source, "2025-06-30", {"leads": {"query": "SELECT * FROM 'nope.csv'"}}))


def test_query_on_a_sql_source_runs_in_the_database(tmp_path):
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        pd.DataFrame({"id": ["A1", "A2"], "size": [10, 20]}).to_sql("companies", conn, index=False)
    engine.dispose()
    cfg = DataConfig(
        source=url, tables={"accounts": TableConfig(query="SELECT id AS account_id, size FROM companies")}
    )
    acc = load_crm(cfg, T("2025-06-30"))["accounts"]
    assert acc["account_id"].tolist() == ["A1", "A2"] and acc["size"].tolist() == [10.0, 20.0]


# --- derived columns ------------------------------------------------------------------------------


def test_derive_computes_on_csv_text_as_typed_values(tmp_path):
    source = _files(
        tmp_path,
        accounts__csv="account_id\nA1\n",
        subscriptions__csv="""
            subscription_id,account_id,start_date,arr_amount,upgrade_flag,months
            S1,A1,2024-01-15,1200,True,12
            S2,A1,2024-03-01,600,False,1
        """,
    )
    derive = {
        "end_date": "start_date + INTERVAL (months) MONTH",
        "expansion_arr": "CASE WHEN upgrade_flag THEN arr_amount * 0.1 ELSE 0 END",
    }
    tables = {"subscriptions": {"derive": derive, "rename": {"arr_amount": "arr"}}}
    subs = _load(_cfg(source, "2025-06-30", tables))["subscriptions"]
    assert subs["end_date"].tolist() == [T("2025-01-15"), T("2024-04-01")]
    assert subs["expansion_arr"].tolist() == [120.0, 0.0] and subs["arr"].tolist() == [1200.0, 600.0]
    assert subs["upgrade_flag"].tolist() == ["True", "False"]  # the source column itself stays as spelt


def test_derive_error_names_the_key_and_expression(tmp_path):
    source = _files(tmp_path, accounts__csv="account_id,size\nA1,big\n")
    derive = {"one": "1", "double": "size * 2"}
    with pytest.raises(ICPKitError) as info:
        _load(_cfg(source, "2025-06-30", {"accounts": {"derive": derive}}))
    msg = str(info.value)
    assert msg.startswith("table 'accounts': data.tables.accounts.derive.double ('size * 2') failed: Binder")
    assert "TRY_CAST" in msg and "Candidate functions" not in msg


def test_derive_aggregate_is_refused(tmp_path):
    source = _files(tmp_path, accounts__csv="account_id,size\nA1,1\nA2,2\n")
    with pytest.raises(ICPKitError, match="one value per row"):
        _load(_cfg(source, "2025-06-30", {"accounts": {"derive": {"total": "sum(size)"}}}))


# --- several sources for activities ---------------------------------------------------------------


def test_sources_concatenate_activities_each_with_its_own_rename(tmp_path):
    source = _files(
        tmp_path,
        accounts__csv="account_id\nA1\nA2\n",
        tickets__csv="""
            ticket_id,account_id,submitted_at
            T1,A1,2024-05-01
        """,
        visits__csv="""
            company,visited
            A2,2024-06-01
            A1,2024-06-02
        """,
    )
    sources = [
        {
            "source": "tickets.csv",
            "rename": {"submitted_at": "occurred_at"},
            "derive": {"activity_type": "'ticket'"},
        },
        {
            "query": "SELECT company AS account_id, visited AS occurred_at, 'visit' AS activity_type "
            "FROM 'visits.csv'"
        },
    ]
    tables = {"activities": {"sources": sources, "drop_columns": ["ticket_id"]}}
    act = _load(_cfg(source, "2025-06-30", tables))["activities"]
    assert act["activity_type"].tolist() == ["ticket", "visit", "visit"]
    assert act["account_id"].tolist() == ["A1", "A2", "A1"] and act["occurred_at"].dtype == "datetime64[ns]"
    assert list(act.columns) == ["account_id", "occurred_at", "activity_type"]


@pytest.mark.parametrize(
    "table_cfg, message",
    [
        ({"sources": [{"source": "a.csv"}], "source": "b.csv"}, "either sources"),
        ({"sources": []}, "sources is empty"),
        ({"sources": [{"rename": {"a": "b"}}]}, r"sources\[0\]: set its source"),
    ],
)
def test_sources_config_shape_is_checked(table_cfg, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict({"data": {"source": "/x", "tables": {"activities": table_cfg}}})


def test_sources_only_for_activities():
    with pytest.raises(ConfigError, match="only activities can have several sources"):
        config_from_dict({"data": {"source": "/x", "tables": {"leads": {"sources": [{"source": "a.csv"}]}}}})
    assert SourceConfig(query="SELECT 1").query == "SELECT 1"


# --- RavenStack-shaped: five tables, no end date on active terms, usage keyed by subscription -----

RAVENSTACK = {
    "ravenstack_accounts__csv": """
        account_id,account_name,industry,country,signup_date,referral_source,plan_tier,seats,is_trial,churn_flag
        A-1,Company_0,EdTech,US,2023-01-10,partner,Basic,9,False,False
        A-2,Company_1,FinTech,IN,2023-02-11,other,Pro,18,True,True
        A-3,Company_2,DevTools,US,2023-03-12,organic,Basic,4,False,False
    """,
    "ravenstack_subscriptions__csv": """
        subscription_id,account_id,start_date,end_date,plan_tier,seats,mrr_amount,arr_amount,is_trial,upgrade_flag,downgrade_flag,churn_flag,billing_frequency,auto_renew_flag
        S-1,A-1,2023-02-01,,Basic,9,100,1200,False,True,False,False,monthly,True
        S-2,A-2,2023-03-01,2023-09-15,Pro,18,500,6000,True,False,False,True,annual,False
        S-3,A-3,2024-06-01,,Basic,4,50,600,False,False,False,False,annual,True
        S-4,A-1,2024-12-01,,Basic,9,100,1200,False,False,False,False,monthly,True
    """,
    "ravenstack_feature_usage__csv": """
        usage_id,subscription_id,usage_date,feature_name,usage_count,usage_duration_secs,error_count,is_beta_feature
        U-1,S-1,2023-07-27,feature_20,9,5004,0,False
        U-2,S-3,2024-08-07,feature_5,3,369,1,True
    """,
    "ravenstack_support_tickets__csv": """
        ticket_id,account_id,submitted_at,closed_at,resolution_time_hours,priority,first_response_time_minutes,satisfaction_score,escalation_flag
        T-1,A-2,2023-07-27,2023-07-28 03:00:00,27.0,high,74,,False
    """,
}

RAVENSTACK_TABLES = {
    "accounts": {"source": "ravenstack_accounts.csv", "drop_columns": ["account_name", "churn_flag"]},
    "subscriptions": {
        # Active terms have no end date: one billing period after the start. A term not yet due
        # at the extract stays unlabelled; churned terms are not renewed.
        "query": """
            WITH s AS (
              SELECT *, start_date + INTERVAL (CASE billing_frequency WHEN 'annual' THEN 12 ELSE 1 END)
                        MONTH AS term_end
              FROM 'ravenstack_subscriptions.csv')
            SELECT subscription_id, account_id, start_date, COALESCE(end_date, term_end) AS end_date,
                   arr_amount AS arr, upgrade_flag,
                   CASE WHEN churn_flag THEN 0 WHEN term_end <= DATE '2024-12-31' THEN 1 END AS renewed,
                   plan_tier, billing_frequency, auto_renew_flag
            FROM s
        """,
        "derive": {"expansion_arr": "CASE WHEN upgrade_flag THEN arr * 0.1 ELSE 0 END"},
        "drop_columns": ["upgrade_flag"],
    },
    "activities": {
        "sources": [
            {
                "source": "ravenstack_support_tickets.csv",
                "rename": {"submitted_at": "occurred_at"},
                "derive": {"activity_type": "'support_ticket'"},
            },
            {
                "query": "SELECT s.account_id, u.usage_date AS occurred_at, 'feature_use' AS activity_type "
                "FROM 'ravenstack_feature_usage.csv' u JOIN 'ravenstack_subscriptions.csv' s "
                "USING (subscription_id) ORDER BY u.usage_id"
            },
        ],
        "drop_columns": [
            "ticket_id",
            "closed_at",
            "resolution_time_hours",
            "priority",
            "first_response_time_minutes",
            "satisfaction_score",
            "escalation_flag",
        ],
    },
}


def test_ravenstack_shaped_export_maps_by_config_alone(tmp_path):
    source = _files(tmp_path, **RAVENSTACK)
    crm = _load(_cfg(source, "2024-12-31", RAVENSTACK_TABLES))
    acc, subs, act = crm["accounts"], crm["subscriptions"], crm["activities"]
    assert list(acc.columns) == [
        *(
            "account_id",
            "industry",
            "country",
            "signup_date",
            "referral_source",
            "plan_tier",
            "seats",
            "is_trial",
        )
    ]
    assert acc["signup_date"].dtype == "datetime64[ns]" and acc["is_trial"].tolist() == [
        "False",
        "True",
        "False",
    ]
    assert acc["seats"].tolist() == [9.0, 18.0, 4.0]
    assert subs["end_date"].tolist() == [T("2023-03-01"), T("2023-09-15"), T("2025-06-01"), T("2025-01-01")]
    assert subs["renewed"].tolist()[:2] == [1, 0] and subs["renewed"].iloc[2:].isna().all()
    assert subs["expansion_arr"].tolist() == [120.0, 0.0, 0.0, 0.0] and "upgrade_flag" not in subs.columns
    assert act[["account_id", "activity_type"]].values.tolist() == [
        ["A-2", "support_ticket"],
        ["A-1", "feature_use"],
        ["A-3", "feature_use"],
    ]


# --- Telco-shaped: one table, tenure in months, no dates ------------------------------------------

TELCO = {
    "telco__csv": """
        customerID,gender,SeniorCitizen,Partner,tenure,Contract,InternetService,MonthlyCharges,TotalCharges,Churn
        7590-VHVEG,Female,0,Yes,1,Month-to-month,DSL,29.85,29.85,No
        5575-GNVDE,Male,0,No,34,One year,DSL,56.95,1889.5,No
        3668-QPYBK,Male,1,No,2,Month-to-month,Fiber optic,53.85,108.15,Yes
        4472-LVYGI,Female,0,Yes,0,Two year,DSL,52.55, ,No
    """
}

TELCO_TABLES = {
    "accounts": {"query": "SELECT customerID AS account_id, gender, SeniorCitizen, Partner FROM 'telco.csv'"},
    "subscriptions": {
        # One current term per customer: started `tenure` months before the extract, due at it.
        "query": """
            SELECT customerID AS subscription_id, customerID AS account_id,
                   DATE '2018-01-31' - INTERVAL (tenure) MONTH AS start_date,
                   DATE '2018-01-31' AS end_date, MonthlyCharges * 12 AS arr,
                   CASE Churn WHEN 'Yes' THEN 0 WHEN 'No' THEN 1 END AS renewed,
                   Contract, InternetService, TotalCharges
            FROM 'telco.csv'
        """
    },
}


def test_telco_shaped_single_table_maps_to_accounts_and_subscriptions_by_two_queries(tmp_path):
    source = _files(tmp_path, **TELCO)
    crm = _load(_cfg(source, "2018-01-31", TELCO_TABLES))
    acc, subs = crm["accounts"], crm["subscriptions"]
    assert acc["account_id"].tolist() == ["7590-VHVEG", "5575-GNVDE", "3668-QPYBK", "4472-LVYGI"]
    assert acc["SeniorCitizen"].tolist() == [0.0, 0.0, 1.0, 0.0] and acc["Partner"].tolist()[:2] == [
        "True",
        "False",
    ]
    assert subs["start_date"].tolist() == [T("2017-12-31"), T("2015-03-31"), T("2017-11-30"), T("2018-01-31")]
    assert (subs["end_date"] == T("2018-01-31")).all() and subs["renewed"].tolist() == [1, 1, 0, 1]
    assert subs["arr"].round(2).tolist() == [358.2, 683.4, 646.2, 630.6]
    # The blank TotalCharges (" ") is an empty cell of a numeric attribute, not a category.
    assert subs["TotalCharges"].dtype == "float64" and pd.isna(subs["TotalCharges"].iloc[3])


def test_query_result_with_contract_error_names_table_and_rows(tmp_path):
    source = _files(tmp_path, **TELCO)
    tables = {**TELCO_TABLES, "accounts": {"query": "SELECT gender AS account_id FROM 'telco.csv'"}}
    with pytest.raises(DataContractError, match="ids must be unique") as info:
        _load(_cfg(source, "2018-01-31", tables))
    assert info.value.table == "accounts" and info.value.n_rows == 4
