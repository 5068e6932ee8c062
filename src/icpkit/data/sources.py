"""Read raw tables: CSV / Parquet files of a folder, SQL tables, queries and derived columns.

A reader returns what the source holds, as it holds it (CSV as text, Parquet and SQL typed);
mapping and typing happen afterwards in :mod:`icpkit.data.loading`, the same for every source.
Any message that may contain a URL or a driver's error text goes through
:func:`icpkit.secrets.mask_secrets`.
"""

from __future__ import annotations

import codecs
import csv
import logging
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from icpkit.config import SourceConfig
from icpkit.data.values import parse_dates, to_numbers, to_text
from icpkit.errors import DataContractError, ICPKitError
from icpkit.secrets import mask_secrets

log = logging.getLogger(__name__)

FILE_SUFFIXES = (".csv", ".parquet")
#: A query must read, never write: one SELECT (``WITH ... SELECT`` included).
_SELECT = re.compile(r"^\s*(?:--[^\n]*\n\s*)*\(?\s*(select|with|from)\b", re.IGNORECASE)


@dataclass(frozen=True)
class RawTable:
    """One source's rows as read, and where they came from (for messages)."""

    frame: pd.DataFrame
    origin: str


def _fail(message: str) -> ICPKitError:
    return ICPKitError(mask_secrets(message))


def check_unique_names(table: str, names: list[str], origin: str) -> None:
    """Refuse a header that names a column twice (pandas would rename the second ``x.1``)."""
    seen: set[str] = set()
    dupes = [n for n in names if n in seen or seen.add(n)]  # type: ignore[func-returns-value]
    if dupes:
        raise DataContractError(
            table,
            str(dupes[0]),
            f"the column name appears more than once in {origin} (columns: {list(names)}); rename one in "
            "the export, or select the columns with a query",
        )


# ---------------------------------------------------------------------------------------------
# files


def _codec(encoding: str) -> str:
    # A UTF-8 byte-order mark (Excel writes one) must not end up in the first column's name.
    return "utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding


def _decode_error(table: str, path: Path, encoding: str) -> DataContractError:
    """Name the first line that does not decode, so the user can find it and set the encoding."""
    decoder = codecs.getincrementaldecoder(_codec(encoding))()
    where = "somewhere"
    for number, line in enumerate(path.read_bytes().splitlines(keepends=True), start=1):
        try:
            decoder.decode(line)
        except UnicodeDecodeError as err:
            at = err.start - (len(err.object) - len(line))  # the decoder may hold earlier bytes
            where = f"byte 0x{err.object[err.start]:02x} (byte {at + 1} of line {number})"
            break
    else:
        where = "the end of the file"  # a multi-byte character cut off by the last byte
    return DataContractError(
        table,
        None,
        f"{path.name} is not valid {encoding}: {where} cannot be decoded; set "
        f"data.tables.{table}.encoding to the file's encoding (e.g. latin-1 or cp1252)",
    )


def _csv_header(table: str, path: Path, encoding: str) -> list[str] | None:
    """The header row, checked for duplicate names; ``None`` for a 0-byte file."""
    with path.open(encoding=_codec(encoding), newline="") as fh:
        header = next(csv.reader(fh), None)
    if header is not None:
        check_unique_names(table, header, path.name)
    return header


def _read_text_csv(path: Path, encoding: str, chunksize: int | None = None) -> Any:
    """Every cell as text, only empty cells missing; a frame, or a reader of ``chunksize`` rows."""
    # index_col=False: rows longer than the header must not shift the header onto them.
    return pd.read_csv(
        path, dtype="str", keep_default_na=False, na_values=[""], encoding=_codec(encoding), index_col=False,
        chunksize=chunksize,
    )  # fmt: skip


def _parser_warned(caught: list[warnings.WarningMessage]) -> bool:
    return any(issubclass(w.category, pd.errors.ParserWarning) for w in caught)


def read_csv(table: str, path: Path, encoding: str) -> pd.DataFrame:
    """Every cell as text, only empty cells missing ("NA" or "null" may be real values)."""
    try:
        header = _csv_header(table, path, encoding)
        if header is None:  # a 0-byte file: a table with no columns and no rows
            return pd.DataFrame()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", pd.errors.ParserWarning)
            df = _read_text_csv(path, encoding)
        if _parser_warned(caught):
            _check_extra_cells(table, path, encoding, len(header))
        return df
    except UnicodeDecodeError:
        raise _decode_error(table, path, encoding) from None
    except (pd.errors.ParserError, csv.Error, OSError) as err:
        raise _fail(f"table '{table}': cannot read {path.name} as CSV: {err}") from None


