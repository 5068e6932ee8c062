"""What a scoring run scores, taken from the loaded CRM: accounts, and the open pipeline.

* every **account**, with its engagement as of the scoring date;
* every **open lead** (``converted`` empty);
* every **open opportunity** (``won`` empty and no ``closed_at``), later with its expected value
  = win propensity x ``amount``;
* every **subscription term due for renewal**: ``renewed`` empty and ``end_date`` within
  ``[scoring date, scoring date + horizon]``.

Entity rows go to their outcome model in contract form, joined with their account's attributes
and with engagement counted strictly before the row's as-of time, exactly as training built them.
All functions are pure: frames in, frames out.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from icpkit.features import engagement_features

log = logging.getLogger(__name__)

__all__ = [
    "ENTITY_TABLES",
    "EntityKind",
    "account_frame",
    "entities_to_score",
    "entity_frame",
    "expected_value",
    "open_leads",
    "open_opportunities",
    "renewals_due",
]


@dataclass(frozen=True)
class EntityKind:
    """An entity table to score: its output name, source table, id, as-of column and outcomes."""

    output: str
    table: str
    id_column: str
    as_of_column: str
    outcomes: tuple[str, ...]


#: Output table -> its source table, id, as-of column (as in training) and scoring outcomes.
ENTITY_TABLES: dict[str, EntityKind] = {
    "open_leads": EntityKind("open_leads", "leads", "lead_id", "created_at", ("conversion",)),
    "open_opportunities": EntityKind(
        "open_opportunities", "opportunities", "opportunity_id", "created_at", ("win",)
    ),
    "renewals_due": EntityKind(
        "renewals_due", "subscriptions", "subscription_id", "start_date", ("renewal", "expansion")
    ),
}


def _empty(df: pd.DataFrame, column: str) -> pd.Series:
    """Rows whose ``column`` is empty (all rows when the optional column is absent)."""
    if column not in df.columns:
        return pd.Series(True, index=df.index)
    return df[column].isna()


def open_leads(leads: pd.DataFrame) -> pd.DataFrame:
    """Leads not converted yet (``converted`` empty), in table order.

    Parameters
    ----------
    leads
        The contract ``leads`` table.

    Returns
    -------
    pandas.DataFrame
        The open leads, index reset.
    """
    return leads.loc[_empty(leads, "converted")].reset_index(drop=True)


def open_opportunities(opportunities: pd.DataFrame) -> pd.DataFrame:
    """Opportunities still open: ``won`` empty and no ``closed_at``, in table order.

    Parameters
    ----------
    opportunities
        The contract ``opportunities`` table.

    Returns
    -------
    pandas.DataFrame
        The open opportunities, index reset.
    """
    mask = _empty(opportunities, "won") & _empty(opportunities, "closed_at")
    return opportunities.loc[mask].reset_index(drop=True)


def renewals_due(
    subscriptions: pd.DataFrame, scoring_date: dt.date | pd.Timestamp, horizon_days: int
) -> pd.DataFrame:
    """Terms not renewed yet whose ``end_date`` lies in ``[scoring_date, scoring_date + horizon]``.

    Parameters
    ----------
    subscriptions
        The contract ``subscriptions`` table.
    scoring_date
        The day the run scores as of.
    horizon_days
        ``scoring.renewal_horizon_days``.

    Returns
    -------
    pandas.DataFrame
        The due terms in table order, index reset.
    """
    start = pd.Timestamp(scoring_date).normalize()
    end = start + pd.Timedelta(days=horizon_days)
    ends = pd.to_datetime(subscriptions["end_date"]).dt.normalize()
    mask = _empty(subscriptions, "renewed") & ends.ge(start) & ends.le(end)
    return subscriptions.loc[mask.fillna(False).astype(bool)].reset_index(drop=True)


def expected_value(propensity: pd.Series, amount: pd.Series) -> pd.Series:
    """``propensity x amount``; missing where either is missing.

    Parameters
    ----------
    propensity, amount
        Aligned series (same index).

    Returns
    -------
    pandas.Series
        float64, named ``expected_value``.
    """
    p = pd.to_numeric(propensity, errors="coerce").astype("float64")
    a = pd.to_numeric(amount, errors="coerce").astype("float64")
    return (p * a).rename("expected_value")


def account_frame(
    accounts: pd.DataFrame,
    activities: pd.DataFrame | None,
    scoring_date: dt.date | pd.Timestamp,
    windows_days: list[int],
) -> pd.DataFrame:
    """Accounts with their engagement counted up to and including the scoring date.

    Parameters
    ----------
    accounts
        The contract ``accounts`` table.
    activities
        The ``activities`` table, or ``None`` (no engagement columns then).
    scoring_date
        The as-of date of the run.
    windows_days
        ``training.engagement_windows_days``.

    Returns
    -------
    pandas.DataFrame
        One row per account in table order: account columns, then engagement columns.
    """
    accounts = accounts.reset_index(drop=True)
    # "As of the date" includes the whole day, as the training book's engagement does.
    day = pd.Timestamp(scoring_date).normalize()
    as_of = pd.Series(day + pd.Timedelta(days=1), index=accounts.index)
    eng = engagement_features(activities, accounts["account_id"], as_of, windows_days)
    frame = pd.concat([accounts, eng.drop(columns=[c for c in eng if c in accounts])], axis=1)
    frame["as_of"] = day  # the date the scorer measures ages at
    return frame


def entity_frame(
    entities: pd.DataFrame,
    accounts: pd.DataFrame,
    activities: pd.DataFrame | None,
    as_of_column: str,
    windows_days: list[int],
) -> pd.DataFrame:
    """Entity rows with their account's attributes and engagement as of the row's as-of time.

    Entity columns win over account columns of the same name (as in training).

    Parameters
    ----------
    entities
        Rows of one entity table (open leads, open opportunities or due terms).
    accounts, activities
        The contract tables (``activities`` may be ``None``).
    as_of_column
        The entity's as-of column (``created_at``, ``start_date``).
    windows_days
        ``training.engagement_windows_days``.

    Returns
    -------
    pandas.DataFrame
        One row per entity in input order.
    """
    entities = entities.reset_index(drop=True)
    attrs = [c for c in accounts.columns if c != "account_id" and c not in entities.columns]
    joined = accounts.set_index("account_id")[attrs].reindex(entities["account_id"]).reset_index(drop=True)
    eng = engagement_features(activities, entities["account_id"], entities[as_of_column], windows_days)
    eng = eng.drop(columns=[c for c in eng if c in entities or c in joined])
    return pd.concat([entities, joined, eng], axis=1)


def entities_to_score(
    tables: Mapping[str, pd.DataFrame], scoring_date: dt.date | pd.Timestamp, horizon_days: int
) -> dict[str, pd.DataFrame]:
    """The open leads, open opportunities and due renewals of a CRM (absent tables left out).

    Parameters
    ----------
    tables
        Contract tables by name (``CRMData.tables``).
    scoring_date
        The as-of date of the run.
    horizon_days
        ``scoring.renewal_horizon_days``.

    Returns
    -------
    dict
        Output table name (``open_leads``, ...) -> entity rows in contract form.
    """
    out: dict[str, pd.DataFrame] = {}
    if "leads" in tables:
        out["open_leads"] = open_leads(tables["leads"])
    if "opportunities" in tables:
        out["open_opportunities"] = open_opportunities(tables["opportunities"])
    if "subscriptions" in tables:
        out["renewals_due"] = renewals_due(tables["subscriptions"], scoring_date, horizon_days)
    for name, df in out.items():
        log.info("%s: %d rows to score", name, len(df))
    return out
