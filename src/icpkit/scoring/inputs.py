"""What a scoring model takes as input, and the checks every scoring batch goes through.

An :class:`InputSpec` is learnt from the training frame (:meth:`InputSpec.from_frame`) and saved
with the model as JSON. At scoring time :meth:`InputSpec.check` turns whatever a caller passes
into the typed frame the model was trained on, and says what it did:

* a missing required column is one :class:`ScoringInputError` naming every missing column;
  extra columns are ignored;
* numbers may arrive as int, bool, float, nullable or object columns (numeric text included);
  NaN / None / empty text are missing values, scored as missing;
* ``±inf``, text that is not a number or a date, values below / above a bound (negative counts
  included) reject the *row* with a ``rejected_reason``; the rest of the batch goes on;
* a category value unseen in training is scored as missing and counted per column; a batch
  whose share of rows with an unseen value exceeds ``max_unseen_share`` fails with the counts;
* booleans accept True/False, 1/0, "yes"/"no" (and "true"/"false", "y"/"n") and come out in the
  training spelling;
* empty input gives an empty batch; the input's index (ids, row order) is kept.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd

from icpkit.data.values import parse_dates
from icpkit.errors import ICPKitError

__all__ = [
    "KINDS",
    "REJECTED_REASON",
    "CheckedBatch",
    "ColumnKind",
    "ColumnSpec",
    "InputSpec",
    "ScoringInputError",
    "enforce_unseen_share",
    "to_pyfunc_input",
]

ColumnKind = Literal["numeric", "count", "categorical", "boolean", "date", "id"]
KINDS: tuple[str, ...] = get_args(ColumnKind)
SPEC_FORMAT = "icpkit.InputSpec/1"
REJECTED_REASON = "rejected_reason"
#: How many unseen values per column an error message shows.
MAX_EXAMPLES = 3

_TRUE = frozenset({"true", "yes", "y", "t", "1"})
_FALSE = frozenset({"false", "no", "n", "f", "0"})
#: Text spellings recognised as a boolean column in a training frame: (false, true).
_BOOL_PAIRS = (("no", "yes"), ("false", "true"), ("n", "y"), ("f", "t"))


class ScoringInputError(ICPKitError):
    """A scoring batch cannot be scored as a whole (missing columns, too many unseen values)."""


@dataclass(frozen=True)
class ColumnSpec:
    """One raw input column of a model.

    Parameters
    ----------
    name, kind
        Column name and kind (numeric, count, categorical, boolean, date, id).
    required
        A missing required column fails the batch; a missing optional one is scored as missing.
    categories
        Categorical: the values seen in training (``None``: any value is accepted).
    spelling
        Boolean: the training spelling of ``(false, true)``, e.g. ``("no", "yes")`` or ``(0.0, 1.0)``.
    lower, upper
        Inclusive bounds for numbers; a value outside rejects the row.
    """

    name: str
    kind: ColumnKind
    required: bool = True
    categories: tuple[str, ...] | None = None
    spelling: tuple[Any, Any] | None = None
    lower: float | None = None
    upper: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"column {self.name!r}: unknown kind {self.kind!r}; kinds: {KINDS}")

    @property
    def lower_bound(self) -> float | None:
        """The effective lower bound: counts are never below 0."""
        if self.kind == "count":
            return 0.0 if self.lower is None else max(0.0, self.lower)
        return self.lower

    def to_dict(self) -> dict[str, Any]:
        """The column spec as a JSON-ready dict (unset optional fields left out)."""
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "required": self.required}
        for key in ("categories", "spelling"):
            value = getattr(self, key)
            if value is not None:
                out[key] = list(value)
        for key in ("lower", "upper"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ColumnSpec:
        """Rebuild a column spec from :meth:`to_dict` output."""
        cats, spelling = d.get("categories"), d.get("spelling")
        return cls(
            name=str(d["name"]),
            kind=d["kind"],
            required=bool(d.get("required", True)),
            categories=None if cats is None else tuple(str(c) for c in cats),
            spelling=None if spelling is None else (spelling[0], spelling[1]),
            lower=None if d.get("lower") is None else float(d["lower"]),
            upper=None if d.get("upper") is None else float(d["upper"]),
        )


@dataclass
class CheckedBatch:
    """A checked scoring batch.

    Attributes
    ----------
    frame
        Accepted rows in input order with the input's index: the spec's columns, typed.
    rejected
        Rejected rows (input index): the id column when the spec has one, and ``rejected_reason``.
    unseen
        Per categorical / boolean column, how many accepted rows held a value unseen in training.
    unseen_examples
        A few of those values per column.
    rows_with_unseen
        Accepted rows with at least one unseen value.
    n_rows
        Rows in the input.
    unseen_values
        The unseen values themselves, row by row.
    """

    frame: pd.DataFrame
    rejected: pd.DataFrame
    unseen: dict[str, int] = field(default_factory=dict)
    unseen_examples: dict[str, list[str]] = field(default_factory=dict)
    rows_with_unseen: int = 0
    n_rows: int = 0
    #: Per accepted row (same index as ``frame``) and column with any unseen value: the unseen
    #: value as text, missing elsewhere (lets other engines aggregate the same counts).
    unseen_values: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def unseen_share(self) -> float:
        """Share of accepted rows holding an unseen value (0 for an empty batch)."""
        return self.rows_with_unseen / len(self.frame) if len(self.frame) else 0.0


@dataclass(frozen=True)
class _Checked:
    """One column after its check: typed values, a reason per rejected row, unseen flags."""

    values: pd.Series
    reasons: dict[int, str]  # row position -> why it is rejected (only the bad rows)
    unseen: np.ndarray  # bool


@dataclass(frozen=True)
class InputSpec:
    """The raw input columns of a model (see the module docstring for the checks)."""

    columns: tuple[ColumnSpec, ...]
    id_column: str | None = None

    def __post_init__(self) -> None:
        names = [c.name for c in self.columns]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"input spec names columns more than once: {dupes}")
        if self.id_column is not None and self.id_column not in names:
            raise ValueError(f"id column {self.id_column!r} is not one of the spec's columns")

    # --- construction -------------------------------------------------------------------------
    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        *,
        id_column: str | None = None,
        count_columns: Iterable[str] = (),
        categorical: Iterable[str] | None = None,
        boolean: Iterable[str] = (),
        bounds: Mapping[str, tuple[float | None, float | None]] | None = None,
        optional: Iterable[str] = (),
        keys: Iterable[str] = (),
    ) -> InputSpec:
        """Learn the spec from a training frame.

        Parameters
        ----------
        frame
            The raw training input (one column per model input).
        id_column
            The row id (kept, never scored; an empty id rejects the row).
        count_columns
            Columns that count things (never below 0).
        categorical, boolean
            Columns forced to that kind (e.g. numeric codes, 0/1 flags); others are inferred:
            bool dtype and yes/no-like text are boolean, datetimes dates, numbers numeric, the
            rest categorical.
        bounds
            Declared ``(lower, upper)`` bounds; otherwise a numeric column whose training values
            were all >= 0 gets lower bound 0.
        optional
            Columns that may be absent at scoring time (scored as missing).
        keys
            Other identifiers (e.g. the account a lead belongs to): text that must not be empty,
            with no list of known values (a new account is no unseen value, and no model
            stores every id it was trained on).

        Returns
        -------
        InputSpec
        """
        counts, forced_bool = set(count_columns), set(boolean)
        forced_cat = set(categorical or ())
        declared, opt = dict(bounds or {}), set(optional)
        ids = {id_column, *keys} - {None}
        named = counts | forced_bool | forced_cat | set(declared) | opt | ids
        absent = sorted(str(c) for c in named - set(frame.columns))
        if absent:
            raise ValueError(f"from_frame: columns not in the training frame: {absent}")
        specs = []
        for name in frame.columns:
            kind = _infer_kind(name, frame[name], ids, counts, forced_cat, forced_bool)
            specs.append(
                _column_from_values(str(name), kind, frame[name], declared.get(name), name not in opt)
            )
        return cls(columns=tuple(specs), id_column=id_column)

    @classmethod
    def from_kinds(cls, kinds: Mapping[str, ColumnKind], id_column: str | None = None) -> InputSpec:
        """An open spec from column kinds alone (no known categories, no bounds but counts >= 0).

        For models saved without a spec: e.g. from a pyfunc signature (double -> numeric,
        string -> categorical).
        """
        return cls(tuple(ColumnSpec(str(n), k) for n, k in kinds.items()), id_column=id_column)

    # --- JSON -----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The spec as a JSON-ready dict."""
        return {
            "format": SPEC_FORMAT,
            "id_column": self.id_column,
            "columns": [c.to_dict() for c in self.columns],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> InputSpec:
        """Rebuild a spec from :meth:`to_dict` output; another format is a ``ValueError``."""
        if d.get("format") != SPEC_FORMAT:
            raise ValueError(f"not an input spec: format {d.get('format')!r}, expected {SPEC_FORMAT!r}")
        return cls(tuple(ColumnSpec.from_dict(c) for c in d["columns"]), id_column=d.get("id_column"))

    def to_json(self) -> str:
        """The spec as indented JSON text with sorted keys."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> InputSpec:
        """Rebuild a spec from :meth:`to_json` text."""
        return cls.from_dict(json.loads(text))

    def save(self, path: str | Path) -> None:
        """Write the spec as JSON to ``path``."""
        Path(path).write_text(self.to_json() + "\n")

    @classmethod
    def load(cls, path: str | Path) -> InputSpec:
        """Read a spec :meth:`save` wrote."""
        return cls.from_json(Path(path).read_text())

    # --- queries --------------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        """The column names, in spec order."""
        return [c.name for c in self.columns]

    def column(self, name: str) -> ColumnSpec:
        """The spec of column ``name``; a ``KeyError`` if there is none."""
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    def missing_columns(self, present: Iterable[str]) -> list[str]:
        """Required columns not in ``present``, in spec order."""
        have = set(present)
        return [c.name for c in self.columns if c.required and c.name not in have]

    def require_columns(self, present: Iterable[str], table: str = "input") -> None:
        """Raise one :class:`ScoringInputError` naming every missing required column."""
        present = list(present)
        missing = self.missing_columns(present)
        if missing:
            shown = ", ".join(map(str, present[:20])) + (", …" if len(present) > 20 else "")
            raise ScoringInputError(
                f"table '{table}': missing required input column{'s' if len(missing) > 1 else ''} "
                f"{', '.join(missing)} (the model was trained with them); "
                f"the input has: {shown or 'no columns'}"
            )

    def empty_frame(self) -> pd.DataFrame:
        """A zero-row frame with the spec's columns in their scoring types."""
        empty = pd.Series([], dtype=object)
        return pd.DataFrame({c.name: _check_column(c, empty).values for c in self.columns})

    # --- the check --------------------------------------------------------------------------------
    def check(self, frame: pd.DataFrame, max_unseen_share: float = 1.0, table: str = "input") -> CheckedBatch:
        """Check and type a scoring batch (see the module docstring for every rule).

        Parameters
        ----------
        frame
            Raw rows to score; extra columns are ignored.
        max_unseen_share
            Fail when more than this share of accepted rows hold an unseen category value.
        table
            Name used in messages.

        Returns
        -------
        CheckedBatch

        Raises
        ------
        ScoringInputError
            A required column is missing, or too many rows hold unseen values.
        """
        if len(frame) == 0:
            empty = self.empty_frame()
            return CheckedBatch(empty, self._rejected_frame(empty, []), n_rows=0)
        self.require_columns(frame.columns, table)
        checked = {c.name: _check_column(c, _column_or_missing(frame, c.name)) for c in self.columns}
        reasons = _join_reasons([r.reasons for r in checked.values()])
        ok = np.ones(len(frame), dtype=bool)
        ok[list(reasons)] = False
        typed = pd.DataFrame({n: r.values for n, r in checked.items()}, index=frame.index)
        batch = CheckedBatch(
            frame=typed if ok.all() else typed[ok],
            rejected=self._rejected_frame(typed[~ok], list(reasons.values())),
            n_rows=len(frame),
        )
        _count_unseen(batch, checked, ok, frame)
        enforce_unseen_share(
            table,
            batch.unseen,
            batch.unseen_examples,
            batch.rows_with_unseen,
            len(batch.frame),
            max_unseen_share,
        )
        return batch

    def _rejected_frame(self, rows: pd.DataFrame, reasons: list[str]) -> pd.DataFrame:
        out: dict[str, pd.Series] = {}
        if self.id_column is not None:
            out[self.id_column] = rows[self.id_column].astype("str")
        out[REJECTED_REASON] = pd.Series(reasons, index=rows.index, dtype="str")
        return pd.DataFrame(out, index=rows.index)


def enforce_unseen_share(
    table: str,
    unseen: Mapping[str, int],
    examples: Mapping[str, Sequence[str]],
    rows_with_unseen: int,
    n_rows: int,
    max_share: float,
) -> None:
    """Raise :class:`ScoringInputError` with the per-column counts when the unseen share is too high.

    Parameters
    ----------
    table
        Name used in the message.
    unseen, examples
        Unseen values per column: how many, and a few of them.
    rows_with_unseen, n_rows
        Rows holding at least one unseen value, out of the rows scored.
    max_share
        The largest allowed share (``scoring.max_unseen_share``).
    """
    if n_rows == 0 or rows_with_unseen / n_rows <= max_share:
        return
    per_column = "; ".join(
        f"{col}: {n} (e.g. {', '.join(repr(v) for v in examples.get(col, []))})"
        for col, n in sorted(unseen.items(), key=lambda kv: (-kv[1], kv[0]))
        if n
    )
    raise ScoringInputError(
        f"table '{table}': {rows_with_unseen} of {n_rows} rows ({rows_with_unseen / n_rows:.0%}) hold "
        f"category values not seen in training, more than scoring.max_unseen_share ({max_share:.0%}); "
        f"unseen values per column: {per_column}. Map the new values in the config "
        "(data.tables.<table>.values) or retrain."
    )


def to_pyfunc_input(frame: pd.DataFrame) -> pd.DataFrame:
    """The checked frame as a pyfunc signature takes it.

    Numbers and booleans become float64, dates ISO text, everything else object columns of
    ``str`` with ``None`` for missing.

    The pandas and the Spark paths both feed models through this one function.
    """
    out: dict[str, pd.Series] = {}
    for col in frame.columns:
        s = frame[col]
        if pd.api.types.is_bool_dtype(s.dtype) or pd.api.types.is_numeric_dtype(s.dtype):
            out[col] = pd.Series(s.to_numpy(dtype="float64", na_value=np.nan), index=frame.index)
            continue
        if pd.api.types.is_datetime64_any_dtype(s.dtype):
            s = s.dt.strftime("%Y-%m-%dT%H:%M:%S").str.removesuffix("T00:00:00")
        values = s.astype(object)
        arr = np.array([None if v is None or v != v else str(v) for v in values.to_numpy()], dtype=object)
        out[col] = pd.Series(arr, index=frame.index, dtype=object)
    return pd.DataFrame(out, index=frame.index, columns=frame.columns)


# ---------------------------------------------------------------------------------------------
# learning a column from training values


def _infer_kind(
    name: Any,
    s: pd.Series,
    ids: set[str],
    counts: set[str],
    forced_cat: set[str],
    forced_bool: set[str],
) -> ColumnKind:
    if name in ids:
        return "id"
    if name in counts:
        return "count"
    if name in forced_bool or pd.api.types.is_bool_dtype(s.dtype):
        return "boolean"
    if name in forced_cat:
        return "categorical"
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        return "date"
    if pd.api.types.is_numeric_dtype(s.dtype):
        return "numeric"
    return "boolean" if _bool_pair(s) is not None else "categorical"


def _column_from_values(
    name: str,
    kind: ColumnKind,
    s: pd.Series,
    declared: tuple[float | None, float | None] | None,
    required: bool,
) -> ColumnSpec:
    lower, upper = declared if declared is not None else (None, None)
    if kind == "categorical":
        cats = tuple(sorted(_text(s).dropna().unique().tolist()))
        return ColumnSpec(name, kind, required, categories=cats, lower=lower, upper=upper)
    if kind == "boolean":
        return ColumnSpec(name, kind, required, spelling=_training_spelling(s))
    if kind in ("numeric", "count") and declared is None:
        values = s.to_numpy(dtype="float64", na_value=np.nan)
        finite = values[np.isfinite(values)]
        if finite.size and finite.min() >= 0:
            lower = 0.0
    return ColumnSpec(name, kind, required, lower=lower, upper=upper)


def _bool_pair(s: pd.Series) -> tuple[str, str] | None:
    """The ``(false, true)`` text spelling of a yes/no-like text column, else ``None``."""
    values = set(_text(s).dropna().unique().tolist())
    if not values or len(values) > 2:
        return None
    lowered = {v.lower() for v in values}
    for false, true in _BOOL_PAIRS:
        if lowered <= {false, true}:
            sample = sorted(values)[0]
            style = (
                str.upper
                if sample.isupper() and len(sample) > 1
                else str.title
                if sample.istitle()
                else str.lower
            )
            by_lower = {v.lower(): v for v in values}
            return by_lower.get(false, style(false)), by_lower.get(true, style(true))
    return None


def _training_spelling(s: pd.Series) -> tuple[Any, Any]:
    if pd.api.types.is_bool_dtype(s.dtype):
        return (False, True)
    if pd.api.types.is_numeric_dtype(s.dtype):
        return (0.0, 1.0)
    return _bool_pair(s) or ("False", "True")


# ---------------------------------------------------------------------------------------------
# checking one column


def _column_or_missing(frame: pd.DataFrame, name: str) -> pd.Series:
    if name in frame.columns:
        return frame[name]
    return pd.Series([None] * len(frame), index=frame.index, dtype=object)


def _check_column(spec: ColumnSpec, s: pd.Series) -> _Checked:
    return _CHECKERS[spec.kind](spec, s)


def _no_unseen(n: int) -> np.ndarray:
    return np.zeros(n, dtype=bool)


def _fmt(v: float) -> str:
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


def _check_number(spec: ColumnSpec, s: pd.Series) -> _Checked:
    values, not_number = _to_float(s)
    reasons: dict[int, str] = {}
    for i in np.flatnonzero(not_number):
        reasons[i] = f"{spec.name} = {s.iloc[i]!r} is not a number"
    inf = np.isinf(values)
    for i in np.flatnonzero(inf):
        reasons[i] = f"{spec.name} = {_fmt(values[i])} is not finite"
    finite = np.isfinite(values)
    checks = [(spec.lower_bound, "below", np.less), (spec.upper, "above", np.greater)]
    for bound, word, outside in checks:
        if bound is None:
            continue
        for i in np.flatnonzero(finite & outside(values, bound, where=finite, out=np.zeros(len(s), bool))):
            reasons[i] = f"{spec.name} = {_fmt(values[i])} is {word} {_fmt(bound)}"
    return _Checked(pd.Series(values, index=s.index, dtype="float64"), reasons, _no_unseen(len(s)))


def _check_categorical(spec: ColumnSpec, s: pd.Series) -> _Checked:
    text = _text(s)
    if spec.categories is None:
        unseen = _no_unseen(len(s))
    else:
        unseen = (text.notna() & ~text.isin(list(spec.categories))).to_numpy()
    return _Checked(text.mask(unseen), {}, unseen)


def _check_boolean(spec: ColumnSpec, s: pd.Series) -> _Checked:
    false, true = spec.spelling or (False, True)
    lower = _text(s).str.strip().str.lower()
    is_true = lower.isin(list(_TRUE | {str(true).lower()})).to_numpy()
    is_false = lower.isin(list(_FALSE | {str(false).lower()})).to_numpy()
    unseen = lower.notna().to_numpy() & ~is_true & ~is_false
    if isinstance(true, bool):
        flags = pd.array(np.where(is_true, True, False), dtype="boolean")
        flags[~(is_true | is_false)] = pd.NA
        values = pd.Series(flags, index=s.index)
    elif isinstance(true, int | float):
        values = pd.Series(
            np.where(is_true, float(true), np.where(is_false, float(false), np.nan)), index=s.index
        )
    else:
        values = pd.Series(np.where(is_true, true, np.where(is_false, false, None)), index=s.index).astype(
            "str"
        )
        values = values.mask(~(is_true | is_false))
    return _Checked(values, {}, unseen)


def _check_date(spec: ColumnSpec, s: pd.Series) -> _Checked:
    # Same parsing as loading the CRM; blank text is missing, not a bad date.
    source = s if pd.api.types.is_datetime64_any_dtype(s.dtype) else _text(s)
    dates = parse_dates(source)
    parsed, bad = dates.values, dates.bad.to_numpy()
    reasons = {i: f"{spec.name} = {s.iloc[i]!r} is not a date" for i in np.flatnonzero(bad)}
    return _Checked(parsed.mask(bad), reasons, _no_unseen(len(s)))


def _check_id(spec: ColumnSpec, s: pd.Series) -> _Checked:
    text = _text(s)
    if text.str.endswith(".0").any():
        # A whole-number id that went through a float column as text: "17.0" is "17".
        text = text.str.replace(r"^(-?\d+)\.0+$", r"\1", regex=True).astype("str")
    reasons = {i: f"{spec.name} is empty" for i in np.flatnonzero(text.isna().to_numpy())}
    return _Checked(text, reasons, _no_unseen(len(s)))


_CHECKERS = {
    "numeric": _check_number,
    "count": _check_number,
    "categorical": _check_categorical,
    "boolean": _check_boolean,
    "date": _check_date,
    "id": _check_id,
}


# ---------------------------------------------------------------------------------------------
# value helpers


def _text(s: pd.Series) -> pd.Series:
    """Any column as pandas ``str`` with NaN for missing.

    Blank text is missing; whole numbers print without ``.0`` (a category 3 is "3" whether it came
    as int, float or text).
    """
    if isinstance(s.dtype, pd.StringDtype) or (
        s.dtype == object and pd.api.types.infer_dtype(s, skipna=True) in ("string", "empty")
    ):
        out = s.astype("str")
    else:
        values = s.astype(object).to_numpy()
        out = pd.Series([_value_text(v) for v in values], index=s.index, dtype="str")
    return out.mask(out.str.strip().eq("").fillna(False).astype(bool))


def _value_text(v: Any) -> str | None:
    if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)) or v is pd.NaT:
        return None
    if isinstance(v, bool | np.bool_):
        return str(bool(v))
    if isinstance(v, int | float | np.integer | np.floating):
        f = float(v)
        return str(int(f)) if f.is_integer() else repr(f)
    return str(v)


