"""Activities read in chunks: the same frame, repairs, exclusions and errors as a one-shot load."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import icpkit.data.loading as loading
from icpkit.config import DataConfig, TableConfig
from icpkit.data.loading import load_crm, load_table
from icpkit.data.validation import validate_table
from icpkit.errors import DataContractError
from icpkit.features import RECENCY_FEATURE, engagement_features

T = pd.Timestamp
EXTRACT = T("2025-12-31")

ACTIVITIES = """account_id,occurred_at,activity_type
A1,2025-01-01,email
A2,2025-01-02,n/a
A1,2025-01-03 10:30,call
A3,,email
A2,2025-01-05,mail
A1,2025-01-06,n/a
A3,2025-01-07,call
"""


def _folder(tmp_path: Path, activities: str = ACTIVITIES) -> str:
    (tmp_path / "accounts.csv").write_text("account_id,industry\nA1,saas\nA2,retail\nA3,saas\n")
    (tmp_path / "activities.csv").write_text(activities)
    return str(tmp_path)


def _config(source: str, **activities) -> DataConfig:  # noqa: ANN003
    table = TableConfig(
        missing_values=["n/a"],
        values={"activity_type": {"mail": "email"}},
        exclude_rows_missing=["occurred_at", "activity_type"],
        **activities,
    )
    return DataConfig(source=source, tables={"activities": table})


def _load(source: str, rows: int, monkeypatch, **activities):  # noqa: ANN003, ANN202
    monkeypatch.setattr(loading, "CHUNK_ROWS", rows)
    return load_crm(_config(source, **activities), EXTRACT)


def _error(source: str, rows: int, monkeypatch, **activities) -> DataContractError:  # noqa: ANN003
    with pytest.raises(DataContractError) as err:
        _load(source, rows, monkeypatch, **activities)
    return err.value


def test_chunked_load_gives_the_one_shot_frame_repairs_and_exclusions(tmp_path, monkeypatch):
    source = _folder(tmp_path)
    one = _load(source, 1_000_000, monkeypatch)
    chunked = _load(source, 2, monkeypatch)
    acts = chunked["activities"]
    pd.testing.assert_frame_equal(acts, one["activities"])
    assert [str(t) for t in acts.dtypes] == ["category", "datetime64[ns]", "category"]
    assert list(acts["account_id"].cat.categories) == ["A1", "A2", "A3"]
    assert acts["activity_type"].tolist() == ["email", "call", "email", "call"]
    assert acts["occurred_at"].tolist()[1] == T("2025-01-03 10:30")
    assert chunked.repairs == one.repairs
    assert [(r.column, r.kind, r.count, r.detail) for r in chunked.repairs] == [
        ("activity_type", "missing_value", 2, {"n/a": 2}),
        ("activity_type", "value_fix", 1, {"mail -> email": 1}),
    ]
    assert [(e.reason, e.count) for e in chunked.excluded] == [(e.reason, e.count) for e in one.excluded]
    assert [e.count for e in chunked.excluded] == [1, 2]
    assert chunked.fingerprint() == one.fingerprint()


def test_chunked_load_matches_a_one_shot_load_table_of_the_whole_file(tmp_path, monkeypatch):
    source = _folder(tmp_path)
    raw = pd.read_csv(tmp_path / "activities.csv", dtype="str", keep_default_na=False, na_values=[""])
    cfg = _config(source).tables["activities"]
    pd.testing.assert_frame_equal(_load(source, 3, monkeypatch)["activities"], load_table("activities", raw, cfg).frame)


def test_unknown_account_in_the_second_chunk_is_reported_with_its_rows(tmp_path, monkeypatch):
    text = ACTIVITIES + "ZZ,2025-02-01,call\nA1,2025-02-02,call\nZZ,2025-02-03,email\n"
    source = _folder(tmp_path, text)
    err = _error(source, 4, monkeypatch)
    assert (err.table, err.column, err.rule, err.n_rows) == (
        "activities",
        "account_id",
        "every account_id must exist in accounts",
        2,
    )
    assert err.examples == [
        {"account_id": "ZZ", "occurred_at": "2025-02-01"},
        {"account_id": "ZZ", "occurred_at": "2025-02-03"},
    ]
    assert str(err) == str(_error(source, 1_000_000, monkeypatch))


def test_bad_date_in_a_later_chunk_is_the_one_shot_error_counted_over_all_rows(tmp_path, monkeypatch):
    text = ACTIVITIES.replace("2025-01-07", "not a date") + "A1,someday,call\n"
    source = _folder(tmp_path, text)
    err = _error(source, 2, monkeypatch)
    assert (err.table, err.column, err.n_rows) == ("activities", "occurred_at", 2)
    assert [r["occurred_at"] for r in err.examples] == ["not a date", "someday"]
    assert str(err) == str(_error(source, 1_000_000, monkeypatch))


def test_attribute_columns_are_typed_from_the_whole_column(tmp_path, monkeypatch):
    # "minutes" is a number in the first chunk only: typed per chunk it would differ.
    lines = ["account_id,occurred_at,activity_type,minutes"]
    lines += [f"A1,2025-01-0{i},call,{i}" for i in range(1, 5)] + ["A2,2025-01-05,call,long"] * 4
    source = _folder(tmp_path, "\n".join(lines) + "\n")
    one, chunked = _load(source, 1_000_000, monkeypatch), _load(source, 4, monkeypatch)
    pd.testing.assert_frame_equal(chunked["activities"], one["activities"])
    assert chunked["activities"]["minutes"].tolist() == ["1", "2", "3", "4"] + ["long"] * 4


def test_validation_of_category_accounts_finds_unknown_ids():
    acts = pd.DataFrame(
        {
            "account_id": pd.Categorical(["A1", "B9", None, "A1"], categories=["A1", "B9", "C0"]),
            "occurred_at": [T("2025-01-01")] * 4,
            "activity_type": pd.Categorical(["call"] * 4),
        }
    )
    with pytest.raises(DataContractError) as err:
        validate_table("activities", acts, EXTRACT, pd.Series(["A1", "A2"]))
    # the empty account is its own rule (must not be empty), reported first
    assert err.value.rule == "must not be empty"
    with pytest.raises(DataContractError) as err:
        validate_table("activities", acts.dropna(), EXTRACT, pd.Series(["A1", "A2"]))
    assert (err.value.column, err.value.n_rows, err.value.examples[0]["account_id"]) == ("account_id", 1, "B9")


def test_engagement_features_same_for_category_and_text_activities():
    acts = pd.DataFrame(
        {
            "account_id": ["a2", "a1", "a1", "a2", "a1"],
            "occurred_at": [T("2024-01-10"), T("2024-01-01"), T("2024-02-20"), T("2024-03-01"), T("2024-02-25")],
            "activity_type": ["web", "call", "web", "call", "call"],
        }
    )
    cats = acts.assign(
        account_id=pd.Categorical(acts["account_id"], categories=["a0", "a1", "a2"]),
        activity_type=pd.Categorical(acts["activity_type"], categories=["call", "unused", "web"]),
    )
    ids, as_of = pd.Series(["a1", "zz", "a2", "a1"]), pd.Series([T("2024-03-01")] * 3 + [T("2024-02-21")])
    text = engagement_features(acts, ids, as_of, [30, 90])
    pd.testing.assert_frame_equal(engagement_features(cats, ids, as_of, [30, 90]), text)
    assert "activity_unused_30d" not in text.columns
    assert text["activity_all_90d"].tolist() == [3.0, 0.0, 1.0, 2.0]
    assert text["activity_call_30d"].tolist() == [1.0, 0.0, 0.0, 0.0]
    np.testing.assert_array_equal(text[RECENCY_FEATURE], [5.0, np.nan, 51.0, 1.0])
    trained = engagement_features(cats, ids, as_of, [30], activity_types=["call", "email"])
    assert trained["activity_email_30d"].tolist() == [0.0] * 4


def test_engagement_features_same_for_sorted_and_shuffled_activities():
    rng = np.random.default_rng(3)
    n = 200
    acts = pd.DataFrame(
        {
            "account_id": pd.Categorical(rng.choice(["a1", "a2", "a3"], n)),
            "occurred_at": T("2024-01-01") + pd.to_timedelta(rng.integers(0, 120, n), unit="D"),
            "activity_type": pd.Categorical(rng.choice(["call", "web"], n)),
        }
    )
    ordered = acts.sort_values(["account_id", "occurred_at"], ignore_index=True)
    ids = pd.Series(["a1", "a2", "a3", "a1"])
    as_of = pd.Series([T("2024-03-01"), T("2024-04-15"), T("2024-02-01"), T("2024-01-05")])
    shuffled = engagement_features(acts, ids, as_of, [7, 30])
    pd.testing.assert_frame_equal(engagement_features(ordered, ids, as_of, [7, 30]), shuffled)
    first = acts[(acts["account_id"] == "a1") & (acts["occurred_at"] < T("2024-03-01"))]
    assert shuffled.loc[0, "activity_all_30d"] == (first["occurred_at"] >= T("2024-01-31")).sum()


def test_mlflow_dataset_schema_records_category_columns_as_their_values_type():
    from icpkit.registry.tracking import _dataset_entity

    acts = pd.DataFrame(
        {"account_id": pd.Series(["A1"], dtype="str").astype("category"), "occurred_at": [T("2025-01-01")]}
    )
    schema = json.loads(_dataset_entity("activities", acts, "d", "/tmp/crm").schema)["mlflow_colspec"]
    assert [c["type"] for c in schema] == ["str", str(acts["occurred_at"].dtype)]


def test_chunks_joined_onto_one_sorted_set_of_categories():
    parts = [
        pd.DataFrame({"account_id": pd.Series(v, dtype="str").astype("category"), "n": range(len(v))})
        for v in (["b", "a", None], [None, None], ["c", "a"])
    ]
    whole = pd.concat([p["account_id"].astype("str") for p in parts], ignore_index=True).astype("category")
    joined = loading._concat_compact("activities", parts)
    pd.testing.assert_series_equal(joined["account_id"], whole, check_names=False)
    assert list(joined["account_id"].cat.categories) == ["a", "b", "c"]
    assert joined["n"].tolist() == [0, 1, 2, 0, 1, 0, 1]
