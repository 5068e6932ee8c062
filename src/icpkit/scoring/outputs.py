"""Write a scoring run's tables: atomically, reproducibly, to a folder or a SQL database.

* **Folder** (default ``outputs/scores``): ``<root>/<date>/<table>.parquet`` and ``.csv`` per
  table, written into a temporary sibling folder that is renamed into place
  (:func:`icpkit.atomic.atomic_directory`), so a killed run leaves the previous output intact
  and no partial file in it. Leftovers of a killed run (hidden ``.<date>.*`` siblings) are
  removed by the next write. The history is ``<root>/history.parquet``.
* **SQL** (``sqlite:///crm.db``, any SQLAlchemy URL): every table is written to a staging table
  first; one transaction then swaps all of them in (drop old, rename staging) and updates the
  history table, so a CRM sync sees the old run or the new run, never a mix.

Files hold no wall-clock time: the same tables give byte-identical files.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from icpkit.atomic import atomic_directory
from icpkit.scoring.history import (
    append_history_sql,
    merge_history,
    previous_run,
    read_history_file,
    read_previous_sql,
    write_history_file,
)
from icpkit.secrets import mask_secrets

log = logging.getLogger(__name__)

__all__ = [
    "FORMATS",
    "HISTORY_FILE",
    "TABLES",
    "Destination",
    "FolderDestination",
    "RunOutput",
    "SQLDestination",
    "open_destination",
    "stamp",
    "version_label",
]

TABLES = ("accounts", "open_leads", "open_opportunities", "renewals_due", "rejected", "tier_changes")
FORMATS = ("parquet", "csv")
HISTORY_FILE = "history.parquet"
HISTORY_TABLE = "score_history"
#: Called after each file (folder) or table (SQL swap) is written; tests use it to interrupt.
OnWritten = Callable[[str], None]


@dataclass
class RunOutput:
    """Everything one run writes: its tables (already stamped) and its history rows."""

    scoring_date: dt.date
    tables: dict[str, pd.DataFrame]
    history_rows: pd.DataFrame


class Destination(Protocol):
    """Where a run's tables and history go."""

    def previous_scores(self, scoring_date: dt.date) -> pd.DataFrame:
        """The rows of the latest run strictly before ``scoring_date`` (empty when there is none)."""
        ...

    def write(self, run: RunOutput, on_written: OnWritten | None = None) -> str:
        """Write the run's tables and history; returns where they went."""
        ...


def version_label(versions: Mapping[str, str]) -> str:
    """``{"icp-win": "3", "icp-scorer": "5"}`` -> ``"icp-scorer=5, icp-win=3"`` (sorted)."""
    return ", ".join(f"{name}={versions[name]}" for name in sorted(versions))


def stamp(frame: pd.DataFrame, scoring_date: dt.date, versions: Mapping[str, str]) -> pd.DataFrame:
    """The frame with ``scoring_date`` (ISO text) and ``model_versions`` as its last columns.

    Parameters
    ----------
    frame
        An output table.
    scoring_date
        The run's date.
    versions
        Registered model name -> version used for this table.

    Returns
    -------
    pandas.DataFrame
        A copy; list-valued cells (reasons) are joined into text so every format can hold them.
    """
    out = _flat(frame.drop(columns=[c for c in ("scoring_date", "model_versions") if c in frame]))
    out["scoring_date"] = pd.Series(scoring_date.isoformat(), index=out.index, dtype="str")
    out["model_versions"] = pd.Series(version_label(versions), index=out.index, dtype="str")
    return out


def open_destination(target: str | Path, sql_table_prefix: str = "icp_") -> Destination:
    """A folder destination, or a SQL one when ``target`` is a URL (``sqlite:///crm.db``)."""
    if "://" in str(target):
        return SQLDestination(str(target), sql_table_prefix)
    return FolderDestination(Path(target))


# ---------------------------------------------------------------------------------------------
# folder


