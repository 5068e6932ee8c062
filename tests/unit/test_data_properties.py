"""Property-based tests of load_table: on any small frame it either maps the table or says why.

Random cells mix text (unicode, whitespace, placeholders, dates in several layouts, number-like
text), numbers (NaN, inf), booleans and empty cells. Whatever comes in, load_table raises only
ICPKitError subclasses, and a frame it returns holds the contract's types.
"""

import math

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from icpkit.config import TableConfig
from icpkit.data.contract import CONTRACT
from icpkit.data.loading import load_table
from icpkit.errors import DataContractError, ICPKitError

SETTINGS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])

TRICKY_TEXT = [
    *("", " ", "\t", "N/A", "nan", "NaN", "inf", "-inf", "1e999", "0x10", "1_000", "１２", "007"),
    *("True", "false", "yes", "2024-01-05", "2024-01-05T10:00:00Z", "03/04/2024", "5 Dec 2024"),
    *("9999-12-31", "10:30", "0", "1", "-1.5", "Köln", "🙂", "a,b", '"quoted"'),
]

cells = st.one_of(
    st.none(),
    st.sampled_from(TRICKY_TEXT),
    st.text(max_size=6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.booleans(),
)


@st.composite
def columns(draw, n: int) -> pd.Series:
    """One column: mixed Python objects, text, or a typed float / bool column."""
    kind = draw(st.sampled_from(["mixed", "text", "float", "bool"]))
    if kind == "float":
        values = draw(st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=n, max_size=n))
        return pd.Series(values, dtype="float64")
    if kind == "bool":
        return pd.Series(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype="bool")
    if kind == "text":
        values = draw(
            st.lists(
                st.one_of(st.none(), st.sampled_from(TRICKY_TEXT), st.text(max_size=6)),
                min_size=n,
                max_size=n,
            )
        )
        return pd.Series(values, dtype="str")
    return pd.Series(draw(st.lists(cells, min_size=n, max_size=n)), dtype="object")


@st.composite
def frames(draw, table: str) -> pd.DataFrame:
    n = draw(st.integers(min_value=0, max_value=6))
    names = list(CONTRACT[table].known_columns)
    names = draw(st.lists(st.sampled_from(names), unique=True, max_size=len(names)))
    extra = draw(st.lists(st.text("abcXYZé_", min_size=1, max_size=4), max_size=3))
    return pd.DataFrame({name: draw(columns(n)) for name in [*names, *extra]})


def _check_types(table: str, raw: pd.DataFrame, out: pd.DataFrame) -> None:
    c = CONTRACT[table]
    assert len(out) == len(raw) and list(out.index) == list(range(len(out)))
    for col in out.columns:
        dtype = out[col].dtype
        if col in c.date_columns:
            assert dtype == "datetime64[ns]", (col, dtype)
        elif col in c.numeric_columns:
            assert dtype == "float64" and np.isfinite(out[col].dropna()).all(), (col, dtype)
        elif col in c.label_columns:
            assert str(dtype) == "Int8" and out[col].dropna().isin([0, 1]).all(), (col, dtype)
        elif col == c.id_column or col == "account_id" or col in c.known_columns:
            assert str(dtype) == "str", (col, dtype)
            assert all(isinstance(v, str) for v in out[col].dropna()), col
        else:  # attributes: numbers (finite), dates or text, never objects
            assert str(dtype) in ("float64", "datetime64[ns]", "str"), (col, dtype)
            if dtype == "float64":
                assert all(math.isfinite(v) for v in out[col].dropna())


def _load_or_refuse(table: str, raw: pd.DataFrame, cfg: TableConfig | None = None) -> None:
    try:
        loaded = load_table(table, raw, cfg, missing_values=["N/A"])
    except ICPKitError:
        return  # a clear, user-fixable refusal is a valid answer; anything else fails the test
    _check_types(table, raw, loaded.frame)
    for repair in loaded.repairs:
        assert repair.count == sum(repair.detail.values()) > 0


@SETTINGS
@given(frames("accounts"))
def test_properties_accounts_only_icpkit_errors_and_typed(raw):
    _load_or_refuse("accounts", raw)


@SETTINGS
@given(frames("opportunities"))
def test_properties_opportunities_only_icpkit_errors_and_typed(raw):
    _load_or_refuse("opportunities", raw)


@SETTINGS
@given(frames("subscriptions"), st.sampled_from([None, "%d/%m/%Y"]))
def test_properties_subscriptions_with_date_format_only_icpkit_errors_and_typed(raw, date_format):
    _load_or_refuse("subscriptions", raw, TableConfig(date_format=date_format))


@SETTINGS
@given(frames("leads"))
def test_properties_leads_with_a_derived_column_only_icpkit_errors_and_typed(raw):
    _load_or_refuse("leads", raw, TableConfig(derive={"row_flag": "1"}))


@SETTINGS
@given(st.lists(st.sampled_from(TRICKY_TEXT), min_size=1, max_size=8))
def test_properties_valid_ids_keep_their_text_or_the_refusal_names_the_attribute(values):
    ids = [f"id-{i}" for i in range(len(values))]
    raw = pd.DataFrame({"account_id": ids, "attr": values}, dtype="str")
    try:
        loaded = load_table("accounts", raw)
    except DataContractError as err:  # e.g. an attribute of day/month dates without a format
        assert (err.table, err.column) == ("accounts", "attr")
        return
    assert loaded.frame["account_id"].tolist() == ids
    _check_types("accounts", raw, loaded.frame)
