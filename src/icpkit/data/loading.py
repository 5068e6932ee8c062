"""Load a CRM export (CSV / Parquet folder or SQL database) onto the data contract.

Whatever the source, every table goes through the same steps: read, rename (source ->
contract), drop configured columns, fix known bad values, derive the label from a status column,
exclude rows on purpose (counted and reported), then type the columns the same way. Because the
typing starts from the values rather than from the storage format, CSV, Parquet, SQLite and
DuckDB holding the same data give identical frames.
"""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path

import pandas as pd

from icpkit.config import DataConfig, LabelRule, TableConfig
from icpkit.data.contract import CONTRACT, LABEL_COLUMN, TABLE_ORDER
from icpkit.data.crm import CRMData, ExcludedRows
from icpkit.data.validation import (
    RULE_DATE_PARSE,
    RULE_LABEL,
    RULE_NUMBER_PARSE,
    check_required_columns,
    example_rows,
    parse_dates,
    validate_crm,
)
from icpkit.errors import DataContractError, ICPKitError

log = logging.getLogger(__name__)

FILE_SUFFIXES = (".csv", ".parquet")
_TRUE_FALSE = {"true": 1.0, "false": 0.0}


# ---------------------------------------------------------------------------------------------
# reading


class _Reader:
    """Reads raw tables from one source; ``None`` means the table is not there."""

    def read(self, table: str, cfg: TableConfig) -> pd.DataFrame | None:  # pragma: no cover
        raise NotImplementedError

    def close(self) -> None:
        pass


class _FolderReader(_Reader):
    def __init__(self, folder: Path) -> None:
        if not folder.is_dir():
            raise ICPKitError(
                f"data source folder not found: {folder} (set data.source to a folder of CSV/Parquet "
                "files or a SQL URL such as sqlite:///crm.db)"
            )
        self.folder = folder

    def _path(self, table: str, cfg: TableConfig) -> Path | None:
        if cfg.source:
            path = self.folder / cfg.source
            candidates = [path] if path.suffix else [path.with_suffix(s) for s in FILE_SUFFIXES]
            explicit = True
        else:
            candidates = [self.folder / f"{table}{s}" for s in FILE_SUFFIXES]
            explicit = False
        found = [p for p in candidates if p.is_file()]
        if len(found) > 1:
            raise ICPKitError(
                f"table '{table}': both {found[0]} and {found[1]} exist; keep one, or name it with "
                f"data.tables.{table}.source in the config"
            )
        if not found and explicit:
            # A file the config names explicitly is expected to exist: a typo must not skip a table.
            raise ICPKitError(f"table '{table}': data.tables.{table}.source file not found: {candidates[0]}")
        return found[0] if found else None

    def read(self, table: str, cfg: TableConfig) -> pd.DataFrame | None:
        path = self._path(table, cfg)
        if path is None:
            return None
        log.debug("reading %s from %s", table, path)
        if path.suffix == ".csv":
            # Everything as text, only empty cells missing: "NA" or "null" may be real values, and
            # typing later treats CSV text exactly like the typed values of Parquet or SQL.
            return pd.read_csv(path, dtype="str", keep_default_na=False, na_values=[""])
        if path.suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        raise ICPKitError(f"table '{table}': cannot read {path} (use .csv or .parquet)")


class _SQLReader(_Reader):
    def __init__(self, url: str) -> None:
        import sqlalchemy as sa

        try:
            self.engine = sa.create_engine(url)
        except Exception as err:  # bad URL or missing driver: the user fixes the config
            raise ICPKitError(f"cannot open database {url}: {err}") from None
        self.url = self.engine.url.render_as_string(hide_password=True)
        db = self.engine.url.database
        # SQLite and DuckDB silently create a missing file on connect; a typo must not read as empty.
        if self.engine.url.get_backend_name() in ("sqlite", "duckdb") and db and db != ":memory:":
            if not Path(db).is_file():
                raise ICPKitError(f"database file not found: {db} (from data.source {self.url})")
        try:
            self.conn = self.engine.connect()
            self.tables = set(sa.inspect(self.conn).get_table_names())
        except Exception as err:
            self.engine.dispose()
            raise ICPKitError(f"cannot connect to database {self.url}: {err}") from None

    def read(self, table: str, cfg: TableConfig) -> pd.DataFrame | None:
        import sqlalchemy as sa

        name = cfg.source or table
        if name not in self.tables:
            if cfg.source:
                raise ICPKitError(
                    f"table '{table}': data.tables.{table}.source table {name!r} not found in {self.url} "
                    f"(tables there: {sorted(self.tables)})"
                )
            return None
        quoted = self.engine.dialect.identifier_preparer.quote(name)
        return pd.read_sql_query(sa.text(f"SELECT * FROM {quoted}"), self.conn)

    def close(self) -> None:
        self.conn.close()
        self.engine.dispose()


