"""Load a CRM export (CSV / Parquet folder, SQL database, DuckDB queries) onto the data contract.

Whatever the source, every table goes through the same steps: read (files, SQL tables or a
query; several sources for activities), placeholders to empty, derived columns, rename (source ->
contract), drop configured columns, fix known bad values, derive the label from a status column,
exclude rows on purpose (counted and reported), then type the columns the same way. Because the
typing starts from the values rather than from the storage format, CSV, Parquet, SQLite and
DuckDB holding the same data give identical frames. Every value the loader changes is counted as
a :class:`~icpkit.data.crm.Repair`; nothing changes silently.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd

from icpkit.config import DataConfig, LabelRule, SourceConfig, TableConfig
from icpkit.data.contract import CONTRACT, LABEL_COLUMN, TABLE_ORDER
from icpkit.data.crm import (
    REPAIR_MISSING_VALUE,
    REPAIR_NON_FINITE,
    REPAIR_NOT_A_DATE,
    REPAIR_NOT_A_NUMBER,
    REPAIR_VALUE_FIX,
    CRMData,
    ExcludedRows,
    Repair,
)
from icpkit.data.sources import (
    FolderReader,
    RawTable,
    Reader,
    check_unique_names,
    derive_columns,
    open_reader,
)
from icpkit.data.validation import RULE_LABEL, check_required_columns, example_rows, validate_crm
from icpkit.data.values import (
    RULE_NUMBER_FINITE,
    RULE_NUMBER_PARSE,
    ValueProblem,
    parse_dates,
    to_id,
    to_numbers,
    to_text,
    type_attribute,
)
from icpkit.errors import DataContractError, ICPKitError
from icpkit.memory import release_freed_memory
from icpkit.secrets import mask_secrets

log = logging.getLogger(__name__)

#: Repairs the user did not ask for are warnings; configured ones (placeholders, fixes) are info.
_UNASKED = (REPAIR_NOT_A_NUMBER, REPAIR_NON_FINITE, REPAIR_NOT_A_DATE)


@dataclass(frozen=True)
class LoadedTable:
    """One table mapped onto the contract, with what the mapping dropped, excluded and repaired."""

    frame: pd.DataFrame
    dropped: list[str] = field(default_factory=list)
    excluded: list[ExcludedRows] = field(default_factory=list)
    repairs: list[Repair] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# names


def _match(table: str, columns: Sequence[str], name: str, what: str) -> str | None:
    """``name`` itself, else the one column equal to it ignoring case (logged), else ``None``."""
    if name in columns:
        return name
    folded = [c for c in columns if c.casefold() == name.casefold()]
    if len(folded) > 1:
        raise DataContractError(
            table,
            name,
            f"{what} {name!r} matches columns {folded}, which differ only in case; name one exactly",
        )
    if folded:
        log.info("%s: %s %r is read as column %r (names match ignoring case)", table, what, name, folded[0])
        return folded[0]
    return None


def _rename(table: str, df: pd.DataFrame, rename: dict[str, str]) -> pd.DataFrame:
    resolved: dict[str, str] = {}
    for src, dst in rename.items():
        col = _match(table, list(df.columns), src, "rename key")
        if col is None:
            log.warning("%s: rename %r -> %r: the table has no column %r", table, src, dst, src)
        else:
            resolved[col] = dst
    for col, dst in resolved.items():
        if dst in df.columns and dst != col and dst not in resolved:
            raise DataContractError(
                table, dst, f"rename maps {col!r} onto {dst!r}, but the table already has a column {dst!r}"
            )
    return df.rename(columns=resolved)


def _match_contract_names(table: str, df: pd.DataFrame) -> pd.DataFrame:
    """Contract columns spelt in another case (``Converted``, ``Account_ID``) are read as the contract's."""
    c = CONTRACT[table]
    wanted = [*c.known_columns, *([LABEL_COLUMN[table]] if table in LABEL_COLUMN else [])]
    renames = {}
    for name in dict.fromkeys(wanted):
        if name not in df.columns:
            others = [col for col in df.columns if col not in wanted]
            col = _match(table, others, name, "contract column")
            if col is not None:
                renames[col] = name
    return df.rename(columns=renames) if renames else df


