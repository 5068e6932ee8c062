"""The in-memory CRM: the contract's tables after loading, mapping and validation."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class ExcludedRows:
    """Rows left out on purpose (e.g. open deals with no account), counted so nothing vanishes."""

    table: str
    reason: str
    count: int


#: Repair kinds: what happened to the values of one column (each counted per original value).
#: Rows hashed at a time by :meth:`CRMData.fingerprint` (~8 MB of hashes per column).
_FINGERPRINT_ROWS = 1_000_000

REPAIR_MISSING_VALUE = "missing_value"  # a configured placeholder (data.missing_values) -> empty
REPAIR_VALUE_FIX = "value_fix"  # a configured fix (data.tables.<t>.values) -> the good value
REPAIR_NOT_A_NUMBER = "not_a_number"  # stray text in a numeric attribute -> empty
REPAIR_NON_FINITE = "non_finite"  # inf / -inf / nan in a numeric attribute -> empty
REPAIR_NOT_A_DATE = "not_a_date"  # stray text in a date attribute -> empty


@dataclass(frozen=True)
class Repair:
    """Values of one column the loader changed, counted, so no change is ever silent.

    ``detail`` maps each original value (as text) to how many cells held it, e.g. ``{"N/A": 12}``.
    """

    table: str
    column: str
    kind: str
    count: int
    detail: dict[str, int] = field(default_factory=dict, hash=False)

    def describe(self) -> str:
        """One line for a log or a report: ``accounts.employees: 12 not_a_number -> empty {'N/A': 12}``."""
        shown = dict(list(self.detail.items())[:5])
        more = f" (+{len(self.detail) - 5} more values)" if len(self.detail) > 5 else ""
        target = "fixed" if self.kind == REPAIR_VALUE_FIX else "empty"
        return f"{self.table}.{self.column}: {self.count} {self.kind} -> {target} {shown}{more}"


@dataclass
class CRMData:
    """Contract tables keyed by name (absent optional tables are simply not in ``tables``).

    Column types after loading: ids and text are pandas ``str`` (``activities.account_id`` and
    ``activity_type`` are ``category``: tens of millions of rows, few values); contract dates and date
    attributes are ``datetime64[ns]``; contract numbers and numeric attributes are ``float64``;
    labels are nullable ``Int8`` (``<NA>`` = not known yet); true/false or yes/no attributes stay
    text with their source spelling.
    """

    tables: dict[str, pd.DataFrame]
    extract_date: pd.Timestamp
    source: str = ""
    excluded: list[ExcludedRows] = field(default_factory=list)
    #: Source columns dropped on load by the config, per table.
    dropped_columns: dict[str, list[str]] = field(default_factory=dict)
    #: Values the loader changed (placeholders, stray text in numbers, non-finite numbers...).
    repairs: list[Repair] = field(default_factory=list)
    _fingerprints: dict[str, tuple[pd.DataFrame, str]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def has(self, table: str) -> bool:
        """Whether the CRM holds ``table``."""
        return table in self.tables

    def __getitem__(self, table: str) -> pd.DataFrame:
        return self.tables[table]

    def fingerprint(self) -> dict[str, str]:
        """A short content hash per table, logged with every run to tie a model to its data.

        Hashing 30M activity rows takes seconds and a run asks several times, so each table's
        hash is kept while the table object is the same (replace a table, not its cells).
        """
        out = {}
        for name, df in sorted(self.tables.items()):
            cached = self._fingerprints.get(name)
            if cached is None or cached[0] is not df:
                digest = hashlib.sha256()
                # Row hashes do not depend on the other rows, so hashing in slices gives the same
                # digest while holding one slice's hashes (not 30M rows x columns at once).
                for start in range(0, len(df), _FINGERPRINT_ROWS):
                    part = df.iloc[start : start + _FINGERPRINT_ROWS]
                    digest.update(pd.util.hash_pandas_object(part, index=False).to_numpy().tobytes())
                digest.update(",".join(map(str, df.columns)).encode())
                cached = (df, digest.hexdigest()[:16])
                self._fingerprints[name] = cached
            out[name] = cached[1]
        return out

    def summary(self) -> dict[str, int]:
        """Row count per table."""
        return {name: len(df) for name, df in self.tables.items()}

    def with_shuffled_labels(self, seed: int = 0) -> CRMData:
        """A copy whose labels are permuted within each table: a CRM with no signal at all.

        Used to check that the ICP says "insufficient evidence" instead of inventing one.
        """
        rng = np.random.default_rng(seed)
        tables = dict(self.tables)
        for table, cols in SHUFFLED_LABELS.items():
            if table not in tables:
                continue
            df = tables[table].copy()
            for col in [c for c in cols if c in df.columns]:
                known = df[col].notna().to_numpy()
                df.loc[known, col] = rng.permutation(df.loc[known, col].to_numpy())
            tables[table] = df
        return CRMData(
            tables,
            self.extract_date,
            self.source,
            list(self.excluded),
            dict(self.dropped_columns),
            list(self.repairs),
        )


#: The label columns (and the expansion amount that defines the expansion label) per table.
SHUFFLED_LABELS = {
    "leads": ["converted"],
    "opportunities": ["won"],
    "subscriptions": ["renewed", "expansion_arr"],
}
