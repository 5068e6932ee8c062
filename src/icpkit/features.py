"""Point-in-time features: what was known about an account when a lead, deal or term began.

A row's features are its account's attributes, its own attributes (lead source, deal amount,
plan...) and engagement aggregates computed from activities *strictly before* its as-of time.
Nothing written at or after the as-of time can reach a feature.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from icpkit.config import AttributesConfig
from icpkit.data.crm import CRMData
from icpkit.outcomes import Outcome

log = logging.getLogger(__name__)

ACTIVITY_PREFIX = "activity_"
RECENCY_FEATURE = "activity_days_since_last"


@dataclass
class OutcomeDataset:
    """Rows of one outcome with their features, label and as-of time (index aligned)."""

    outcome: str
    ids: pd.Series
    account_ids: pd.Series
    as_of: pd.Series
    X: pd.DataFrame
    #: Nullable Int8: <NA> while the outcome is not known yet (scored, never trained on).
    y: pd.Series
    #: Feature column -> the business attribute it came from (engagement windows share one).
    feature_source: dict[str, str] = field(default_factory=dict)
    #: Business attribute -> ICP dimension (firmographic, technographic, behavioral, ...).
    source_dimension: dict[str, str] = field(default_factory=dict)
    #: Columns refused as features, with the reason.
    refused: dict[str, str] = field(default_factory=dict)

    @property
    def labelled(self) -> pd.Series:
        return self.y.notna()

    def subset(self, mask: np.ndarray | pd.Series) -> OutcomeDataset:
        mask = np.asarray(mask, dtype=bool)
        return OutcomeDataset(
            outcome=self.outcome,
            ids=self.ids[mask].reset_index(drop=True),
            account_ids=self.account_ids[mask].reset_index(drop=True),
            as_of=self.as_of[mask].reset_index(drop=True),
            X=self.X[mask].reset_index(drop=True),
            y=self.y[mask].reset_index(drop=True),
            feature_source=self.feature_source,
            source_dimension=self.source_dimension,
            refused=self.refused,
        )


def engagement_features(
    activities: pd.DataFrame | None,
    account_ids: pd.Series,
    as_of: pd.Series,
    windows_days: list[int],
) -> pd.DataFrame:
    """Counts of activities per type in windows before ``as_of``, and days since the last one.

    Vectorised: activities are sorted by (account, time) into one int64 key so each window count
    is two ``searchsorted`` calls, not a join. Activities at exactly ``as_of`` are excluded.
    """
    n = len(as_of)
    out: dict[str, np.ndarray] = {}
    if activities is None or activities.empty:
        return pd.DataFrame(index=range(n))
    acts = activities[["account_id", "occurred_at", "activity_type"]]
    codes, uniques = pd.factorize(pd.concat([acts["account_id"], account_ids], ignore_index=True))
    act_code = codes[: len(acts)].astype(np.int64)
    row_code = codes[len(acts) :].astype(np.int64)
    # Seconds since epoch fit in 2^34 for centuries; account codes in the remaining bits.
    shift = np.int64(1) << np.int64(35)
    act_t = acts["occurred_at"].to_numpy("datetime64[s]").astype(np.int64)
    row_t = as_of.to_numpy("datetime64[s]").astype(np.int64)
    offset = min(act_t.min(initial=0), row_t.min(initial=0)) - 10 * 365 * 86400
    act_t = act_t - offset
    row_t = row_t - offset
    types = sorted(acts["activity_type"].dropna().unique().tolist())
    groups: list[tuple[str, np.ndarray]] = [("all", np.ones(len(acts), dtype=bool))]
    groups += [(str(t), (acts["activity_type"] == t).to_numpy()) for t in types]
    for name, sel in groups:
        keys = np.sort(act_code[sel] * shift + act_t[sel])
        upper = np.searchsorted(keys, row_code * shift + row_t, side="left")
        for w in windows_days:
            lower = np.searchsorted(keys, row_code * shift + row_t - w * 86400, side="left")
            out[f"{ACTIVITY_PREFIX}{name}_{w}d"] = (upper - lower).astype(np.float64)
        if name == "all":
            last = np.clip(upper - 1, 0, None)
            has_prev = (upper > 0) & (len(keys) > 0)
            if len(keys):
                same_account = (keys[last] // shift) == row_code
                has_prev &= same_account
                gap_days = (row_code * shift + row_t - keys[last]) / 86400.0
            else:
                gap_days = np.zeros(n)
            out[RECENCY_FEATURE] = np.where(has_prev, gap_days, np.nan)
    return pd.DataFrame(out)


def build_outcome_dataset(
    crm: CRMData,
    outcome: Outcome,
    attributes: AttributesConfig,
    windows_days: list[int],
    deny_columns: list[str],
) -> OutcomeDataset:
    """Join account attributes, entity attributes and point-in-time engagement for one outcome."""
    table = crm[outcome.table].reset_index(drop=True)
    accounts = crm["accounts"]
    refused: dict[str, str] = {}
    deny = set(deny_columns)

    entity_attrs = [c for c in table.columns if c not in outcome.non_feature_columns()]
    account_attrs = [c for c in accounts.columns if c != "account_id"]
    for col in [*entity_attrs, *account_attrs]:
        if col in deny:
            refused[col] = "on the leakage deny-list (written after the outcome)"
    entity_attrs = [c for c in entity_attrs if c not in refused]
    account_attrs = [c for c in account_attrs if c not in refused and c not in entity_attrs]

    X = table[entity_attrs].copy()
    acct = accounts.set_index("account_id")[account_attrs]
    X = pd.concat([X, acct.reindex(table["account_id"]).reset_index(drop=True)], axis=1)
    eng = engagement_features(
        crm.tables.get("activities"), table["account_id"], table[outcome.as_of_column], windows_days
    )
    X = pd.concat([X, eng], axis=1)

    feature_source = {c: c for c in [*entity_attrs, *account_attrs]}
    source_dimension = {c: attributes.dimension_of(c) for c in feature_source}
    for col in eng.columns:
        src = "activity recency" if col == RECENCY_FEATURE else _activity_source(col)
        feature_source[col] = src
        source_dimension[src] = "behavioral"
    if refused:
        log.info("%s: refused as features: %s", outcome.name, ", ".join(sorted(refused)))
    return OutcomeDataset(
        outcome=outcome.name,
        ids=table[outcome.id_column],
        account_ids=table["account_id"],
        as_of=table[outcome.as_of_column],
        X=X,
        y=outcome.label(table),
        feature_source=feature_source,
        source_dimension=source_dimension,
        refused=refused,
    )


def _activity_source(feature: str) -> str:
    # activity_<type>_<w>d -> "activity: <type>", so all windows of a type add up to one attribute.
    body = feature[len(ACTIVITY_PREFIX) :]
    kind = body.rsplit("_", 1)[0]
    return f"activity: {kind}"