def _check_case_clashes(table: str, df: pd.DataFrame) -> None:
    groups: dict[str, list[str]] = {}
    for col in df.columns:
        groups.setdefault(col.casefold(), []).append(col)
    clash = next((g for g in groups.values() if len(g) > 1), None)
    if clash:
        raise DataContractError(
            table,
            clash[0],
            f"columns {clash} differ only in case; rename or drop one "
            f"(data.tables.{table}.rename / drop_columns)",
        )


def _drop(
    table: str, df: pd.DataFrame, drop: list[str], rename: dict[str, str]
) -> tuple[pd.DataFrame, list[str]]:
    # Accept the source name or the contract name, so either spelling in the config works.
    wanted = list(dict.fromkeys(rename.get(c, c) for c in drop))
    dropped, missing = [], []
    for name in wanted:
        col = _match(table, list(df.columns), name, "drop_columns entry")
        (dropped if col is not None else missing).append(col or name)
    if missing:
        log.warning("%s: drop_columns %s not in the table", table, sorted(missing))
    dropped = [c for c in df.columns if c in dropped]
    if dropped:
        log.info("%s: dropped columns %s (config drop_columns)", table, dropped)
    return df.drop(columns=dropped), dropped


# ---------------------------------------------------------------------------------------------
# values


def _blank_to_na(df: pd.DataFrame) -> pd.DataFrame:
    """Whitespace-only text cells are empty cells, whatever the file format."""
    for col in df.columns:
        s = df[col]
        if isinstance(s.dtype, pd.StringDtype):
            blank = s.str.strip().eq("").fillna(False).astype(bool)
        elif s.dtype == object:
            blank = s.map(lambda v: isinstance(v, str) and not v.strip()).astype(bool)
        else:
            continue
        if blank.any():
            df[col] = s.mask(blank)
    return df


def _counts(values: pd.Series) -> dict[str, int]:
    vc = values.value_counts()
    return dict(sorted(((str(k), int(v)) for k, v in vc.items()), key=lambda kv: (-kv[1], kv[0])))


def _placeholders(
    table: str, df: pd.DataFrame, placeholders: Sequence[str]
) -> tuple[pd.DataFrame, list[Repair]]:
    """Configured placeholder texts (``Select``, ``N/A``) become empty cells, counted per column."""
    wanted = {p.strip() for p in placeholders}
    repairs = []
    if not wanted:
        return df, repairs
    for col in df.columns:
        text = to_text(df[col]).str.strip()
        hit = text.isin(list(wanted)).fillna(False).astype(bool)
        if hit.any():
            repairs.append(Repair(table, col, REPAIR_MISSING_VALUE, int(hit.sum()), _counts(text[hit])))
            df[col] = df[col].mask(hit)
    return df, repairs


def _fix_values(
    table: str, df: pd.DataFrame, fixes: dict[str, dict[str, str]]
) -> tuple[pd.DataFrame, list[Repair]]:
    repairs = []
    for name, mapping in fixes.items():
        col = _match(table, list(df.columns), name, "values key")
        if col is None:
            raise DataContractError(
                table,
                name,
                f"config values names a column the table does not have; columns: {list(df.columns)}",
            )
        text = to_text(df[col])
        hit = text.isin(list(mapping)).fillna(False).astype(bool)
        if hit.any():
            detail = {f"{k} -> {mapping[k]}": v for k, v in _counts(text[hit]).items()}
            repairs.append(Repair(table, col, REPAIR_VALUE_FIX, int(hit.sum()), detail))
            df[col] = text.mask(hit, text.map(mapping)).astype("str")
    return df, repairs


def _derive_label(table: str, df: pd.DataFrame, rule: LabelRule, rename: dict[str, str]) -> pd.DataFrame:
    label_col = LABEL_COLUMN.get(table)
    if label_col is None:
        raise DataContractError(
            table, rule.column, "this table has no label; remove its label rule from the config"
        )
    columns = list(df.columns)
    status_col = _match(table, columns, rule.column, "label column") or _match(
        table, columns, rename.get(rule.column, rule.column), "label column"
    )
    if status_col is None:
        raise DataContractError(
            table,
            rule.column,
            f"the label rule's status column is not in the table; columns: {columns}",
        )
    if label_col in df.columns and label_col != status_col:
        raise DataContractError(
            table,
            label_col,
            f"the table already has a {label_col!r} column and the config derives one from {status_col!r}; "
            "drop one of them",
        )
    status = to_text(df[status_col]).str.strip()
    mapping = {**{v: 1 for v in rule.positive}, **{v: 0 for v in rule.negative}}
    known = status.isna() | status.isin(list(mapping)) | status.isin(rule.open)
    if not known.all():
        unknown = sorted(status[~known].unique().tolist())
        raise DataContractError(
            table,
            status_col,
            f"unknown {status_col} values {unknown}: list each under the label rule's positive, negative "
            "or open values in the config",
            int((~known).sum()),
            example_rows(table, df, ~known, (status_col,)),
        )
    # The status column stays as an attribute: the leakage guard names and refuses it downstream.
    df[label_col] = pd.array(status.map(mapping), dtype="Int8")
    return df


