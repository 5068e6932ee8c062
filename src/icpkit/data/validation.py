"""Check loaded CRM tables against the data contract and name the first violation clearly.

Row-level rules are expressed as a pandera schema per table; every failure is then turned into a
:class:`~icpkit.errors.DataContractError` naming the table, the column, the rule, how many rows
break it and up to five example rows, so the fix can be made in the CRM export.
"""

from __future__ import annotations

import difflib
import logging
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa

from icpkit.data.contract import CONTRACT, TABLE_ORDER, TableContract
from icpkit.data.values import RULE_DATE_PARSE, RULE_NUMBER_PARSE, parse_dates
from icpkit.errors import DataContractError

__all__ = [
    "RULE_DATE_PARSE",
    "RULE_NUMBER_PARSE",
    "check_required_columns",
    "example_rows",
    "parse_dates",
    "validate_crm",
    "validate_table",
]

log = logging.getLogger(__name__)

#: How many offending rows an error message shows.
MAX_EXAMPLES = 5

RULE_NOT_NULL = "must not be empty"
RULE_UNIQUE = "ids must be unique"
RULE_LABEL = "labels must be 0, 1 or empty"
RULE_REFERENCE = "every account_id must exist in accounts"
RULE_WON_CLOSED = "an opportunity with a won label must have closed_at"

#: Date columns that are scheduled, not events: a subscription's term may end after the export
#: (its ``renewed`` label is then still empty), so these are exempt from the extract-date rule.
SCHEDULED_DATE_COLUMNS: dict[str, tuple[str, ...]] = {"subscriptions": ("end_date",)}


def rule_after_extract(extract_date: pd.Timestamp) -> str:
    return f"date after the extract date {extract_date:%Y-%m-%d}"


def rule_order(later: str, earlier: str) -> str:
    return f"{later} must not be before {earlier}"


def rule_unique_together(columns: list[str]) -> str:
    return f"({', '.join(columns)}) must be unique"


# ---------------------------------------------------------------------------------------------
# helpers shared with loading


def example_value(value: Any) -> Any:
    """A cell as it reads best in a message: ISO dates, plain Python numbers, None for empty."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float | np.floating) and math.isnan(value):
        return None
    if isinstance(value, pd.Timestamp | datetime):
        ts = pd.Timestamp(value)
        return f"{ts:%Y-%m-%d}" if ts == ts.normalize() else ts.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    return value


def example_rows(
    table: str, df: pd.DataFrame, mask: Iterable[bool] | pd.Series, columns: Iterable[str]
) -> list[dict]:
    """Up to :data:`MAX_EXAMPLES` offending rows as ``{id column: ..., offending column: ...}``."""
    contract = CONTRACT.get(table)
    # Event tables have no id: the account and the event time identify a row well enough.
    if contract and contract.id_column:
        key: tuple[str, ...] = (contract.id_column,)
    else:
        key = ("account_id", *(contract.date_columns if contract else ()))
    cols = [c for c in dict.fromkeys([*key, *columns]) if c in df.columns]
    rows = df.loc[np.asarray(mask, dtype=bool), cols].head(MAX_EXAMPLES)
    return [
        {c: example_value(v) for c, v in zip(cols, rec, strict=True)} for rec in rows.itertuples(index=False)
    ]


def check_required_columns(table: str, columns: Iterable[str]) -> None:
    """Raise if a required contract column is missing, listing what was found and how to map it."""
    found = list(columns)
    missing = [c for c in CONTRACT[table].required if c not in found]
    if not missing:
        return
    hints = []
    for col in missing:
        close = difflib.get_close_matches(col, found, n=1, cutoff=0.5)
        if close:
            hints.append(f"{close[0]}: {col}")
    hint = f"data.tables.{table}.rename in the config maps source columns onto the contract"
    if hints:
        hint += ", e.g. rename: {" + ", ".join(hints) + "}"
    raise DataContractError(
        table,
        missing[0] if len(missing) == 1 else None,
        f"missing required column(s) {missing}; columns found: {found}; {hint}",
    )


# ---------------------------------------------------------------------------------------------
# the schema


@dataclass(frozen=True)
class _Rule:
    """One named check: its message text, the column it is reported on and the example columns."""

    column: str | None
    text: str
    show: tuple[str, ...]


def _col_check(fn: Callable[[pd.Series], pd.Series], name: str) -> pa.Check:
    # ignore_na=False: our checks decide themselves what an empty cell means.
    return pa.Check(fn, name=name, ignore_na=False)


def _build_schema(  # noqa: C901 - one flat `if` per contract rule; split up, the rules' order would be scattered
    table: str, df: pd.DataFrame, extract: pd.Timestamp, account_ids: pd.Series | None
) -> tuple[pa.DataFrameSchema, dict[str, _Rule]]:
    """A pandera schema for one table; check names are ordered so the first sorted is reported first."""
    c: TableContract = CONTRACT[table]
    rules: dict[str, _Rule] = {}
    checks: dict[str, list[pa.Check]] = {col: [] for col in df.columns}
    frame_checks: list[pa.Check] = []

    def add(col: str | None, text: str, show: tuple[str, ...], fn: Callable, frame: bool = False) -> None:
        name = f"{len(rules):03d}"
        rules[name] = _Rule(col, text, show)
        if frame:
            frame_checks.append(_col_check(fn, name))
        else:
            checks[col].append(_col_check(fn, name))  # type: ignore[index]

    for col in c.not_null:
        add(col, RULE_NOT_NULL, (col,), lambda s: s.notna())
    if c.id_column:
        add(c.id_column, RULE_UNIQUE, (c.id_column,), lambda s: s.isna() | ~s.duplicated(keep=False))
    if c.unique_together:
        key = list(c.unique_together)
        add(
            key[-1],
            rule_unique_together(key),
            tuple(key),
            lambda d: d[key].isna().any(axis=1) | ~d.duplicated(subset=key, keep=False),
            frame=True,
        )
    for col in c.label_columns:
        if col in df.columns:
            add(col, RULE_LABEL, (col,), lambda s: s.isna() | s.isin([0, 1]))
    limit = extract.normalize() + pd.Timedelta(days=1)  # the whole extract day is allowed
    for col in c.date_columns:
        if col in SCHEDULED_DATE_COLUMNS.get(table, ()):
            continue
        add(col, rule_after_extract(extract), (col,), lambda s: s.isna() | (s < limit))
    if table == "opportunities":
        add(
            "closed_at",
            rule_order("closed_at", "created_at"),
            ("created_at", "closed_at"),
            lambda d: d["closed_at"].isna() | d["created_at"].isna() | (d["closed_at"] >= d["created_at"]),
            frame=True,
        )
        if "won" in df.columns:
            add(
                "closed_at",
                RULE_WON_CLOSED,
                ("won", "closed_at"),
                lambda d: d["won"].isna() | (d["won"] != 1) | d["closed_at"].notna(),
                frame=True,
            )
    if table == "subscriptions":
        add(
            "end_date",
            rule_order("end_date", "start_date"),
            ("start_date", "end_date"),
            lambda d: d["end_date"].isna() | d["start_date"].isna() | (d["end_date"] >= d["start_date"]),
            frame=True,
        )
    if c.references_accounts and account_ids is not None:
        known = pd.Index(account_ids.dropna().unique())
        add("account_id", RULE_REFERENCE, ("account_id",), lambda s: s.isna() | _known(s, known))

    columns = {col: pa.Column(checks=chk, nullable=True, required=True) for col, chk in checks.items() if chk}
    return pa.DataFrameSchema(columns=columns, checks=frame_checks, name=table), rules


def _known(s: pd.Series, known: pd.Index) -> pd.Series:
    """Whether each value is in ``known``, looked up once per distinct value (not per row)."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        codes, uniques = s.cat.codes.to_numpy(), s.cat.categories
    else:
        codes, values = pd.factorize(s)
        uniques = pd.Index(values)
    found = np.append(known.get_indexer(uniques) >= 0, False)  # code -1 (empty) -> False
    return pd.Series(found[codes], index=s.index)


