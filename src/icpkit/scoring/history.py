"""Score history: every run's account scores, kept so tier changes between runs can be listed.

The history holds one row per account and scoring date (``account_id``, ``scoring_date``,
``fit_score``, ``tier``, ``model_versions``). Re-running a date replaces that date's rows, so a
rerun neither duplicates the history nor changes what it reports. It lives in a Parquet file
next to the dated output folders (rewritten atomically) or in a SQL table.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from pathlib import Path
from typing import Any

import pandas as pd

log = logging.getLogger(__name__)

__all__ = [
    "HISTORY_COLUMNS",
    "TIER_CHANGE_COLUMNS",
    "append_history_sql",
    "history_rows",
    "merge_history",
    "previous_run",
    "read_history_file",
    "read_previous_sql",
    "tier_changes",
    "write_history_file",
]

HISTORY_COLUMNS = ["account_id", "scoring_date", "fit_score", "tier", "model_versions"]
TIER_CHANGE_COLUMNS = [
    "account_id",
    "previous_scoring_date",
    "previous_tier",
    "tier",
    "previous_fit_score",
    "fit_score",
]
_TYPES = {
    "account_id": "str",
    "scoring_date": "str",
    "fit_score": "float64",
    "tier": "str",
    "model_versions": "str",
}


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    return df[HISTORY_COLUMNS].astype(_TYPES).reset_index(drop=True)


def _empty_history() -> pd.DataFrame:
    return _typed(pd.DataFrame({c: pd.Series([], dtype=t) for c, t in _TYPES.items()}))


def history_rows(accounts: pd.DataFrame, scoring_date: dt.date, model_versions: str) -> pd.DataFrame:
    """The current run's history rows, from the scored accounts (after overrides).

    Parameters
    ----------
    accounts
        Scored accounts with ``account_id``, ``fit_score`` and ``tier``.
    scoring_date
        The run's date.
    model_versions
        The run's model versions as text (``icp-scorer=3``).

    Returns
    -------
    pandas.DataFrame
        :data:`HISTORY_COLUMNS`, one row per account in input order.
    """
    out = pd.DataFrame(
        {
            "account_id": accounts["account_id"],
            "scoring_date": scoring_date.isoformat(),
            "fit_score": pd.to_numeric(accounts["fit_score"], errors="coerce"),
            "tier": accounts["tier"],
            "model_versions": model_versions,
        }
    )
    return _typed(out)


def merge_history(history: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """The history with ``rows`` added; rows of the same scoring date are replaced.

    Dates stay in ascending order (a back-filled date is inserted, not appended).
    """
    dates = set(rows["scoring_date"])
    kept = history.loc[~history["scoring_date"].isin(dates)]
    merged = pd.concat([_typed(kept), _typed(rows)], ignore_index=True) if len(kept) else _typed(rows)
    return merged.sort_values("scoring_date", kind="stable").reset_index(drop=True)


def previous_run(history: pd.DataFrame, scoring_date: dt.date) -> pd.DataFrame:
    """The rows of the latest run strictly before ``scoring_date`` (empty when there is none)."""
    earlier = history.loc[history["scoring_date"] < scoring_date.isoformat()]
    if earlier.empty:
        return _empty_history()
    return _typed(earlier.loc[earlier["scoring_date"] == earlier["scoring_date"].max()])


def tier_changes(previous: pd.DataFrame, current: pd.DataFrame) -> pd.DataFrame:
    """Accounts in both runs whose tier differs, in the current run's order.

    Accounts new in this run, or gone since the previous one, are not tier changes.

    Parameters
    ----------
    previous, current
        History rows of the previous run and of this run.

    Returns
    -------
    pandas.DataFrame
        :data:`TIER_CHANGE_COLUMNS`.
    """
    prev = previous[["account_id", "scoring_date", "tier", "fit_score"]].rename(
        columns={
            "scoring_date": "previous_scoring_date",
            "tier": "previous_tier",
            "fit_score": "previous_fit_score",
        }
    )
    both = current[["account_id", "tier", "fit_score"]].merge(prev, on="account_id", how="inner", sort=False)
    changed = both.loc[both["tier"].astype("str") != both["previous_tier"].astype("str")]
    return changed[TIER_CHANGE_COLUMNS].reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# Parquet file


def read_history_file(path: str | Path) -> pd.DataFrame:
    """The whole history file (empty when it does not exist yet)."""
    path = Path(path)
    if not path.is_file():
        return _empty_history()
    return _typed(pd.read_parquet(path))


def write_history_file(history: pd.DataFrame, path: str | Path) -> None:
    """Write the history atomically: a temporary sibling file renamed over the old one."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        pq.write_table(pa.Table.from_pandas(_typed(history), preserve_index=False), tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    log.info("score history: %s (%d rows)", path, len(history))


# ---------------------------------------------------------------------------------------------
# SQL table (inside the caller's transaction)


def read_previous_sql(conn: Any, table: str, scoring_date: dt.date) -> pd.DataFrame:
    """The latest run before ``scoring_date`` from a SQL history table (empty if it does not exist)."""
    from sqlalchemy import inspect, text

    if not inspect(conn).has_table(table):
        return _empty_history()
    latest = f'SELECT MAX(scoring_date) FROM "{table}" WHERE scoring_date < :d'
    q = f'SELECT * FROM "{table}" WHERE scoring_date = ({latest})'
    return _typed(pd.read_sql(text(q), conn, params={"d": scoring_date.isoformat()}))


def append_history_sql(conn: Any, table: str, rows: pd.DataFrame) -> None:
    """Replace this run's date in the SQL history table with ``rows`` (created on first use)."""
    from sqlalchemy import inspect, text

    if inspect(conn).has_table(table):
        for d in sorted(set(rows["scoring_date"])):
            conn.execute(text(f'DELETE FROM "{table}" WHERE scoring_date = :d'), {"d": d})
    _typed(rows).to_sql(table, conn, if_exists="append", index=False)
