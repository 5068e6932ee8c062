"""The four outcomes icpkit models, each a row in a CRM table with an as-of time and a 0/1 label.

| outcome    | table         | one row per        | as-of time   | label                          |
|------------|---------------|--------------------|--------------|--------------------------------|
| conversion | leads         | lead               | created_at   | converted                      |
| win        | opportunities | opportunity        | created_at   | won                            |
| renewal    | subscriptions | subscription term  | start_date   | renewed                        |
| expansion  | subscriptions | subscription term  | start_date   | expansion_arr > 0 (once due)   |

Features for a row may only use what was known at its as-of time (see :mod:`icpkit.features`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from icpkit.data.contract import CONTRACT, POST_OUTCOME_COLUMNS


def _label_column(column: str) -> Callable[[pd.DataFrame], pd.Series]:
    def label(df: pd.DataFrame) -> pd.Series:
        return df[column].astype("Int8")

    return label


def _expansion_label(df: pd.DataFrame) -> pd.Series:
    # Expansion is known once the term is due: expansion_arr is filled then (0 = no expansion).
    arr = pd.to_numeric(df["expansion_arr"], errors="coerce")
    label = (arr > 0).astype("Int8")
    return label.mask(arr.isna())


@dataclass(frozen=True)
class Outcome:
    """One propensity outcome: where its rows live and how its label is read."""

    name: str
    table: str
    id_column: str
    as_of_column: str
    #: Columns the table must have for this outcome to be trained (beyond the contract's).
    needs_columns: tuple[str, ...]
    label: Callable[[pd.DataFrame], pd.Series]
    description: str

    def non_feature_columns(self) -> set[str]:
        """Contract columns of the table that are ids, times or labels, never features."""
        c = CONTRACT[self.table]
        return {
            c.id_column or "",
            "account_id",
            *c.date_columns,
            *c.label_columns,
            *POST_OUTCOME_COLUMNS.get(self.table, ()),
            *self.needs_columns,
        }


OUTCOMES: dict[str, Outcome] = {
    "conversion": Outcome(
        name="conversion",
        table="leads",
        id_column="lead_id",
        as_of_column="created_at",
        needs_columns=("converted",),
        label=_label_column("converted"),
        description="a lead converts (leads.converted = 1)",
    ),
    "win": Outcome(
        name="win",
        table="opportunities",
        id_column="opportunity_id",
        as_of_column="created_at",
        needs_columns=("won",),
        label=_label_column("won"),
        description="a closed opportunity is won (opportunities.won = 1)",
    ),
    "expansion": Outcome(
        name="expansion",
        table="subscriptions",
        id_column="subscription_id",
        as_of_column="start_date",
        needs_columns=("expansion_arr",),
        label=_expansion_label,
        description="a due subscription term expands (expansion_arr > 0)",
    ),
    "renewal": Outcome(
        name="renewal",
        table="subscriptions",
        id_column="subscription_id",
        as_of_column="start_date",
        needs_columns=("renewed",),
        label=_label_column("renewed"),
        description="a due subscription term renews (subscriptions.renewed = 1)",
    ),
}