def _first_violation(
    table: str, df: pd.DataFrame, schema: pa.DataFrameSchema, rules: Mapping[str, _Rule]
) -> None:
    try:
        # inplace: no copy of the table (the schema coerces nothing; activities have tens of millions of rows)
        schema.validate(df, lazy=True, inplace=True)
    except pa.errors.SchemaErrors as err:
        fc = err.failure_cases
        ours = fc[fc["check"].astype("str").isin(list(rules))]
        if ours.empty:  # a pandera-level problem we did not ask for: surface it, never swallow it
            raise DataContractError(table, None, f"schema check failed: {err}") from None
        first = sorted(ours["check"].astype("str").unique())[0]
        rule = rules[first]
        idx = pd.Index(ours.loc[ours["check"].astype("str") == first, "index"].dropna().unique())
        mask = df.index.isin(idx)
        raise DataContractError(
            table, rule.column, rule.text, int(mask.sum()), example_rows(table, df, mask, rule.show)
        ) from None


def validate_table(
    table: str, df: pd.DataFrame, extract_date: date | pd.Timestamp, account_ids: pd.Series | None
) -> None:
    """Validate one table; ``account_ids`` are the accounts' ids (``None``: skip the reference check)."""
    extract = pd.Timestamp(extract_date)
    check_required_columns(table, df.columns)
    df = df.reset_index(drop=True)
    # Dates are parsed during loading; frames built by hand may still hold text.
    for col in CONTRACT[table].date_columns:
        if col in df.columns and not pd.api.types.is_datetime64_dtype(df[col].dtype):
            dates = parse_dates(df[col], table=table)
            if dates.bad.any():
                raise DataContractError(
                    table, col, dates.rule, int(dates.bad.sum()), example_rows(table, df, dates.bad, (col,))
                )
            df[col] = dates.values
    schema, rules = _build_schema(table, df, extract, account_ids)
    _first_violation(table, df, schema, rules)


def validate_crm(tables: Mapping[str, pd.DataFrame], extract_date: date | pd.Timestamp) -> None:
    """Raise the first contract violation as a :class:`DataContractError`; return ``None`` if clean.

    Tables are checked in :data:`TABLE_ORDER` (accounts first: the others reference it), each
    table's own rules before its references to accounts.
    """
    if "accounts" not in tables:
        raise DataContractError("accounts", None, "the accounts table is required but missing")
    unknown = sorted(set(tables) - set(TABLE_ORDER))
    if unknown:
        raise DataContractError(unknown[0], None, f"not a contract table (known tables: {list(TABLE_ORDER)})")
    account_ids: pd.Series | None = None
    for name in TABLE_ORDER:
        if name not in tables:
            continue
        validate_table(name, tables[name], extract_date, account_ids)
        if name == "accounts":
            account_ids = tables[name]["account_id"]
    log.debug("validated %s", ", ".join(f"{t} ({len(df)} rows)" for t, df in tables.items()))