def _exclude(table: str, df: pd.DataFrame, columns: list[str]) -> tuple[pd.DataFrame, list[ExcludedRows]]:
    excluded = []
    for name in columns:
        col = _match(table, list(df.columns), name, "exclude_rows_missing entry")
        if col is None:
            raise DataContractError(
                table,
                name,
                f"exclude_rows_missing names a column the table does not have; columns: {list(df.columns)}",
            )
        empty = df[col].isna()
        n = int(empty.sum())
        if n:
            reason = f"empty {col} (config exclude_rows_missing)"
            log.info("%s: excluded %d rows on purpose: %s", table, n, reason)
            excluded.append(ExcludedRows(table, reason, n))
            df = df.loc[~empty]
    return df, excluded


# ---------------------------------------------------------------------------------------------
# typing


def _raise_unparsed(table: str, df: pd.DataFrame, col: str, bad: pd.Series, rule: str) -> None:
    if bad.any():
        raise DataContractError(table, col, rule, int(bad.sum()), example_rows(table, df, bad, (col,)))


def _label(table: str, df: pd.DataFrame, col: str) -> pd.api.extensions.ExtensionArray:
    s = df[col]
    if isinstance(s.dtype, pd.Int8Dtype):
        return s.array
    num = to_numbers(s, booleans=True)
    bad = num.unparsed | num.non_finite | (num.values.notna() & ~num.values.isin([0.0, 1.0]))
    # Checked here, not only in validation: a value like 2.5 or "yes" cannot be held by Int8.
    _raise_unparsed(table, df, col, bad, RULE_LABEL)
    return pd.array(num.values, dtype="Int8")


def _contract_number(table: str, df: pd.DataFrame, col: str) -> pd.Series:
    num = to_numbers(df[col])
    _raise_unparsed(table, df, col, num.unparsed, RULE_NUMBER_PARSE)
    _raise_unparsed(table, df, col, num.non_finite, RULE_NUMBER_FINITE)
    return num.values


def _type_columns(
    table: str, df: pd.DataFrame, share: float, date_format: str | None
) -> tuple[pd.DataFrame, list[Repair]]:
    """Contract columns to their contract types, attributes inferred; contract columns first."""
    c = CONTRACT[table]
    out: dict[str, pd.Series | pd.api.extensions.ExtensionArray] = {}
    for col in [k for k in c.known_columns if k in df.columns]:
        if col in c.date_columns:
            dates = parse_dates(df[col], date_format, table=table)
            _raise_unparsed(table, df, col, dates.bad, dates.rule)
            out[col] = dates.values
        elif col in c.numeric_columns:
            out[col] = _contract_number(table, df, col)
        elif col in c.label_columns:
            out[col] = _label(table, df, col)
        elif col == c.id_column or col == "account_id":
            out[col] = to_id(df[col])
        else:  # contract text (activity_type)
            out[col] = to_text(df[col])
    repairs: list[Repair] = []
    for col in [k for k in df.columns if k not in out]:
        try:
            out[col], fixed = type_attribute(table, col, df[col], share, date_format)
        except ValueProblem as problem:
            _raise_unparsed(table, df, col, problem.bad, problem.rule)
            raise  # pragma: no cover - a problem always has bad cells
        repairs += fixed
    typed = pd.DataFrame(out, index=df.index)
    return typed.reset_index(drop=True), repairs


# ---------------------------------------------------------------------------------------------
# one table


def _prepare(table: str, raw: pd.DataFrame, derive: dict[str, str]) -> pd.DataFrame:
    """Names checked, blanks emptied, derived columns added: the table as read."""
    df = raw.copy()
    df.columns = [str(c) for c in df.columns]
    check_unique_names(table, list(df.columns), "the source")
    df = _blank_to_na(df)
    return derive_columns(table, df, derive) if derive else df


