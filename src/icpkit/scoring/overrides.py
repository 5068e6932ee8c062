"""Manual tier overrides: sales forces an account's tier, and every score says so.

An overrides file is a CSV with ``account_id, forced_tier, reason, author, date``. Every row must
name an account, a valid tier (case-insensitive), who decided it, why and when; a bad row is an
error naming it, never skipped. Applied after scoring, each override sets ``tier``, keeps the
model's tier in ``model_tier`` and writes ``override_reason`` ("forced Perfect (model: Strong) by
ana on 2025-06-01: strategic partner"); each is reported with the number of rows it touched —
0 for an account not in the scores, said so.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from icpkit.errors import DataContractError

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_TIERS",
    "OVERRIDE_COLUMNS",
    "AppliedOverride",
    "Override",
    "apply_overrides",
    "parse_overrides",
    "read_overrides",
]

OVERRIDE_COLUMNS = ("account_id", "forced_tier", "reason", "author", "date")
DEFAULT_TIERS = ("Perfect", "Strong", "Moderate", "Weak")


@dataclass(frozen=True)
class Override:
    """One row of the overrides file (``row`` counts data rows from 1)."""

    row: int
    account_id: str
    forced_tier: str
    reason: str
    author: str
    date: dt.date


@dataclass(frozen=True)
class AppliedOverride:
    """An override and what it did."""

    override: Override
    rows_touched: int
    model_tier: str | None = None

    @property
    def message(self) -> str:
        """One line for the log and the run summary: the account, the forced tier, by whom, rows touched."""
        o = self.override
        if self.rows_touched == 0:
            return f"{o.account_id}: not in the scored accounts, override to {o.forced_tier} touched 0 rows"
        was = f" (model: {self.model_tier})" if self.model_tier else ""
        return f"{o.account_id}: forced {o.forced_tier}{was} by {o.author}, {self.rows_touched} row(s)"


def read_overrides(path: str | Path, tiers: Sequence[str] = DEFAULT_TIERS) -> list[Override]:
    """Read and check an overrides CSV.

    Parameters
    ----------
    path
        The CSV file.
    tiers
        Valid tier names.

    Returns
    -------
    list of Override

    Raises
    ------
    DataContractError
        A missing column, or a row with an empty field, an unknown tier, a bad date or an
        account overridden twice (the message names the row).
    """
    path = Path(path)
    if not path.is_file():
        raise DataContractError(f"overrides file {path}", None, "file not found")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    return parse_overrides(frame, tiers, source=f"overrides file {path}")


def parse_overrides(
    frame: pd.DataFrame, tiers: Sequence[str] = DEFAULT_TIERS, source: str = "overrides"
) -> list[Override]:
    """Check override rows given as a frame (see :func:`read_overrides`)."""
    missing = [c for c in OVERRIDE_COLUMNS if c not in frame.columns]
    if missing:
        raise DataContractError(
            source, missing[0], f"missing column(s) {missing}; expected {list(OVERRIDE_COLUMNS)}"
        )
    canonical = {t.lower(): t for t in tiers}
    out: list[Override] = []
    first_row: dict[str, int] = {}
    for i, raw in enumerate(frame[list(OVERRIDE_COLUMNS)].to_dict("records"), start=1):
        rec = {k: "" if v is None or v != v else str(v).strip() for k, v in raw.items()}
        out.append(_parse_row(source, i, rec, canonical))
        if rec["account_id"] in first_row:
            raise DataContractError(
                source, "account_id", f"account {rec['account_id']!r} is overridden twice "
                f"(rows {first_row[rec['account_id']]} and {i}); keep one", 2, [rec],
            )  # fmt: skip
        first_row[rec["account_id"]] = i
    return out


def _parse_row(source: str, row: int, rec: dict[str, str], canonical: dict[str, str]) -> Override:
    for col in OVERRIDE_COLUMNS:
        if not rec[col]:
            raise DataContractError(
                source, col, f"row {row}: {col} is empty (every override says who, why, when)", 1, [rec]
            )
    tier = canonical.get(rec["forced_tier"].lower())
    if tier is None:
        valid = ", ".join(canonical.values())
        rule = f"row {row}: {rec['forced_tier']!r} is not a tier; tiers are {valid}"
        raise DataContractError(source, "forced_tier", rule, 1, [rec])
    try:
        date = dt.date.fromisoformat(rec["date"])
    except ValueError:
        raise DataContractError(
            source, "date", f"row {row}: {rec['date']!r} is not a YYYY-MM-DD date", 1, [rec]
        ) from None
    return Override(row, rec["account_id"], tier, rec["reason"], rec["author"], date)


def apply_overrides(
    accounts: pd.DataFrame, overrides: Sequence[Override], tier_column: str = "tier"
) -> tuple[pd.DataFrame, list[AppliedOverride]]:
    """Force the tiers of the overridden accounts.

    Parameters
    ----------
    accounts
        Scored accounts with ``account_id`` and ``tier_column``.
    overrides
        From :func:`read_overrides`.
    tier_column
        The tier column to force.

    Returns
    -------
    tuple
        The accounts with ``tier`` forced, ``model_tier`` (the model's tier) and
        ``override_reason`` (empty where nothing was forced); and one :class:`AppliedOverride`
        per override, in file order.
    """
    out = accounts.copy()
    ids = out["account_id"].astype("str")
    out["model_tier"] = out[tier_column].astype("str")
    reasons = pd.Series(pd.NA, index=out.index, dtype="str")
    tiers = out[tier_column].astype("str").copy()
    applied = []
    for o in overrides:
        hit = (ids == o.account_id).to_numpy()
        model_tier = str(out.loc[hit, "model_tier"].iloc[0]) if hit.any() else None
        if hit.any():
            tiers[hit] = o.forced_tier
            reasons[hit] = (
                f"forced {o.forced_tier} (model: {model_tier}) by {o.author} on {o.date}: {o.reason}"
            )
        result = AppliedOverride(o, int(hit.sum()), model_tier)
        (log.info if hit.any() else log.warning)("override %s", result.message)
        applied.append(result)
    out[tier_column] = tiers
    out["override_reason"] = reasons
    return out, applied