class FolderDestination:
    """``<root>/<date>/<table>.{parquet,csv}`` and ``<root>/history.parquet``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @property
    def history_path(self) -> Path:
        """The history file under the root folder."""
        return self.root / HISTORY_FILE

    def previous_scores(self, scoring_date: dt.date) -> pd.DataFrame:
        """The rows of the latest run before ``scoring_date`` in the history file."""
        return previous_run(read_history_file(self.history_path), scoring_date)

    def write(self, run: RunOutput, on_written: OnWritten | None = None) -> str:
        """Write the dated folder atomically, then the history (a rerun repeats both exactly).

        Returns
        -------
        str
            The dated folder.
        """
        folder = self.root / run.scoring_date.isoformat()
        _sweep_leftovers(folder)
        with atomic_directory(folder) as tmp:
            for name, frame in run.tables.items():
                for fmt in FORMATS:
                    _write_file(frame, tmp / f"{name}.{fmt}")
                    if on_written is not None:
                        on_written(f"{name}.{fmt}")
        history = merge_history(read_history_file(self.history_path), run.history_rows)
        write_history_file(history, self.history_path)
        log.info("scores written to %s", folder)
        return str(folder)


def _write_file(frame: pd.DataFrame, path: Path) -> None:
    if path.suffix == ".csv":
        frame.to_csv(path, index=False, lineterminator="\n")
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)


def _sweep_leftovers(folder: Path) -> None:
    """Remove what a killed write left beside ``folder``; put back a folder moved aside.

    ``atomic_directory`` fills ``.<name>.<random>`` and moves the old folder to
    ``.<name>.old-<pid>`` for the instant of the swap. A kill inside that instant would leave
    the previous output only under the ``old`` name: it is restored, not deleted.
    """
    if not folder.parent.is_dir():
        return
    prefix = f".{folder.name}."
    for leftover in sorted(folder.parent.glob(f"{prefix}*")):
        if not leftover.is_dir():
            continue
        if leftover.name.startswith(f"{prefix}old-") and not folder.exists():
            leftover.rename(folder)
            log.warning("restored %s, moved aside by an interrupted run", folder)
            continue
        shutil.rmtree(leftover, ignore_errors=True)
        log.info("removed %s, left by an interrupted run", leftover)
    for tmp in folder.parent.glob(f".{HISTORY_FILE}.*.tmp"):
        tmp.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------
# SQL


class SQLDestination:
    """Tables ``<prefix><table>`` and ``<prefix>score_history`` of a SQL database."""

    def __init__(self, url: str, prefix: str = "icp_") -> None:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", prefix):
            raise ValueError(f"SQL table prefix must be a plain identifier, got {prefix!r}")
        self.url = url
        self.prefix = prefix

    @property
    def history_table(self) -> str:
        """The name of the history table (with the prefix)."""
        return f"{self.prefix}{HISTORY_TABLE}"

    def previous_scores(self, scoring_date: dt.date) -> pd.DataFrame:
        """The rows of the latest run before ``scoring_date`` in the history table."""
        engine = _engine(self.url)
        try:
            with engine.connect() as conn:
                return read_previous_sql(conn, self.history_table, scoring_date)
        finally:
            engine.dispose()

    def write(self, run: RunOutput, on_written: OnWritten | None = None) -> str:
        """Stage every table, then swap them all and update the history in one transaction."""
        from sqlalchemy import text

        engine = _engine(self.url)
        staged = {name: f"{self.prefix}{name}__staging" for name in run.tables}
        try:
            with engine.begin() as conn:
                for name, frame in run.tables.items():
                    frame.to_sql(staged[name], conn, if_exists="replace", index=False)
            with engine.begin() as conn:
                for name, staging in staged.items():
                    final = f"{self.prefix}{name}"
                    conn.execute(text(f'DROP TABLE IF EXISTS "{final}"'))
                    conn.execute(text(f'ALTER TABLE "{staging}" RENAME TO "{final}"'))
                    if on_written is not None:
                        on_written(final)
                append_history_sql(conn, self.history_table, run.history_rows)
        finally:
            engine.dispose()
        where = mask_secrets(self.url)
        log.info("scores written to %s (tables %s*)", where, self.prefix)
        return where


def _engine(url: str) -> Any:
    """A SQLAlchemy engine whose transactions also cover DDL (pysqlite needs explicit BEGIN)."""
    from sqlalchemy import create_engine, event

    engine = create_engine(url)
    if engine.dialect.name == "sqlite":
        # Python's sqlite3 commits DDL outside any transaction by default; SQLAlchemy's documented
        # recipe hands transaction control back so the swap below is all-or-nothing.
        @event.listens_for(engine, "connect")
        def _no_autobegin(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN")

    return engine


# ---------------------------------------------------------------------------------------------
# cells


def _flat(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy whose list / tuple / array cells are joined with "; " (Parquet, CSV and SQL agree)."""
    out = frame.copy()
    out.columns = [str(c) for c in out.columns]
    for col in out.columns:
        s = out[col]
        if s.dtype == object and s.map(_is_sequence).any():
            out[col] = s.map(_join_cell).astype("str")
    return out


def _is_sequence(v: Any) -> bool:
    return isinstance(v, list | tuple | np.ndarray)


def _join_cell(v: Any) -> Any:
    if _is_sequence(v):
        return "; ".join(str(x) for x in list(v))
    return v