# ---------------------------------------------------------------------------------------------
# value normalisation (format-independent)


def _blank_to_na(df: pd.DataFrame) -> pd.DataFrame:
    """Whitespace-only text cells are empty cells, whatever the file format."""
    for col in df.columns:
        s = df[col]
        if isinstance(s.dtype, pd.StringDtype):
            blank = s.str.strip().eq("").fillna(False).astype(bool)
        elif s.dtype == object:
            blank = s.map(lambda v: isinstance(v, str) and not v.strip(), na_action="ignore")
            blank = blank.fillna(False).astype(bool)
        else:
            continue
        if blank.any():
            df[col] = s.mask(blank)
    return df


def _to_text(s: pd.Series) -> pd.Series:
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
            lambda v: v if isinstance(v, str) else _num_text(v) if _is_number(v) else str(v),
            na_action="ignore",
        )
    return out.astype("str")


def _to_id(s: pd.Series) -> pd.Series:
    """Ids as text; "17.0" (a whole-number id that went through a float column) becomes "17"."""
    text = _to_text(s)
    return text.str.replace(r"^(-?\d+)\.0+$", r"\1", regex=True).astype("str")


def _is_number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) or type(v).__name__ == "Decimal"


def _num_text(v: object) -> str:
    f = float(v)  # type: ignore[arg-type]
    return str(int(f)) if f.is_integer() else repr(f)