def read_csv_chunks(table: str, path: Path, encoding: str, rows: int) -> Iterator[pd.DataFrame]:
    """:func:`read_csv` in frames of at most ``rows`` rows (a large table need not fit as text).

    The chunks concatenated are the frame :func:`read_csv` returns, with the same errors.
    """
    try:
        header = _csv_header(table, path, encoding)
        if header is None:
            yield pd.DataFrame()
            return
        checked = False
        with _read_text_csv(path, encoding, chunksize=rows) as reader:
            while True:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", pd.errors.ParserWarning)
                    try:
                        chunk = next(reader)
                    except StopIteration:
                        break
                if not checked and _parser_warned(caught):
                    _check_extra_cells(table, path, encoding, len(header))
                    checked = True
                yield chunk
    except UnicodeDecodeError:
        raise _decode_error(table, path, encoding) from None
    except (pd.errors.ParserError, csv.Error, OSError) as err:
        raise _fail(f"table '{table}': cannot read {path.name} as CSV: {err}") from None


def _check_extra_cells(table: str, path: Path, encoding: str, width: int) -> None:
    """Rows longer than the header: empty trailing cells (a trailing delimiter) are ignored, data is not."""
    with path.open(encoding=_codec(encoding), newline="") as fh:
        reader = csv.reader(fh)
        for row in reader:
            if len(row) > width and any(cell.strip() for cell in row[width:]):
                raise DataContractError(
                    table,
                    None,
                    f"{path.name}: line {reader.line_num} has {len(row)} cells but the header names {width} "
                    "columns; quote cells that contain the delimiter, or fix the header",
                )
    log.info("%s: %s has empty cells beyond its header (trailing delimiters); ignored", table, path.name)


def read_parquet(table: str, path: Path) -> pd.DataFrame:
    """Read one Parquet file as ``table``; unreadable files and duplicate column names are errors."""
    import pyarrow.parquet as pq

    try:
        check_unique_names(table, list(pq.read_schema(path).names), path.name)
        return pd.read_parquet(path)
    except (OSError, ValueError) as err:  # pyarrow's ArrowInvalid is a ValueError
        raise _fail(f"table '{table}': cannot read {path.name} as Parquet: {err}") from None


# ---------------------------------------------------------------------------------------------
# readers


class Reader:
    """Reads raw tables from one source; ``None`` means the table is not there."""

    def read(self, table: str, cfg: SourceConfig) -> RawTable | None:
        """Read ``table`` as ``cfg`` (file / SQL table name, or query) says; derive comes later."""
        return self._query(table, cfg.query) if cfg.query is not None else self._table(table, cfg)

    def _table(self, table: str, cfg: SourceConfig) -> RawTable | None:  # pragma: no cover
        raise NotImplementedError

    def _query(self, table: str, query: str) -> RawTable:  # pragma: no cover
        raise NotImplementedError

    def close(self) -> None:
        """Release the source's connections (nothing to release here)."""
        pass


class FolderReader(Reader):
    """A folder of CSV / Parquet files; queries run in DuckDB with the folder as base path."""

    def __init__(self, folder: Path) -> None:
        if not folder.is_dir():
            raise _fail(
                f"data source folder not found: {folder} (set data.source to a folder of CSV/Parquet "
                "files or a SQL URL such as sqlite:///crm.db)"
            )
        self.folder = folder
        self._duck = None

    def _path(self, table: str, cfg: SourceConfig) -> Path | None:
        if cfg.source:
            path = self.folder / cfg.source
            candidates = [path] if path.suffix else [path.with_suffix(s) for s in FILE_SUFFIXES]
            explicit = True
        else:
            candidates = [self.folder / f"{table}{s}" for s in FILE_SUFFIXES]
            explicit = False
        found = [p for p in candidates if p.is_file()]
        if len(found) > 1:
            raise _fail(
                f"table '{table}': both {found[0]} and {found[1]} exist; keep one, or name it with "
                f"data.tables.{table}.source in the config"
            )
        if not found and explicit:
            # A file the config names explicitly is expected to exist: a typo must not skip a table.
            raise _fail(f"table '{table}': data.tables.{table}.source file not found: {candidates[0]}")
        return found[0] if found else None

    def _table(self, table: str, cfg: SourceConfig) -> RawTable | None:
        path = self._path(table, cfg)
        if path is None:
            return None
        log.debug("reading %s from %s", table, path)
        if path.suffix == ".csv":
            return RawTable(read_csv(table, path, cfg.encoding), path.name)
        if path.suffix in (".parquet", ".pq"):
            return RawTable(read_parquet(table, path), path.name)
        raise _fail(f"table '{table}': cannot read {path} (use .csv or .parquet)")

    def csv_chunks(self, table: str, cfg: SourceConfig, rows: int) -> Iterator[pd.DataFrame] | None:
        """The table's CSV file in frames of at most ``rows`` rows; ``None`` if it is no CSV file."""
        if cfg.query is not None:
            return None
        path = self._path(table, cfg)
        if path is None or path.suffix != ".csv":
            return None
        log.debug("reading %s from %s in chunks of %d rows", table, path, rows)
        return read_csv_chunks(table, path, cfg.encoding, rows)

    def _query(self, table: str, query: str) -> RawTable:
        if self._duck is None:
            self._duck = duckdb_connection(self.folder)
        return run_duckdb(self._duck, table, query)

    def close(self) -> None:
        """Close the DuckDB connection queries opened, if any."""
        if self._duck is not None:
            self._duck.close()


