"""Type one column from its values, the same way whatever the file format.

CSV cells arrive as text, Parquet and SQL columns already typed; both go through these functions,
so the same data gives the same frame. Nothing here changes a value silently: contract columns
that do not parse are reported by the caller as contract errors, and attribute values that are
set to empty are returned as counted :class:`~icpkit.data.crm.Repair` records.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from icpkit.data.crm import REPAIR_NON_FINITE, REPAIR_NOT_A_DATE, REPAIR_NOT_A_NUMBER, Repair

RULE_DATE_PARSE = "dates must parse (e.g. 2024-03-31)"
RULE_DATE_RANGE = "dates must lie between 1677-09-22 and 2262-04-11 (leave an unknown date empty)"
RULE_NUMBER_PARSE = "numbers must parse (e.g. 1250.50)"
RULE_NUMBER_FINITE = "numbers must be finite (no inf, -inf or nan; leave an unknown number empty)"

#: 03/04/2024, 3.4.24, 03-04-2024: day and month cannot be told apart without a declared format.
_DAY_MONTH = re.compile(r"^\d{1,2}[/.\-]\d{1,2}[/.\-]\d{2,4}(?:\D|$)")
#: Lenient (dateutil) parsing is only tried on text with a four-digit year and a month name or a
#: year-first layout; otherwise "10:30" or "5" would silently become a day of the current month.
_LENIENT_OK = re.compile(r"(?=.*\d{4})(?=.*[A-Za-z]{3}|^\d{4}[/.]\d{1,2}[/.]\d{1,2})")
_NON_FINITE_TEXT = frozenset({"nan", "inf", "-inf", "+inf", "infinity", "-infinity", "+infinity"})
_TRUE_FALSE = {"true": 1.0, "false": 0.0}


def rule_day_month(table: str) -> str:
    """The error rule for ambiguous day/month dates in ``table``."""
    return (
        "day/month dates are ambiguous (03/04/2024 may be 3 April or March 4): set "
        f"data.tables.{table}.date_format, e.g. '%d/%m/%Y' or '%m/%d/%Y'"
    )


def rule_iso_mixed(table: str) -> str:
    """The error rule for ISO dates mixed with day/month dates in one column of ``table``."""
    return (
        "ISO dates (2024-03-31) mixed with day/month dates in one column: use one format per "
        f"column (data.tables.{table}.date_format names the day/month one)"
    )


def rule_date_format(table: str, fmt: str) -> str:
    """The error rule for dates not matching the configured ``fmt`` of ``table``."""
    return f"dates must match data.tables.{table}.date_format {fmt!r}"


class ValueProblem(Exception):
    """Some cells of a column cannot be typed; the loader turns it into a DataContractError."""

    def __init__(self, bad: pd.Series, rule: str) -> None:
        super().__init__(rule)
        self.bad = bad
        self.rule = rule


# ---------------------------------------------------------------------------------------------
# text and ids


def is_number(v: object) -> bool:
    """Whether ``v`` is a numeric scalar (int, float, numpy number or Decimal), booleans excluded."""
    return (
        isinstance(v, int | float | np.number)
        and not isinstance(v, bool | np.bool_)
        or (type(v).__name__ == "Decimal")
    )


def _num_text(v: object) -> str:
    f = float(v)  # type: ignore[arg-type]
    return str(int(f)) if f.is_integer() else repr(f)


def to_text(s: pd.Series) -> pd.Series:
    """Any column as pandas ``str``; whole numbers print without ``.0`` (id 1 is "1", not "1.0")."""
    if isinstance(s.dtype, pd.StringDtype):
        return s.astype("str")
    if pd.api.types.is_bool_dtype(s.dtype):
        out = s.map(lambda v: str(bool(v)), na_action="ignore")
    elif pd.api.types.is_numeric_dtype(s.dtype):
        out = s.map(_num_text, na_action="ignore")
    elif pd.api.types.is_datetime64_any_dtype(s.dtype):
        out = s.map(
            lambda v: str(v.date()) if v == v.normalize() else v.isoformat(sep=" "), na_action="ignore"
        )
    else:
        out = s.map(
            lambda v: v if isinstance(v, str) else _num_text(v) if is_number(v) else str(v),
            na_action="ignore",
        )
    return out.astype("str")


def to_id(s: pd.Series) -> pd.Series:
    """Ids as text; "17.0" (a whole-number id that went through a float column) becomes "17"."""
    text = to_text(s)
    return text.str.replace(r"^(-?\d+)\.0+$", r"\1", regex=True).astype("str")


# ---------------------------------------------------------------------------------------------
# numbers


@dataclass(frozen=True)
class Numbers:
    """A column read as numbers: the values and which non-empty cells were not plain numbers."""

    values: pd.Series  # float64; NaN where empty, unparseable or non-finite
    unparsed: pd.Series  # non-empty text that is no number at all ("N/A", "lots")
    non_finite: pd.Series  # inf, -inf, nan (as text or values), 1e999


def _to_numeric(text: pd.Series) -> pd.Series:
    try:
        out = pd.to_numeric(text, errors="coerce")
        return pd.Series(np.asarray(out, dtype="float64"), index=text.index)
    except (ValueError, TypeError, OverflowError):  # exotic text pandas refuses wholesale
        return text.map(_float_or_nan, na_action="ignore").astype("float64")


def _float_or_nan(v: str) -> float:
    try:
        return float(v) if "_" not in v else np.nan  # Python accepts "1_000"; exports do not mean it
    except (ValueError, OverflowError):
        return np.nan


def to_numbers(s: pd.Series, booleans: bool = False) -> Numbers:
    """Read a column as float64; ``booleans`` reads true/false (text or values) as 1/0."""
    none = pd.Series(False, index=s.index)
    if pd.api.types.is_bool_dtype(s.dtype):
        return Numbers(s.astype("float64"), none, none)
    if pd.api.types.is_numeric_dtype(s.dtype):
        values = s.astype("float64")
        inf = pd.Series(np.isinf(values.to_numpy()), index=s.index)
        return Numbers(values.mask(inf), none, inf)
    text = to_text(s)
    codes, distinct = text.factorize()  # code -1: an empty cell
    if len(distinct) < 0.5 * len(text):
        # A cell's number depends on its text alone: parse each distinct text once and look the
        # cells up (a text attribute or a count column: a few thousand texts in a million cells).
        got, non_finite_got = _parse_numbers(pd.Series(distinct, dtype=text.dtype), booleans)
        values = pd.Series(np.append(got.to_numpy(), np.nan)[codes], index=s.index)
        non_finite = pd.Series(np.append(non_finite_got.to_numpy(), False)[codes], index=s.index)
    else:
        values, non_finite = _parse_numbers(text, booleans)
    unparsed = (values.isna() & s.notna() & ~non_finite).astype(bool)
    return Numbers(values.astype("float64"), unparsed, non_finite)


def _parse_numbers(text: pd.Series, booleans: bool) -> tuple[pd.Series, pd.Series]:
    """:func:`to_numbers` of text cells: the float64 values (NaN where non-finite) and the non-finite mask."""
    text = text.str.strip()
    lower = text.str.lower()
    values = _to_numeric(text)
    if booleans:
        values = values.mask(lower.isin(list(_TRUE_FALSE)), lower.map(_TRUE_FALSE)).astype("float64")
    non_finite = (lower.isin(list(_NON_FINITE_TEXT)) | np.isinf(values)).fillna(False).astype(bool)
    return values.mask(non_finite).astype("float64"), non_finite


# ---------------------------------------------------------------------------------------------
# dates


@dataclass(frozen=True)
class Dates:
    """A column read as dates: ``datetime64[ns]`` values, the cells that failed, and why."""

    values: pd.Series
    bad: pd.Series
    rule: str = RULE_DATE_PARSE


def _to_datetime(text: pd.Series, fmt: str) -> pd.Series:
    """``pd.to_datetime`` (UTC, coerce) that never raises on odd text: falls back per cell."""
    try:
        return pd.to_datetime(text, errors="coerce", format=fmt, utc=True)
    except (ValueError, TypeError, OverflowError):
        return pd.to_datetime(text.map(lambda v: _one_date(v, fmt), na_action="ignore"), utc=True)


def _one_date(v: str, fmt: str) -> pd.Timestamp:
    try:
        return pd.to_datetime(v, errors="coerce", format=fmt, utc=True)
    except (ValueError, TypeError, OverflowError):
        return pd.NaT


def _finish(out: pd.Series, bad: pd.Series, rule: str) -> Dates:
    """Naive UTC ``datetime64[ns]``; dates outside the ns range are refused, not wrapped."""
    if isinstance(out.dtype, pd.DatetimeTZDtype):
        out = out.dt.tz_convert("UTC").dt.tz_localize(None)
    out = out.astype("datetime64[us]") if out.dtype != "datetime64[ns]" else out
    outside = out.notna() & ~out.between(pd.Timestamp.min, pd.Timestamp.max)
    if outside.any():
        if not bad.any():
            rule = RULE_DATE_RANGE
        bad, out = bad | outside, out.mask(outside)
    return Dates(out.astype("datetime64[ns]"), bad.astype(bool), rule)


def parse_dates(
    series: pd.Series, date_format: str | None = None, *, lenient: bool = True, table: str = "<table>"
) -> Dates:
    """Parse to ``datetime64[ns]`` (tz-naive, UTC); report non-empty cells that do not parse.

    ISO 8601 always parses. Day/month text (``03/04/2024``) needs ``date_format`` and is
    otherwise refused as ambiguous, never read month-first; a column mixing ISO with day/month
    text is refused too. ``lenient`` also accepts month names (``5 Dec 2024``).
    """
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        return _finish(series, pd.Series(False, index=series.index), RULE_DATE_PARSE)
    present = series.notna()
    text = to_text(series).str.strip()
    iso = _to_datetime(text, "ISO8601")
    if date_format:
        return _with_format(text, present, iso, date_format, table)
    day_month = (present & text.str.match(_DAY_MONTH)).fillna(False).astype(bool)
    if day_month.any():
        mixed = (iso.notna() & present).any()
        return _finish(
            iso.mask(day_month), day_month, rule_iso_mixed(table) if mixed else rule_day_month(table)
        )
    out = iso
    rest = (present & iso.isna()).fillna(False).astype(bool)
    if rest.any():  # the lenient gate is a Python regex: only tried on the cells ISO did not parse
        rest[rest] = text[rest].str.contains(_LENIENT_OK).fillna(False).astype(bool)
    if lenient and rest.any():
        out = out.where(~rest, _to_datetime(text.where(rest), "mixed"))
    return _finish(out, (present & out.isna()).astype(bool), RULE_DATE_PARSE)


def _with_format(text: pd.Series, present: pd.Series, iso: pd.Series, fmt: str, table: str) -> Dates:
    parsed = _to_datetime(text, fmt)
    if not parsed.notna().any() and bool((iso.notna() == present).all()):
        # A column wholly in ISO is unambiguous even where the table declares a day/month format.
        return _finish(iso, pd.Series(False, index=text.index), RULE_DATE_PARSE)
    bad = (present & parsed.isna()).astype(bool)
    rule = rule_iso_mixed(table) if (bad & iso.notna()).any() else rule_date_format(table, fmt)
    return _finish(parsed, bad, rule)


# ---------------------------------------------------------------------------------------------
# attributes


def _counts(text: pd.Series, mask: pd.Series) -> dict[str, int]:
    """How often each offending value occurs, most frequent first (ties by value: stable)."""
    vc = text[mask].value_counts()
    return dict(sorted(((str(k), int(v)) for k, v in vc.items()), key=lambda kv: (-kv[1], kv[0])))


def _repairs(
    table: str, column: str, text: pd.Series, masks: Iterable[tuple[str, pd.Series]]
) -> list[Repair]:
    out = []
    for kind, mask in masks:
        if mask.any():
            out.append(Repair(table, column, kind, int(mask.sum()), _counts(text, mask)))
    return out


def type_attribute(
    table: str, column: str, s: pd.Series, share: float, date_format: str | None
) -> tuple[pd.Series, list[Repair]]:
    """Type an attribute column: float64, datetime64[ns] or text; changed cells come back as repairs.

    A column is numeric (dates likewise) when at least ``share`` of its non-empty values parse;
    the rest become empty and are counted. Booleans (true/false, yes/no) stay text as spelt.

    Raises
    ------
    ValueProblem
        Day/month dates without ``date_format``, or ISO mixed with day/month dates.
    """
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        return parse_dates(s).values, []
    if pd.api.types.is_bool_dtype(s.dtype):
        return to_text(s), []
    if pd.api.types.is_numeric_dtype(s.dtype):
        num = to_numbers(s)
        return num.values, _repairs(table, column, to_text(s), [(REPAIR_NON_FINITE, num.non_finite)])
    text = to_text(s)
    n = int(text.notna().sum())
    if n == 0:
        return text, []
    num = to_numbers(text)
    finite = num.values.notna()
    if finite.any() and (n - int(num.unparsed.sum())) >= share * n:
        masks = [(REPAIR_NOT_A_NUMBER, num.unparsed), (REPAIR_NON_FINITE, num.non_finite)]
        return num.values, _repairs(table, column, text.str.strip(), masks)
    dates = _date_attribute(table, text, n, share, date_format)
    if dates is not None:
        return dates.values, _repairs(table, column, text.str.strip(), [(REPAIR_NOT_A_DATE, dates.bad)])
    return text, []


def _date_attribute(
    table: str, text: pd.Series, n: int, share: float, date_format: str | None
) -> Dates | None:
    stripped = text.str.strip()
    # Cheap gate: most text attributes (industry, plan) start with a letter and are no dates.
    if date_format is None and int(stripped.str.match(r"\d").fillna(False).sum()) < share * n:
        return None
    dates = parse_dates(text, date_format, lenient=False, table=table)
    ok = int(dates.values.notna().sum())
    day_month = stripped.str.match(_DAY_MONTH).fillna(False).astype(bool)
    if ok >= share * n:
        if dates.rule == rule_iso_mixed(table):
            raise ValueProblem(dates.bad, dates.rule)
        return dates
    if date_format is None and int(day_month.sum()) >= share * n:
        raise ValueProblem(day_month, rule_day_month(table))
    return None