def _log_repairs(repairs: list[Repair]) -> None:
    for r in repairs:
        log.log(logging.WARNING if r.kind in _UNASKED else logging.INFO, "repaired %s", r.describe())


def load_table(
    table: str,
    raw: pd.DataFrame,
    cfg: TableConfig | None = None,
    *,
    numeric_share: float = 0.95,
    missing_values: Sequence[str] = (),
) -> LoadedTable:
    """Map one raw table onto the contract.

    Parameters
    ----------
    table : str
        Contract table name (``accounts``, ``leads``, ...).
    raw : pandas.DataFrame
        The table as read (CSV text, or typed Parquet / SQL / query columns).
    cfg : TableConfig, optional
        The table's mapping (rename, label, derive, ...); ``None`` maps nothing.
    numeric_share : float
        ``data.numeric_share``: share of values that must parse for an attribute to be numeric.
    missing_values : sequence of str
        ``data.missing_values`` (the table's own ``missing_values`` are added).

    Returns
    -------
    LoadedTable
        The typed frame (ids ``str``, dates ``datetime64[ns]``, numbers ``float64``, labels
        ``Int8``), dropped columns, excluded rows and repairs.

    Raises
    ------
    DataContractError
        A column or value breaks the contract; the message names table, column and rows.
    """
    loaded = _map_table(table, raw, cfg, numeric_share, missing_values)
    _log_repairs(loaded.repairs)
    return loaded


def _map_table(
    table: str, raw: pd.DataFrame, cfg: TableConfig | None, numeric_share: float, missing_values: Sequence[str]
) -> LoadedTable:
    """:func:`load_table` without logging the repairs (a chunked table logs them once, added up)."""
    cfg = cfg or TableConfig()
    df = _prepare(table, raw, {})
    df, repairs = _placeholders(table, df, [*missing_values, *cfg.missing_values])
    if cfg.derive:
        df = derive_columns(table, df, cfg.derive)
    df = _rename(table, df, cfg.rename)
    df, dropped = _drop(table, df, cfg.drop_columns, cfg.rename)
    df, fixed = _fix_values(table, df, cfg.values)
    if cfg.label is not None:
        df = _derive_label(table, df, cfg.label, cfg.rename)
    df = _match_contract_names(table, df)
    _check_case_clashes(table, df)
    check_required_columns(table, df.columns)
    df, excluded = _exclude(table, df, cfg.exclude_rows_missing)
    typed, inferred = _type_columns(table, df, numeric_share, cfg.date_format)
    repairs += fixed + inferred
    return LoadedTable(compact(table, typed), dropped, excluded, repairs)


# ---------------------------------------------------------------------------------------------
# large event tables: compact columns, chunked reading

#: Text columns held as pandas ``category`` once loaded: an activities table has tens of millions
#: of rows but few distinct accounts and types, and one text object per cell would not fit.
COMPACT_COLUMNS: dict[str, tuple[str, ...]] = {"activities": ("account_id", "activity_type")}

#: Rows per chunk when a table of :data:`COMPACT_COLUMNS` is read from one CSV file.
CHUNK_ROWS = 1_000_000


def compact(table: str, df: pd.DataFrame) -> pd.DataFrame:
    """The text columns of :data:`COMPACT_COLUMNS` as ``category`` (sorted categories); same values."""
    for col in COMPACT_COLUMNS.get(table, ()):
        if col in df.columns and not isinstance(df[col].dtype, pd.CategoricalDtype):
            df[col] = df[col].astype("category")
    return df