class SQLReader(Reader):
    """Any SQLAlchemy database; a query runs in the database's own SQL dialect."""

    def __init__(self, url: str) -> None:
        import sqlalchemy as sa

        try:
            self.engine = sa.create_engine(url)
        except Exception as err:  # bad URL or missing driver: the user fixes the config
            raise _fail(f"cannot open database {url}: {err}") from None
        self.url = self.engine.url.render_as_string(hide_password=True)
        db = self.engine.url.database
        # SQLite and DuckDB silently create a missing file on connect; a typo must not read as empty.
        if self.engine.url.get_backend_name() in ("sqlite", "duckdb") and db and db != ":memory:":
            if db.startswith("file:") and self.engine.url.query.get("uri") == "true":
                db = db.removeprefix("file:").split("?", 1)[0]  # SQLite's URI form: file:path?mode=ro
            if not Path(db).is_file():
                raise _fail(f"database file not found: {db} (from data.source {self.url})")
        try:
            self.conn = self.engine.connect()
            self.tables = set(sa.inspect(self.conn).get_table_names())
        except Exception as err:
            self.engine.dispose()
            raise _fail(f"cannot connect to database {self.url}: {err}") from None

    def _table(self, table: str, cfg: SourceConfig) -> RawTable | None:
        name = cfg.source or table
        if name not in self.tables:
            if cfg.source:
                raise _fail(
                    f"table '{table}': data.tables.{table}.source table {name!r} not found in {self.url} "
                    f"(tables there: {sorted(self.tables)})"
                )
            return None
        return RawTable(self._select(table, name), f"SQL table {name!r}")

    def _select(self, table: str, name: str) -> pd.DataFrame:
        import sqlalchemy as sa

        try:
            # The reflected table types the values (SQLite stores booleans and dates as numbers
            # and text: its declared BOOLEAN / DATETIME columns come back as bool / datetime).
            reflected = sa.Table(name, sa.MetaData(), autoload_with=self.conn)
            return pd.read_sql_query(sa.select(reflected), self.conn)
        except Exception:  # some dialects cannot reflect (duckdb-engine): plain SELECT *
            self.conn.rollback()
        quoted = self.engine.dialect.identifier_preparer.quote(name)
        try:
            return pd.read_sql_query(sa.text(f"SELECT * FROM {quoted}"), self.conn)
        except Exception as err:
            raise _fail(f"table '{table}': cannot read SQL table {name!r} from {self.url}: {err}") from None

    def _query(self, table: str, query: str) -> RawTable:
        import sqlalchemy as sa

        if not _SELECT.match(query):
            raise _fail(f"table '{table}': data.tables.{table}.query must be a single SELECT")
        try:
            result = self.conn.execute(sa.text(query))
            names = [str(k) for k in result.keys()]
            check_unique_names(table, names, "the query result")
            frame = pd.DataFrame(result.fetchall(), columns=names)
        except ICPKitError:
            raise
        except Exception as err:
            self.conn.rollback()
            raise _fail(f"table '{table}': data.tables.{table}.query failed on {self.url}: {err}") from None
        return RawTable(frame, "the query")

    def close(self) -> None:
        """Close the connection and dispose of the engine."""
        self.conn.close()
        self.engine.dispose()


def open_reader(source: str, is_sql: bool) -> Reader:
    """The reader for ``source``: a database URL or a folder of files."""
    return SQLReader(source) if is_sql else FolderReader(Path(source))


# ---------------------------------------------------------------------------------------------
# DuckDB: queries and derived columns