def _to_float(s: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Numbers as float64 (bools as 0/1); also return the mask of non-empty unparseable cells."""
    if pd.api.types.is_bool_dtype(s.dtype):
        return s.astype("float64"), pd.Series(False, index=s.index)
    if pd.api.types.is_numeric_dtype(s.dtype):
        return s.astype("float64"), pd.Series(False, index=s.index)
    text = _to_text(s).str.strip()
    lower = text.str.lower()
    out = pd.to_numeric(text, errors="coerce").astype("float64")
    out = out.mask(lower.isin(list(_TRUE_FALSE)), lower.map(_TRUE_FALSE))
    return out.astype("float64"), out.isna() & s.notna()


def _attribute(s: pd.Series) -> pd.Series:
    """Attribute columns: numbers and true/false become float64, everything else text."""
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        return _to_text(s)
    num, bad = _to_float(s)
    if not bad.any():
        return num
    return _to_text(s)


# ---------------------------------------------------------------------------------------------
# per-table steps


def _rename(table: str, df: pd.DataFrame, rename: dict[str, str]) -> pd.DataFrame:
    for src, dst in rename.items():
        if src not in df.columns:
            log.warning("%s: rename %r -> %r: the table has no column %r", table, src, dst, src)
        elif dst in df.columns and dst != src and dst not in rename:
            raise DataContractError(
                table, dst, f"rename maps {src!r} onto {dst!r}, but the table already has a column {dst!r}"
            )
    return df.rename(columns=rename)


def _drop(
    table: str, df: pd.DataFrame, drop: list[str], rename: dict[str, str]
) -> tuple[pd.DataFrame, list[str]]:
    # Accept the source name or the contract name, so either spelling in the config works.
    wanted = {rename.get(c, c) for c in drop}
    dropped = [c for c in df.columns if c in wanted]
    missing = sorted(wanted - set(dropped))
    if missing:
        log.warning("%s: drop_columns %s not in the table", table, missing)
    if dropped:
        log.info("%s: dropped columns %s (config drop_columns)", table, dropped)
    return df.drop(columns=dropped), dropped


def _fix_values(table: str, df: pd.DataFrame, fixes: dict[str, dict[str, str]]) -> pd.DataFrame:
    for col, mapping in fixes.items():
        if col not in df.columns:
            raise DataContractError(
                table,
                col,
                f"config values names a column the table does not have; columns: {list(df.columns)}",
            )
        text = _to_text(df[col])
        hit = text.isin(list(mapping))
        if hit.any():
            log.info("%s.%s: fixed %d values %s", table, col, int(hit.sum()), dict(mapping))
            df[col] = text.mask(hit, text.map(mapping)).astype("str")
    return df


def _derive_label(table: str, df: pd.DataFrame, rule: LabelRule, rename: dict[str, str]) -> pd.DataFrame:
    label_col = LABEL_COLUMN.get(table)
    if label_col is None:
        raise DataContractError(
            table, rule.column, "this table has no label; remove its label rule from the config"
        )
    status_col = rule.column if rule.column in df.columns else rename.get(rule.column, rule.column)
    if status_col not in df.columns:
        raise DataContractError(
            table,
            rule.column,
            f"the label rule's status column is not in the table; columns: {list(df.columns)}",
        )
    if label_col in df.columns and label_col != status_col:
        raise DataContractError(
            table,
            label_col,
            f"the table already has a {label_col!r} column and the config derives one from {status_col!r}; "
            "drop one of them",
        )
    status = _to_text(df[status_col]).str.strip()
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
    for col in columns:
        if col not in df.columns:
            raise DataContractError(
                table,
                col,
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


def _raise_unparsed(table: str, df: pd.DataFrame, col: str, bad: pd.Series, rule: str) -> None:
    if bad.any():
        raise DataContractError(table, col, rule, int(bad.sum()), example_rows(table, df, bad, (col,)))


def _label(table: str, df: pd.DataFrame, col: str) -> pd.Series:
    s = df[col]
    if isinstance(s.dtype, pd.Int8Dtype):
        return s
    num, bad = _to_float(s)
    bad = bad | (num.notna() & ~num.isin([0.0, 1.0]))
    # Checked here, not only in validation: a value like 2.5 or "yes" cannot be held by Int8.
    _raise_unparsed(table, df, col, bad, RULE_LABEL)
    return pd.array(num, dtype="Int8")  # type: ignore[return-value]


def _type_columns(table: str, df: pd.DataFrame) -> pd.DataFrame:
    """Contract columns to their contract types, attributes inferred; contract columns first."""
    c = CONTRACT[table]
    out: dict[str, pd.Series | pd.api.extensions.ExtensionArray] = {}
    for col in c.known_columns:
        if col not in df.columns:
            continue
        if col in c.date_columns:
            out[col], bad = parse_dates(df[col])
            _raise_unparsed(table, df, col, bad, RULE_DATE_PARSE)
        elif col in c.numeric_columns:
            out[col], bad = _to_float(df[col])
            _raise_unparsed(table, df, col, bad, RULE_NUMBER_PARSE)
        elif col in c.label_columns:
            out[col] = _label(table, df, col)
        elif col == c.id_column or col == "account_id":
            out[col] = _to_id(df[col])
        else:  # contract text (activity_type)
            out[col] = _to_text(df[col])
    for col in df.columns:
        if col not in out:
            out[col] = _attribute(df[col])
    typed = pd.DataFrame(out, index=df.index)
    return typed.reset_index(drop=True)


def load_table(
    table: str, raw: pd.DataFrame, cfg: TableConfig
) -> tuple[pd.DataFrame, list[str], list[ExcludedRows]]:
    """Map one raw table onto the contract: returns the typed frame, dropped columns and exclusions."""
    df = _blank_to_na(raw.copy())
    dupes = df.columns[df.columns.duplicated()].tolist()
    if dupes:
        raise DataContractError(table, dupes[0], "the column name appears more than once in the source")
    df = _rename(table, df, cfg.rename)
    df, dropped = _drop(table, df, cfg.drop_columns, cfg.rename)
    df = _fix_values(table, df, cfg.values)
    if cfg.label is not None:
        df = _derive_label(table, df, cfg.label, cfg.rename)
    check_required_columns(table, df.columns)
    df, excluded = _exclude(table, df, cfg.exclude_rows_missing)
    return _type_columns(table, df), dropped, excluded


def _open(source: str, is_sql: bool) -> _Reader:
    return _SQLReader(source) if is_sql else _FolderReader(Path(source))


def load_crm(config: DataConfig, extract_date: date | pd.Timestamp) -> CRMData:
    """Read, map, type and validate every contract table of ``config.source``.

    Raises :class:`ICPKitError` for a missing folder / database and a missing accounts table,
    and :class:`DataContractError` naming table, column and example rows for bad data.
    """
    extract = pd.Timestamp(extract_date)
    reader = _open(config.source, config.is_sql())
    tables: dict[str, pd.DataFrame] = {}
    excluded: list[ExcludedRows] = []
    dropped: dict[str, list[str]] = {}
    try:
        for name in TABLE_ORDER:
            cfg = config.tables.get(name) or TableConfig()
            raw = reader.read(name, cfg)
            if raw is None:
                if name == "accounts":
                    raise ICPKitError(
                        f"the accounts table is required but was not found in {config.source} "
                        "(expected accounts.csv / accounts.parquet, or set data.tables.accounts.source)"
                    )
                log.info("%s: no %s table in the source; skipping it (and outcomes that need it)", name, name)
                continue
            df, cols, ex = load_table(name, raw, cfg)
            tables[name] = df
            excluded += ex
            if cols:
                dropped[name] = cols
            log.info("%s: loaded %d rows, %d columns", name, len(df), df.shape[1])
    finally:
        reader.close()
    validate_crm(tables, extract)
    return CRMData(
        tables=tables, extract_date=extract, source=config.source, excluded=excluded, dropped_columns=dropped
    )