def _concat_compact(table: str, frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Chunks' frames as one, the compact columns re-coded onto one sorted set of categories.

    Column by column, each chunk's column freed once copied: the whole table is never held twice.
    """
    out: dict[str, object] = {}
    for col in list(frames[0].columns):
        parts = [f.pop(col) for f in frames]
        if col in COMPACT_COLUMNS.get(table, ()):
            out[col] = _union_categories(parts)
        else:
            out[col] = pd.concat(parts, ignore_index=True)
        del parts
    return pd.DataFrame(out, copy=False)


def _union_categories(parts: list[pd.Series]) -> pd.Series:
    """``category`` parts as one column whose categories are all their values, sorted."""
    known = [p.cat.categories for p in parts if len(p.cat.categories)]
    if not known or len({c.dtype for c in known}) > 1:  # nothing but empty cells, or mixed types
        return pd.concat([p.astype("str") for p in parts], ignore_index=True).astype("category")
    categories = known[0].append(known[1:]).unique().sort_values() if len(known) > 1 else known[0]
    codes = np.empty(sum(len(p) for p in parts), dtype=np.int32)
    at = 0
    for i, p in enumerate(parts):
        recode = np.append(categories.get_indexer(p.cat.categories), -1).astype(np.int32)
        codes[at : at + len(p)] = recode[p.cat.codes.to_numpy()]  # code -1 (empty) stays -1
        at += len(p)
        parts[i] = None  # type: ignore[call-overload]
    return pd.Series(pd.Categorical.from_codes(codes, categories=categories), copy=False)


def _merge_repairs(repairs: list[Repair], raw_columns: list[str], fixes: list[str]) -> list[Repair]:
    """Repairs of the same column and kind added up, ordered as a one-shot load orders them."""
    merged: dict[tuple[str, str], Repair] = {}
    for r in repairs:
        key = (r.column, r.kind)
        if key in merged:
            m = merged[key]
            detail = dict(m.detail)
            for value, n in r.detail.items():
                detail[value] = detail.get(value, 0) + n
            detail = dict(sorted(detail.items(), key=lambda kv: (-kv[1], kv[0])))
            merged[key] = Repair(r.table, r.column, r.kind, m.count + r.count, detail)
        else:
            merged[key] = r
    folded = [f.casefold() for f in fixes]

    def rank(r: Repair) -> tuple[int, int]:
        if r.kind == REPAIR_MISSING_VALUE and r.column in raw_columns:
            return 0, raw_columns.index(r.column)
        if r.kind == REPAIR_VALUE_FIX and r.column.casefold() in folded:
            return 1, folded.index(r.column.casefold())
        return 2, 0

    return sorted(merged.values(), key=rank)


def _position(order: list[str], item: str) -> int:
    return order.index(item) if item in order else len(order)


@contextmanager
def _quiet(on: bool) -> Iterator[None]:
    """Info logs of the mapping steps once, for the first chunk, not again for every chunk."""
    level = log.level
    if on:
        log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        log.setLevel(level)


def _chunks(reader: Reader, table: str, cfg: TableConfig) -> Iterator[pd.DataFrame] | None:
    if (
        table not in COMPACT_COLUMNS
        or not isinstance(reader, FolderReader)
        or cfg.sources is not None
        or cfg.date_format is not None
        or cfg.label is not None
    ):
        return None
    return reader.csv_chunks(table, cfg, CHUNK_ROWS)


def _load_chunked(reader: Reader, table: str, cfg: TableConfig, config: DataConfig) -> LoadedTable | None:
    """A large event table mapped chunk by chunk from one CSV file; ``None``: load it in one go.

    Every chunk goes through :func:`load_table`'s steps; repairs and exclusions are added up.
    Whatever a one-shot load would decide from the whole column (a date format, attribute types)
    or report as an error (counts and example rows over all rows) is left to the one-shot load:
    a table with attribute columns, a declared ``date_format``, a label rule, several sources, or
    any error is loaded in one go instead, so results and errors are the same either way.
    """
    chunks = _chunks(reader, table, cfg)
    if chunks is None:
        return None
    known = set(CONTRACT[table].known_columns)
    frames: list[pd.DataFrame] = []
    repairs: list[Repair] = []
    excluded: dict[str, int] = {}
    dropped: list[str] = []
    raw_columns: list[str] = []
    try:
        for i, raw in enumerate(chunks):
            if not len(raw):
                if i == 0:
                    return None  # an empty table: the one-shot path says so
                continue
            with _quiet(i > 0):
                part = _map_table(table, raw, cfg, config.numeric_share, config.missing_values)
            if not set(part.frame.columns) <= known:
                return None  # attribute columns are typed from all their values at once
            if i == 0:
                raw_columns = [str(c) for c in raw.columns]
            frames.append(part.frame)
            repairs += part.repairs
            dropped = part.dropped
            for e in part.excluded:
                excluded[e.reason] = excluded.get(e.reason, 0) + e.count
    except ICPKitError:
        return None  # the one-shot load raises the same error, counted over the whole table
    finally:
        chunks.close()
    if not frames:
        return None
    # In the config's order, as a one-shot load excludes them (a chunk may lack the first kind).
    order = [f"empty {c} (config exclude_rows_missing)".casefold() for c in cfg.exclude_rows_missing]
    excluded = dict(sorted(excluded.items(), key=lambda kv: _position(order, kv[0].casefold())))
    if len(frames) > 1:
        for reason, n in excluded.items():
            log.info("%s: excluded %d rows on purpose in all: %s", table, n, reason)
    merged = _merge_repairs(repairs, raw_columns, list(cfg.values))
    _log_repairs(merged)
    return LoadedTable(
        _concat_compact(table, frames),
        dropped,
        [ExcludedRows(table, reason, n) for reason, n in excluded.items()],
        merged,
    )


# ---------------------------------------------------------------------------------------------
# the whole CRM


def _read_sources(reader: Reader, table: str, sources: list[SourceConfig]) -> RawTable:
    """Several sources of one table, each derived and renamed on its own, then concatenated."""
    frames = []
    for i, src in enumerate(sources):
        raw = reader.read(table, src)
        where = f"data.tables.{table}.sources[{i}]"
        if raw is None:  # pragma: no cover - each source names a file or a query (config check)
            raise ICPKitError(f"table '{table}': {where} found nothing")
        if len(raw.frame) == 0:
            log.info("%s: %s (%s) is empty; nothing taken from it", table, where, raw.origin)
            continue
        frames.append(_rename(table, _prepare(table, raw.frame, src.derive), src.rename))
    if not frames:
        return RawTable(pd.DataFrame(), f"{len(sources)} sources")
    return RawTable(pd.concat(frames, ignore_index=True), f"{len(sources)} sources")


def _read(reader: Reader, table: str, cfg: TableConfig) -> RawTable | None:
    if cfg.sources is not None:
        return _read_sources(reader, table, cfg.sources)
    return reader.read(table, cfg)


def _missing_or_empty(table: str, raw: RawTable | None, source: str) -> bool:
    """True if the table is to be skipped; a missing or empty accounts table is an error."""
    if raw is not None and len(raw.frame):
        return False
    if table == "accounts":
        if raw is None:
            raise ICPKitError(
                mask_secrets(
                    f"the accounts table is required but was not found in {source} "
                    "(expected accounts.csv / accounts.parquet, or set data.tables.accounts.source)"
                )
            )
        raise DataContractError("accounts", None, f"the table is empty: {raw.origin} holds no rows")
    if raw is None:
        log.info("%s: no %s table in the source; skipping it (and outcomes that need it)", table, table)
    else:
        log.info("%s: %s holds no rows: the table is empty and treated as absent", table, raw.origin)
    return True


def load_crm(config: DataConfig, extract_date: date | pd.Timestamp) -> CRMData:
    """Read, map, type and validate every contract table of ``config.source``.

    Parameters
    ----------
    config : DataConfig
        Where the CRM lives and how its tables map onto the contract.
    extract_date : date or pandas.Timestamp
        The day the export was taken; later events are errors.

    Returns
    -------
    CRMData
        The contract tables, with exclusions, dropped columns and repairs.

    Raises
    ------
    ICPKitError
        A missing folder / database / accounts table, or a file that cannot be read.
    DataContractError
        Bad data, naming table, column and example rows.
    """
    extract = pd.Timestamp(extract_date)
    reader = open_reader(config.source, config.is_sql())
    loaded: dict[str, LoadedTable] = {}
    try:
        for name in TABLE_ORDER:
            cfg = config.tables.get(name) or TableConfig()
            chunked = _load_chunked(reader, name, cfg, config)
            if chunked is not None:
                loaded[name] = chunked
                log.info("%s: loaded %d rows, %d columns", name, len(chunked.frame), chunked.frame.shape[1])
                continue
            raw = _read(reader, name, cfg)
            if _missing_or_empty(name, raw, config.source):
                continue
            loaded[name] = load_table(
                name, raw.frame, cfg, numeric_share=config.numeric_share, missing_values=config.missing_values
            )
            log.info(
                "%s: loaded %d rows, %d columns", name, len(loaded[name].frame), loaded[name].frame.shape[1]
            )
    finally:
        reader.close()
    tables = {name: t.frame for name, t in loaded.items()}
    validate_crm(tables, extract)
    release_freed_memory()
    return CRMData(
        tables=tables,
        extract_date=extract,
        source=mask_secrets(config.source),
        excluded=[e for t in loaded.values() for e in t.excluded],
        dropped_columns={name: t.dropped for name, t in loaded.items() if t.dropped},
        repairs=[r for t in loaded.values() for r in t.repairs],
    )
