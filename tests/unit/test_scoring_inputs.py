"""InputSpec: learnt from a training frame, JSON round trip, and every bad-input rule of issue 9."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from icpkit.errors import ICPKitError
from icpkit.scoring.inputs import REJECTED_REASON, ColumnSpec, InputSpec, ScoringInputError, to_pyfunc_input


@pytest.fixture
def train() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "account_id": ["a1", "a2", "a3", "a4"],
            "employees": [10.0, 200.0, 50.0, 5.0],
            "growth_pct": [-1.5, 2.0, 3.0, 0.0],
            "industry": ["Banking", "Retail", "Banking", "Software"],
            "web_visits": [0.0, 3.0, 1.0, 7.0],
            "compliance": ["yes", "no", "yes", "yes"],
            "is_public": [True, False, True, False],
            "created_at": pd.to_datetime(["2024-01-01", "2024-02-01", "2024-03-01", "2024-04-01"]),
        }
    )


@pytest.fixture
def spec(train) -> InputSpec:
    return InputSpec.from_frame(train, id_column="account_id", count_columns=["web_visits"])


def _row(**values) -> dict:
    base = {
        "account_id": "x",
        "employees": 20,
        "growth_pct": 1.0,
        "industry": "Retail",
        "web_visits": 2,
        "compliance": "no",
        "is_public": False,
        "created_at": "2024-05-01",
    }
    return {**base, **values}


def test_from_frame_infers_kinds_bounds_and_categories(spec):
    kinds = {c.name: c.kind for c in spec.columns}
    assert kinds == {
        "account_id": "id",
        "employees": "numeric",
        "growth_pct": "numeric",
        "industry": "categorical",
        "web_visits": "count",
        "compliance": "boolean",
        "is_public": "boolean",
        "created_at": "date",
    }
    assert spec.column("employees").lower == 0.0  # all training values >= 0
    assert spec.column("growth_pct").lower is None  # a negative growth was seen
    assert spec.column("web_visits").lower_bound == 0.0
    assert spec.column("industry").categories == ("Banking", "Retail", "Software")
    assert spec.column("compliance").spelling == ("no", "yes")
    assert spec.column("is_public").spelling == (False, True)


def test_a_key_column_keeps_no_value_list_so_a_new_account_is_no_unseen_value(train):
    leads = train.rename(columns={"account_id": "lead_id"}).assign(account_id=["a1", "a1", "a2", "a3"])
    spec = InputSpec.from_frame(leads, id_column="lead_id", keys=["account_id"])
    assert spec.column("account_id").kind == "id" and spec.column("account_id").categories is None
    assert "a1" not in spec.to_json()  # the training accounts' ids are not stored with a model
    batch = spec.check(pd.DataFrame([_row(lead_id="l9", account_id="brand-new")]), max_unseen_share=0.0)
    assert batch.frame["account_id"].tolist() == ["brand-new"] and not batch.rows_with_unseen
    empty = spec.check(pd.DataFrame([_row(lead_id="l9", account_id=None), _row(lead_id="l8", account_id="a1")]))
    assert empty.rejected[REJECTED_REASON].tolist() == ["account_id is empty"]


def test_input_spec_json_round_trip_is_equal(spec, tmp_path):
    assert InputSpec.from_json(spec.to_json()) == spec
    spec.save(tmp_path / "spec.json")
    assert InputSpec.load(tmp_path / "spec.json") == spec


def test_from_frame_declared_bounds_and_forced_kinds(train):
    spec = InputSpec.from_frame(
        train.assign(code=[1, 2, 1, 3]), categorical=["code"], bounds={"growth_pct": (-50.0, 100.0)}
    )
    assert spec.column("code").categories == ("1", "2", "3")
    assert (spec.column("growth_pct").lower, spec.column("growth_pct").upper) == (-50.0, 100.0)
    batch = spec.check(pd.DataFrame([_row(code=2.0, growth_pct=120.0), _row(code="3")]))
    assert batch.rejected[REJECTED_REASON].tolist() == ["growth_pct = 120 is above 100"]
    assert batch.frame["code"].tolist() == ["3"]


def test_check_missing_columns_one_error_naming_all(spec):
    frame = pd.DataFrame([_row()]).drop(columns=["employees", "industry"])
    with pytest.raises(ScoringInputError, match="employees, industry") as err:
        spec.check(frame, table="accounts")
    assert isinstance(err.value, ICPKitError)
    assert "table 'accounts'" in str(err.value)


def test_check_extra_columns_are_ignored(spec):
    batch = spec.check(pd.DataFrame([_row(notes="free text", other=3)]))
    assert list(batch.frame.columns) == spec.names


@pytest.mark.parametrize(
    "column",
    [
        pd.Series([20, 30], dtype="int64"),
        pd.Series([20.0, 30.0]),
        pd.Series([20, 30], dtype="Int64"),
        pd.Series([20.0, 30.0], dtype="Float64"),
        pd.Series([20, "30"], dtype=object),
        pd.Series(["20", "30.0"], dtype="str"),
    ],
    ids=["int64", "float64", "Int64", "Float64", "object", "text"],
)
def test_check_numeric_accepts_any_number_type(spec, column):
    frame = pd.DataFrame([_row(), _row()])
    frame["employees"] = column.to_numpy() if column.dtype == object else column
    batch = spec.check(frame)
    assert batch.frame["employees"].tolist() == [20.0, 30.0]
    assert pd.api.types.is_float_dtype(batch.frame["employees"])


def test_check_bool_column_accepted_as_numeric(spec):
    frame = pd.DataFrame([_row(), _row()])
    frame["growth_pct"] = [True, False]
    assert spec.check(frame).frame["growth_pct"].tolist() == [1.0, 0.0]


def test_check_nan_and_none_are_missing_not_rejected(spec):
    frame = pd.DataFrame([_row(employees=np.nan, industry=None, created_at=""), _row(growth_pct=pd.NA)])
    batch = spec.check(frame)
    assert len(batch.rejected) == 0
    assert np.isnan(batch.frame["employees"].iloc[0]) and np.isnan(batch.frame["growth_pct"].iloc[1])
    assert pd.isna(batch.frame["industry"].iloc[0]) and pd.isna(batch.frame["created_at"].iloc[0])


def test_check_rejects_rows_with_reasons_and_goes_on(spec):
    frame = pd.DataFrame(
        [
            _row(account_id="ok1"),
            _row(account_id="neg", employees=-5),
            _row(account_id="inf", growth_pct=np.inf),
            _row(account_id="ninf", growth_pct=-np.inf),
            _row(account_id="cnt", web_visits=-2),
            _row(account_id="txt", employees="many"),
            _row(account_id="dat", created_at="not a date"),
            _row(account_id="two", employees=-1, web_visits=-1),
            _row(account_id="ok2"),
        ]
    )
    batch = spec.check(frame)
    assert batch.frame["account_id"].tolist() == ["ok1", "ok2"]
    reasons = dict(zip(batch.rejected["account_id"], batch.rejected[REJECTED_REASON], strict=True))
    assert reasons == {
        "neg": "employees = -5 is below 0",
        "inf": "growth_pct = inf is not finite",
        "ninf": "growth_pct = -inf is not finite",
        "cnt": "web_visits = -2 is below 0",
        "txt": "employees = 'many' is not a number",
        "dat": "created_at = 'not a date' is not a date",
        "two": "employees = -1 is below 0; web_visits = -1 is below 0",
    }
    assert batch.rejected.index.tolist() == [1, 2, 3, 4, 5, 6, 7]


def test_check_empty_id_rejects_the_row(spec):
    batch = spec.check(pd.DataFrame([_row(account_id=None), _row(account_id=" ")]))
    assert batch.rejected[REJECTED_REASON].tolist() == ["account_id is empty"] * 2


def test_check_unseen_category_scored_as_missing_and_counted(spec):
    frame = pd.DataFrame([_row(industry="Mining"), _row(industry="Mining"), _row(industry="Oil"), _row()])
    batch = spec.check(frame)
    assert batch.frame["industry"].isna().tolist() == [True, True, True, False]
    assert batch.unseen == {"industry": 3}
    assert batch.unseen_examples == {"industry": ["Mining", "Oil"]}
    assert batch.rows_with_unseen == 3
    assert batch.unseen_values["industry"].tolist()[:3] == ["Mining", "Mining", "Oil"]


def test_check_unseen_counted_per_column(spec):
    frame = pd.DataFrame([_row(industry="Mining", compliance="maybe"), _row(compliance="perhaps"), _row()])
    batch = spec.check(frame)
    assert batch.unseen == {"industry": 1, "compliance": 2}
    assert batch.rows_with_unseen == 2


def test_check_too_many_unseen_fails_with_counts(spec):
    frame = pd.DataFrame([_row(industry="Mining"), _row(industry="Oil"), _row(), _row()])
    assert spec.check(frame, max_unseen_share=0.5).rows_with_unseen == 2  # 50 % is allowed
    with pytest.raises(ScoringInputError, match=r"2 of 4 rows \(50%\).*industry: 2 \(e.g. 'Mining', 'Oil'\)"):
        spec.check(frame, max_unseen_share=0.25, table="accounts")


@pytest.mark.parametrize(
    ("given", "expected"),
    [(True, "yes"), (False, "no"), (1, "yes"), (0, "no"), ("YES", "yes"), ("no", "no"), ("true", "yes")],
)
def test_check_boolean_maps_onto_training_text_spelling(spec, given, expected):
    assert spec.check(pd.DataFrame([_row(compliance=given)])).frame["compliance"].tolist() == [expected]


@pytest.mark.parametrize(
    ("given", "expected"), [("yes", True), ("no", False), (1, True), (0.0, False), ("True", True)]
)
def test_check_boolean_maps_onto_training_bool_spelling(spec, given, expected):
    out = spec.check(pd.DataFrame([_row(is_public=given)])).frame["is_public"]
    assert out.tolist() == [expected]


def test_check_empty_input_gives_empty_typed_batch(spec):
    for empty in (pd.DataFrame(), pd.DataFrame(columns=["account_id"])):
        batch = spec.check(empty)
        assert len(batch.frame) == 0 and list(batch.frame.columns) == spec.names
        assert pd.api.types.is_float_dtype(batch.frame["employees"])
        assert len(batch.rejected) == 0 and REJECTED_REASON in batch.rejected


def test_check_keeps_index_and_row_order(spec):
    frame = pd.DataFrame([_row(account_id=i) for i in ("c", "a", "b", "d")], index=[30, 10, 20, 40])
    frame.loc[20, "employees"] = -1
    batch = spec.check(frame)
    assert batch.frame.index.tolist() == [30, 10, 40]
    assert batch.frame["account_id"].tolist() == ["c", "a", "d"]
    assert batch.rejected.index.tolist() == [20]


def test_check_ids_numeric_become_text_without_dot_zero(spec):
    frame = pd.DataFrame([_row(account_id=17.0), _row(account_id=18)])
    assert spec.check(frame).frame["account_id"].tolist() == ["17", "18"]


def test_check_optional_column_may_be_absent(train):
    spec = InputSpec.from_frame(train, optional=["growth_pct"])
    batch = spec.check(pd.DataFrame([_row()]).drop(columns=["growth_pct"]))
    assert np.isnan(batch.frame["growth_pct"].iloc[0])


def test_from_kinds_open_categories_accept_anything():
    spec = InputSpec.from_kinds({"industry": "categorical", "visits": "count"})
    batch = spec.check(pd.DataFrame({"industry": ["Anything"], "visits": [-1]}))
    assert batch.unseen == {} and batch.rejected[REJECTED_REASON].tolist() == ["visits = -1 is below 0"]


def test_column_spec_rejects_unknown_kind():
    with pytest.raises(ValueError, match="unknown kind"):
        ColumnSpec("x", "text")  # type: ignore[arg-type]


def test_to_pyfunc_input_numbers_float_text_object(spec):
    typed = spec.check(pd.DataFrame([_row(), _row(industry=None)])).frame
    out = to_pyfunc_input(typed)
    assert out["employees"].dtype == "float64" and out["is_public"].dtype == "float64"
    assert out["industry"].tolist() == ["Retail", None]
    assert out["created_at"].tolist() == ["2024-05-01", "2024-05-01"]