def duckdb_connection(folder: Path | None = None):  # noqa: ANN201 - duckdb is imported lazily
    """An in-memory DuckDB whose relative file paths resolve from ``folder``.

    One thread: the row order of a query result (joins included) then repeats run after run,
    and the training split downstream depends on it.
    """
    import duckdb

    con = duckdb.connect(":memory:")
    con.execute("SET threads = 1")
    if folder is not None:
        path = str(folder.resolve()).replace("'", "''")
        con.execute(f"SET file_search_path = '{path}'")
    return con


def run_duckdb(con, table: str, query: str) -> RawTable:  # noqa: ANN001
    """Run one SELECT; the result keeps DuckDB's types (dates, numbers, booleans)."""
    import duckdb

    try:
        statements = con.extract_statements(query)
        if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
            raise _fail(f"table '{table}': data.tables.{table}.query must be a single SELECT statement")
        rel = con.sql(query)
        check_unique_names(table, list(rel.columns), "the query result")
        return RawTable(rel.df(), "the query")
    except duckdb.Error as err:
        raise _fail(f"table '{table}': data.tables.{table}.query failed: {_first_line(err)}") from None


def _sniff(s: pd.Series) -> pd.Series:
    """Text as the type its values all share, so SQL expressions can compute with it."""
    if not (isinstance(s.dtype, pd.StringDtype) or s.dtype == object):
        return s
    text = to_text(s)
    present = text.notna()
    if not present.any():
        return text
    lower = text.str.strip().str.lower()
    if lower[present].isin(["true", "false"]).all():
        return lower.map({"true": True, "false": False}).astype("boolean")
    num = to_numbers(text)
    # Leading zeros mean a code ("007"), not a number.
    if not (num.unparsed | num.non_finite).any() and not text.str.match(r"^\s*-?0\d").fillna(False).any():
        values = num.values
        whole = bool(((values % 1) == 0).fillna(True).all()) and values.abs().max() < 2**53
        return values.astype("Int64") if whole else values
    dates = parse_dates(text, lenient=False)
    if not dates.bad.any():
        return dates.values
    return text


def _first_line(err: Exception) -> str:
    # DuckDB appends long candidate lists to binder errors; the first line says what is wrong.
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def _derive_failure(con, table: str, derive: dict[str, str], err: Exception) -> ICPKitError:  # noqa: ANN001
    """Name the expression that fails (each is tried alone), with DuckDB's first line of error."""
    import duckdb

    name, expr, why = "", "", _first_line(err)
    for name, expr in derive.items():  # noqa: B007 - the failing pair is reported
        try:
            con.sql(f"SELECT ({expr}) FROM src LIMIT 0").fetchall()
        except duckdb.Error as one:
            why = _first_line(one)
            break
    return _fail(
        f"table '{table}': data.tables.{table}.derive.{name} ({expr!r}) failed: {why}. Columns whose "
        "values are not all numbers, true/false or ISO dates are text in SQL: cast them, e.g. "
        "TRY_CAST(col AS DOUBLE)"
    )


def derive_columns(table: str, frame: pd.DataFrame, derive: dict[str, str]) -> pd.DataFrame:
    """Add ``{column: DuckDB SQL expression}`` columns computed row by row over ``frame``.

    Expressions see the columns as read; text columns whose values are all numbers, booleans or
    ISO dates are offered to SQL typed, so ``arr_amount * 0.1`` or ``start_date + INTERVAL 1 MONTH``
    work on CSV text. An existing column of the same name is replaced (and logged).
    """
    import duckdb

    frame = frame.reset_index(drop=True)
    if not len(frame.columns):
        raise _fail(f"table '{table}': data.tables.{table}.derive needs a table with columns")
    typed = pd.DataFrame({c: _sniff(frame[c]) for c in frame.columns})
    select = ", ".join(f'({expr}) AS "{name.replace(chr(34), chr(34) * 2)}"' for name, expr in derive.items())
    con = duckdb_connection()
    try:
        con.register("src", typed)
        out = con.sql(f"SELECT {select} FROM src").df()
    except duckdb.Error as err:
        raise _derive_failure(con, table, derive, err) from None
    finally:
        con.close()
    if len(out) != len(frame):
        raise _fail(
            f"table '{table}': data.tables.{table}.derive must compute one value per row "
            f"(got {len(out)} rows for {len(frame)}); aggregates belong in a query"
        )
    replaced = [c for c in derive if c in frame.columns]
    if replaced:
        log.info("%s: derive replaces source columns %s", table, replaced)
    for name in derive:
        frame[name] = out[name].to_numpy()
    return frame