def _to_float(s: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """float64 values (missing -> NaN, true/false -> 1/0) and the mask of present non-numbers."""
    if pd.api.types.is_bool_dtype(s.dtype) or pd.api.types.is_numeric_dtype(s.dtype):
        return s.to_numpy(dtype="float64", na_value=np.nan), np.zeros(len(s), dtype=bool)
    text = _text(s).str.strip()
    lower = text.str.lower()
    parsed = pd.to_numeric(text, errors="coerce").astype("float64")
    parsed = parsed.mask(lower.eq("true").fillna(False), 1.0).mask(lower.eq("false").fillna(False), 0.0)
    values = parsed.to_numpy(dtype="float64", na_value=np.nan)
    return values, np.isnan(values) & text.notna().to_numpy()


def _join_reasons(columns: list[dict[int, str]]) -> dict[int, str]:
    """Per rejected row position, its column reasons joined with "; " in column order."""
    out: dict[int, list[str]] = {}
    for reasons in columns:
        for i, text in reasons.items():
            out.setdefault(int(i), []).append(text)
    return {i: "; ".join(texts) for i, texts in sorted(out.items())}


def _count_unseen(
    batch: CheckedBatch, checked: Mapping[str, _Checked], ok: np.ndarray, raw: pd.DataFrame
) -> None:
    any_unseen = np.zeros(int(ok.sum()), dtype=bool)
    values: dict[str, pd.Series] = {}
    for name, result in checked.items():
        flags = result.unseen[ok]
        if not flags.any():
            continue
        any_unseen |= flags
        batch.unseen[name] = int(flags.sum())
        text = _text(raw[name][ok])
        values[name] = text.where(flags)
        batch.unseen_examples[name] = sorted(text[flags].dropna().unique().tolist())[:MAX_EXAMPLES]
    batch.rows_with_unseen = int(any_unseen.sum())
    batch.unseen_values = pd.DataFrame(values, index=batch.frame.index)
