"""Point-in-time features: what was known about an account when a lead, deal or term began.

A row's features are its own attributes (lead source, plan, contract...), its account's
attributes and engagement counts from activities *strictly before* its as-of time. Nothing
written at or after the as-of time reaches a feature:

- account attributes come from ``account_history`` as of the row's time when that table exists;
  without it, account attributes tagged behavioral are export-date snapshots and are not used for
  rows older than ``attributes.snapshot_max_age_days`` (the profile says which);
- dates become ages in days at the row's as-of time (a date after it is missing);
- identifiers and deny-listed columns are refused, with the reason.

How a table's rows become features is a :class:`FeatureSpec`, saved with the model, so the
registered models build their features from raw rows with this same code.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from icpkit.attributes import AttributeSpec, infer_table_attributes, prepare_attributes
from icpkit.config import Config
from icpkit.data.crm import CRMData
from icpkit.outcomes import OUTCOMES, Outcome

log = logging.getLogger(__name__)

ACTIVITY_PREFIX = "activity_"
RECENCY_FEATURE = "activity_days_since_last"
HISTORY_TABLE = "account_history"
HISTORY_TIME = "valid_from"

#: ``{table: {attribute: spec}}`` for every table of a CRM.
Catalogue = dict[str, dict[str, AttributeSpec]]


def attribute_catalogue(crm: CRMData, cfg: Config) -> Catalogue:
    """Role, kind and dimension of every attribute of every table (see :mod:`icpkit.attributes`)."""
    catalogue: Catalogue = {
        "accounts": infer_table_attributes("accounts", crm["accounts"], ["account_id"], cfg.attributes)
    }
    if crm.has(HISTORY_TABLE):
        catalogue[HISTORY_TABLE] = infer_table_attributes(
            HISTORY_TABLE, crm[HISTORY_TABLE], ["account_id", HISTORY_TIME], cfg.attributes
        )
    for outcome in OUTCOMES.values():
        if crm.has(outcome.table) and outcome.table not in catalogue:
            catalogue[outcome.table] = infer_table_attributes(
                outcome.table, crm[outcome.table], outcome.non_feature_columns(), cfg.attributes
            )
    return catalogue


# ---------------------------------------------------------------------------------------------
# engagement


def engagement_features(
    activities: pd.DataFrame | None,
    account_ids: pd.Series,
    as_of: pd.Series,
    windows_days: list[int],
    activity_types: list[str] | None = None,
) -> pd.DataFrame:
    """Counts of activities per type in windows before ``as_of``, and days since the last one.

    Public so that callers scoring new rows build the same engagement columns as training:
    pass the ``activity_types`` the model was trained with (``None``: the types present).
    Activities are sorted by (account, time) into one int64 key so each window count is two
    ``searchsorted`` calls, not a join. Activities at exactly ``as_of`` are excluded.
    """
    n = len(as_of)
    if activities is None or (activities.empty and activity_types is None):
        return pd.DataFrame(index=range(n))
    acts = activities[["account_id", "occurred_at", "activity_type"]]
    act_code, row_code = _account_codes(acts["account_id"], pd.Series(account_ids))
    type_code, type_values = _codes(acts["activity_type"])  # int8 codes for a category column
    lookup = pd.Index(type_values)
    seen = np.zeros(len(lookup) + 1, dtype=bool)
    seen[type_code] = True  # empty types (-1) land in the last slot; no bincount's int64 copy
    present = np.flatnonzero(seen[:-1])
    types = activity_types if activity_types is not None else sorted(lookup[present].tolist())
    # A row counts only its own account's activities, so when the rows cover few accounts (a
    # test period, an input example) the others are dropped first: same counts, a fraction of
    # the memory. Empty accounts (-1) go to the last slot of ``wanted``.
    wanted = np.zeros(int(max(act_code.max(initial=-1), row_code.max(initial=-1))) + 2, dtype=bool)
    wanted[row_code] = True
    keep = wanted[act_code]
    times = acts["occurred_at"]
    if keep.sum() < 0.5 * len(keep):
        act_code, type_code, times = act_code[keep], type_code[keep], times[keep]
    del keep, wanted
    act_code = act_code.astype(np.int64)  # a new array: the key is built in it in place
    # Seconds since epoch fit in 2^34 for centuries; account codes in the remaining bits.
    shift = np.int64(1) << np.int64(35)
    act_t = times.to_numpy("datetime64[s]").view(np.int64)
    row_t = pd.Series(as_of).to_numpy("datetime64[s]").astype(np.int64)
    offset = min(act_t.min(initial=0), row_t.min(initial=0)) - 10 * 365 * 86400
    # One int64 key per activity, built in place (tens of millions of rows: no extra copies).
    key = act_code
    key *= shift
    key += act_t
    key -= offset
    del act_t, times
    row_t = row_t - offset
    # Activities usually come sorted by account and time: then every selection is sorted too.
    presorted = bool(np.all(key[1:] >= key[:-1]))
    now = row_code * shift + row_t
    out: dict[str, np.ndarray] = {}
    for name, code in [("all", None), *((str(t), _code_of(lookup, t)) for t in types)]:
        keys = key if code is None else key[type_code == code]
        if not presorted:
            keys = np.sort(keys)
        upper = np.searchsorted(keys, now, side="left")
        for w in windows_days:
            lower = np.searchsorted(keys, now - w * 86400, side="left")
            out[f"{ACTIVITY_PREFIX}{name}_{w}d"] = (upper - lower).astype(np.float64)
        if name == "all":
            out[RECENCY_FEATURE] = _days_since_last(keys, upper, row_code, now, shift)
    return pd.DataFrame(out)


def _codes(values: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """Integer codes (-1 = empty) and the distinct values they index; no text copy of a category."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        # The Categorical's own int8/16/32 codes, read-only: ``.cat.codes`` would copy them.
        return values.array.codes, values.dtype.categories
    codes, uniques = pd.factorize(values)
    return codes, pd.Index(uniques)


def _code_of(lookup: pd.Index, value: object) -> int:
    """The code of ``value`` among ``lookup``; a value not there matches no row (-2)."""
    try:
        hit = lookup.get_indexer([value])[0]
    except (TypeError, ValueError):  # pragma: no cover - a value not comparable with the index
        hit = -1
    return int(hit) if hit >= 0 else -2


def _account_codes(act_accounts: pd.Series, row_accounts: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """One code per account for activities and rows: equal codes, equal accounts.

    Empty accounts share code -1 on both sides (as one factorization of both would give); a row
    account with no activity gets a code no activity has.
    """
    act_code, uniques = _codes(act_accounts)  # int32 codes of a category column: no copy
    row_code = uniques.get_indexer(row_accounts).astype(np.int64)
    row_code[(row_code < 0) & row_accounts.notna().to_numpy()] = len(uniques)
    return act_code, row_code


def _days_since_last(
    keys: np.ndarray, upper: np.ndarray, row_code: np.ndarray, now: np.ndarray, shift: np.int64
) -> np.ndarray:
    if not len(keys):
        return np.full(len(now), np.nan)
    last = np.clip(upper - 1, 0, None)
    has_prev = (upper > 0) & ((keys[last] // shift) == row_code)
    return np.where(has_prev, (now - keys[last]) / 86400.0, np.nan)


def engagement_columns(windows_days: list[int], activity_types: list[str]) -> list[str]:
    """The engagement feature names :func:`engagement_features` writes, in order."""
    cols = []
    for name in ["all", *activity_types]:
        cols += [f"{ACTIVITY_PREFIX}{name}_{w}d" for w in windows_days]
        if name == "all":
            cols.append(RECENCY_FEATURE)
    return cols


def activity_source(feature: str) -> str:
    """``activity_<type>_<w>d`` -> ``"activity: <type>"``, so all windows add up to one attribute."""
    if feature == RECENCY_FEATURE:
        return "activity recency"
    return f"activity: {feature[len(ACTIVITY_PREFIX) :].rsplit('_', 1)[0]}"


# ---------------------------------------------------------------------------------------------
# account attributes as of a time


#: Rows fewer than this share of a table's rows look up only their own accounts' records in it:
#: 2,000 rows against a million accounts take 0.1 s instead of 0.2-0.9 s; for many rows the
#: filter would cost more than it saves.
FEW_ROWS = 0.05


def ids_in(ids: pd.Series, among: pd.Series | Iterable[Any]) -> np.ndarray:
    """``ids.isin(among)`` as a bool array, in C for text ids.

    pandas' ``isin`` on an Arrow-backed text column turns every value of ``among`` into a Python
    scalar first: 6 s for 300k ids against 500k on 2 cores, where Arrow's ``is_in`` on the whole
    arrays takes 0.13 s. Other dtypes keep pandas' own hash lookup.
    """
    if ids.dtype != "str":
        return ids.isin(among if isinstance(among, pd.Series) else list(among)).to_numpy()
    import pyarrow as pa
    import pyarrow.compute as pc

    values = among if isinstance(among, pd.Series) else pd.Series(list(among), dtype="object")
    found = pc.is_in(pa.array(ids, from_pandas=True), value_set=pa.array(values.astype("str"), from_pandas=True))
    return found.to_numpy(zero_copy_only=False).astype(bool)


def _records_of(table: pd.DataFrame, account_ids: pd.Series) -> pd.DataFrame:
    """``table``'s records of these accounts when they are few (:data:`FEW_ROWS`), else all of it.

    Few rows (an input example) then sort, join or hash their accounts' records, not a million.
    """
    if len(account_ids) < FEW_ROWS * len(table):
        return table[ids_in(table["account_id"], account_ids)]
    return table


def history_as_of(
    history: pd.DataFrame, account_ids: pd.Series, as_of: pd.Series, columns: list[str]
) -> pd.DataFrame:
    """Each row's account attributes from ``account_history`` as of its time.

    The latest ``valid_from`` at or before the row's time wins; rows before an account's first
    record get missing values.
    """
    # One resolution on both sides (merge_asof refuses datetime64[s] against datetime64[ns]).
    times = pd.to_datetime(pd.Series(as_of)).to_numpy().astype("datetime64[ns]")
    left = pd.DataFrame({"account_id": pd.Series(account_ids).to_numpy(), "_t": times})
    left["_row"] = np.arange(len(left))
    right = _records_of(history[["account_id", HISTORY_TIME, *columns]], left["account_id"])
    right = right.rename(columns={HISTORY_TIME: "_t"})
    right["_t"] = pd.to_datetime(right["_t"]).astype("datetime64[ns]")
    right = right.sort_values("_t", kind="stable")
    joined = pd.merge_asof(
        left.sort_values("_t", kind="stable"), right, on="_t", by="account_id", direction="backward"
    )
    return joined.sort_values("_row").reset_index(drop=True)[columns]


# ---------------------------------------------------------------------------------------------
# the spec


@dataclass
class FeatureSpec:
    """How the rows of one outcome's table become features; saved with the model.

    Parameters
    ----------
    outcome, table, id_column, as_of_column : str
        The outcome and where its rows live.
    entity, account : dict of AttributeSpec
        The row's own attributes and its account's attributes used as features.
    windows_days, activity_types : list
        The engagement windows and activity types (their columns are inputs of the model).
    snapshot_columns : list of str
        Account attributes that are export-date snapshots, not used for rows older than
        ``snapshot_max_age_days`` before the reference date.
    history_columns : list of str
        Account attributes read from ``account_history`` as of each row's time.
    refused : dict
        Columns refused as features, with the reason.
    """

    outcome: str
    table: str
    id_column: str
    as_of_column: str
    entity: dict[str, AttributeSpec]
    account: dict[str, AttributeSpec]
    windows_days: list[int]
    activity_types: list[str]
    snapshot_columns: list[str] = field(default_factory=list)
    snapshot_max_age_days: int | None = None
    history_columns: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)

    @property
    def engagement(self) -> list[str]:
        """The engagement (activity count) columns, one per window and activity type."""
        return engagement_columns(self.windows_days, self.activity_types) if self.windows_days else []

    @property
    def feature_source(self) -> dict[str, str]:
        """Feature column -> the business attribute it came from."""
        out = {s.feature: s.name for s in [*self.entity.values(), *self.account.values()]}
        return out | {c: activity_source(c) for c in self.engagement}

    @property
    def source_dimension(self) -> dict[str, str]:
        """Business attribute -> ICP dimension (activity counts are behavioral)."""
        out = {s.name: s.dimension for s in [*self.entity.values(), *self.account.values()]}
        return out | {activity_source(c): "behavioral" for c in self.engagement}

    @property
    def source_role(self) -> dict[str, str]:
        """Business attribute -> role (customer, offer, sales_org; activity counts are behaviour)."""
        out = {s.name: s.role for s in [*self.entity.values(), *self.account.values()]}
        return out | {activity_source(c): "engagement" for c in self.engagement}

    def input_columns(self) -> list[str]:
        """The raw columns a row to score needs: the row's own, its account's, its engagement."""
        return [self.as_of_column, *self.entity, *self.account, *self.engagement]

    def features(self, rows: pd.DataFrame, reference_date: pd.Timestamp | None) -> pd.DataFrame:
        """Features of raw rows holding the entity columns, account attributes and engagement.

        ``reference_date`` is the extract date in training: snapshot attributes are not used for
        rows whose as-of time is older than ``snapshot_max_age_days`` before it. ``None`` (rows
        being scored now, with the account's current snapshot) masks nothing.
        """
        as_of = pd.to_datetime(rows[self.as_of_column]).reset_index(drop=True)
        rows = rows.reset_index(drop=True)
        parts = [prepare_attributes(rows, self.entity, as_of), prepare_attributes(rows, self.account, as_of)]
        X = pd.concat(parts, axis=1)
        if self.snapshot_columns and self.snapshot_max_age_days is not None and reference_date is not None:
            old = (as_of < pd.Timestamp(reference_date) - pd.Timedelta(days=self.snapshot_max_age_days)).to_numpy()
            for name in self.snapshot_columns:
                col = self.account[name].feature
                if col in X.columns:
                    X[col] = X[col].mask(old)
        if not self.engagement:
            return X
        counts = {c: _compact_counts(rows[c]) if c in rows.columns else np.full(len(rows), np.nan)
                  for c in self.engagement}  # fmt: skip
        return pd.concat([X, pd.DataFrame(counts, index=X.index)], axis=1)

    def to_dict(self) -> dict[str, Any]:
        """The spec as a JSON-ready dict."""
        d = {k: v for k, v in self.__dict__.items() if k not in ("entity", "account")}
        d["entity"] = [s.to_dict() for s in self.entity.values()]
        d["account"] = [s.to_dict() for s in self.account.values()]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FeatureSpec:
        """Rebuild a spec from :meth:`to_dict` output."""
        d = dict(d)
        d["entity"] = {s["name"]: AttributeSpec.from_dict(s) for s in d["entity"]}
        d["account"] = {s["name"]: AttributeSpec.from_dict(s) for s in d["account"]}
        return cls(**d)


def _compact_counts(values: pd.Series) -> np.ndarray:
    """A numeric engagement column as float32 when that holds every value exactly, else float64.

    Activity counts are whole numbers, exact in float32 up to 2^24; a million rows' 25 count
    columns then take half the memory. Every model reads them back as float64 (the
    preprocessor casts), so the features' values, and the models, are unchanged.
    """
    x = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    x32 = x.astype("float32")
    return x32 if np.array_equal(x32.astype("float64"), x, equal_nan=True) else x


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
    spec: FeatureSpec | None = None
    #: The raw-input spec of the outcome's registered model (:class:`icpkit.scoring.inputs.InputSpec`
    #: as a dict), learnt from every row's raw form while the features are built: rebuilding a
    #: million raw rows only for it when publishing would cost a GB.
    input_spec: dict[str, Any] | None = None
    #: True once :meth:`release_features` dropped the feature columns.
    features_released: bool = False

    def release_features(self) -> None:
        """Drop the feature columns, keeping the rows' ids, times, labels and the spec.

        For a run that will not read the features again (the training pipeline once the ICP
        no longer needs them): at a million rows they are most of the memory a run holds. The
        registered model rebuilds them from raw rows (:func:`raw_rows`, ``spec.features``).
        """
        self.X = self.X.iloc[:, :0]
        self.features_released = True

    @property
    def feature_source(self) -> dict[str, str]:
        """Feature column -> the business attribute it came from (itself without a spec)."""
        return self.spec.feature_source if self.spec else {c: c for c in self.X.columns}

    @property
    def source_dimension(self) -> dict[str, str]:
        """Business attribute -> ICP dimension (empty without a spec)."""
        return self.spec.source_dimension if self.spec else {}

    @property
    def source_role(self) -> dict[str, str]:
        """Business attribute -> role (empty without a spec)."""
        return self.spec.source_role if self.spec else {}

    @property
    def refused(self) -> dict[str, str]:
        """Columns refused as features, with the reason (empty without a spec)."""
        return self.spec.refused if self.spec else {}

    @property
    def labelled(self) -> pd.Series:
        """Mask of the rows whose outcome is known."""
        return self.y.notna()

    def labelled_subset(
        self, mask: np.ndarray | pd.Series | None = None, columns: list[str] | None = None
    ) -> OutcomeDataset:
        """The labelled rows (those under ``mask``, a mask over the labelled rows, if given).

        ``columns`` keeps only those feature columns (``[]``: ids, times and labels only). Equal
        to ``subset(labelled).subset(mask)`` without copying every labelled row's features first
        (at a million rows that copy is most of a fit's memory peak).
        """
        if self.features_released and columns != []:
            raise RuntimeError(
                f"{self.outcome}: the features were released once the ICP was derived "
                "(train_and_profile(..., keep_features=True) keeps them); rebuild them with raw_rows() "
                "and spec.features()"
            )
        rows = np.flatnonzero(self.labelled.to_numpy())
        if mask is not None:
            rows = rows[np.asarray(mask, dtype=bool)]
        full = np.zeros(len(self.y), dtype=bool)
        full[rows] = True
        view = self if columns is None else dataclasses.replace(self, X=self.X[list(columns)])
        return view.subset(full)

    def subset(self, mask: np.ndarray | pd.Series) -> OutcomeDataset:
        """The rows under a boolean ``mask``, re-indexed from 0, with the same spec."""
        mask = np.asarray(mask, dtype=bool)
        return OutcomeDataset(
            outcome=self.outcome,
            ids=self.ids[mask].reset_index(drop=True),
            account_ids=self.account_ids[mask].reset_index(drop=True),
            as_of=self.as_of[mask].reset_index(drop=True),
            X=self.X[mask].reset_index(drop=True),
            y=self.y[mask].reset_index(drop=True),
            spec=self.spec,
            input_spec=self.input_spec,
        )


def _choose_attributes(
    outcome: Outcome, catalogue: Catalogue, cfg: Config
) -> tuple[dict[str, AttributeSpec], dict[str, AttributeSpec], dict[str, str]]:
    refused: dict[str, str] = {}
    entity, account = {}, {}
    for spec in catalogue.get(outcome.table, {}).values():
        entity[spec.name] = spec
    account_specs = {**catalogue["accounts"], **catalogue.get(HISTORY_TABLE, {})}
    for spec in account_specs.values():
        if spec.name in entity:
            refused[f"accounts.{spec.name}"] = (
                f"{outcome.table} has a column of the same name; its value (as of the row) is used"
            )
        else:
            account[spec.name] = spec
    for group in (entity, account):
        for name, spec in list(group.items()):
            if cfg.leakage.is_denied(name):
                refused[name] = "on the leakage deny-list (written after the outcome)"
                del group[name]
            elif spec.role == "identifier":
                refused[name] = f"identifier ({spec.reason.split(';')[0]})"
                del group[name]
    return entity, account, refused


def outcome_feature_spec(crm: CRMData, outcome: Outcome, catalogue: Catalogue, cfg: Config) -> FeatureSpec:
    """The :class:`FeatureSpec` of one outcome on this CRM."""
    entity, account, refused = _choose_attributes(outcome, catalogue, cfg)
    history = list(catalogue.get(HISTORY_TABLE, {}))
    snapshot = [
        n for n, s in account.items() if s.dimension == "behavioral" and s.table == "accounts" and n not in history
    ]
    acts = crm.tables.get("activities")
    types = sorted(str(t) for t in acts["activity_type"].dropna().unique()) if acts is not None else []
    windows = list(cfg.training.engagement_windows_days) if acts is not None else []
    return FeatureSpec(
        outcome=outcome.name,
        table=outcome.table,
        id_column=outcome.id_column,
        as_of_column=outcome.as_of_column,
        entity=entity,
        account=account,
        windows_days=windows,
        activity_types=types,
        snapshot_columns=snapshot,
        snapshot_max_age_days=cfg.attributes.snapshot_max_age_days if snapshot else None,
        history_columns=[c for c in history if c in account],
        refused=refused,
    )


def raw_rows(crm: CRMData, spec: FeatureSpec, rows: np.ndarray | None = None) -> pd.DataFrame:
    """The outcome table's rows with their account's attributes (as of each row) and engagement.

    This is exactly the raw input a registered outcome model takes. ``rows``: only the table's
    rows at these positions (in this order), e.g. a test period, without building the others.
    """
    table = crm[spec.table].reset_index(drop=True)
    if rows is not None:
        table = table.iloc[np.asarray(rows)].reset_index(drop=True)
    as_of = table[spec.as_of_column]
    snapshot = [c for c in spec.account if c not in spec.history_columns]
    parts = [
        table[[spec.id_column, "account_id", spec.as_of_column, *spec.entity]],
        snapshot_attributes(crm["accounts"], table["account_id"], snapshot),
    ]
    if spec.history_columns:
        parts.append(history_as_of(crm[HISTORY_TABLE], table["account_id"], as_of, spec.history_columns))
    parts.append(
        engagement_features(
            crm.tables.get("activities"), table["account_id"], as_of, spec.windows_days, spec.activity_types
        )
    )
    # One concatenation: each extra one copies every column built so far (a million rows' worth).
    return pd.concat(parts, axis=1)


def build_outcome_dataset(crm: CRMData, outcome: Outcome, catalogue: Catalogue, cfg: Config) -> OutcomeDataset:
    """Join account attributes, entity attributes and point-in-time engagement for one outcome."""
    spec = outcome_feature_spec(crm, outcome, catalogue, cfg)
    rows = raw_rows(crm, spec)
    table = crm[outcome.table].reset_index(drop=True)
    if spec.refused:
        log.info("%s: refused as features: %s", outcome.name, ", ".join(sorted(spec.refused)))
    if spec.snapshot_columns and spec.snapshot_max_age_days is not None:
        log.info(
            "%s: behavioral snapshots %s not used for rows older than %d days before the extract date "
            "(no account_history table)",
            outcome.name, ", ".join(spec.snapshot_columns), spec.snapshot_max_age_days,
        )  # fmt: skip
    from icpkit.scoring.served import outcome_input_spec  # scoring builds on this module

    return OutcomeDataset(
        outcome=outcome.name,
        ids=table[outcome.id_column],
        account_ids=table["account_id"],
        as_of=table[outcome.as_of_column],
        X=spec.features(rows, crm.extract_date),
        y=outcome.label(table),
        spec=spec,
        input_spec=outcome_input_spec(spec, rows).to_dict(),
    )


def snapshot_attributes(accounts: pd.DataFrame, account_ids: pd.Series, columns: list[str]) -> pd.DataFrame:
    """The accounts table's ``columns`` (those it has) for each of ``account_ids``, in their order.

    Unknown accounts get missing values. Only these columns are copied, and only the named
    accounts' rows are looked up.
    """
    ids = pd.Series(account_ids).reset_index(drop=True)
    columns = [c for c in columns if c in accounts.columns]
    table = accounts[["account_id", *columns]]
    if len(ids) == len(table) and ids.equals(table["account_id"].reset_index(drop=True)):
        # The whole book in table order (the ICP's book): the columns are shared, not copied.
        return table[columns].reset_index(drop=True)
    table = _records_of(table, ids)
    return table.set_index("account_id")[columns].reindex(ids.to_numpy()).reset_index(drop=True)


def account_attributes_as_of(
    crm: CRMData,
    account_ids: pd.Series,
    as_of: pd.Series | pd.Timestamp,
    columns: list[str],
    snapshot_max_age_days: int | None = None,
    snapshot_columns: list[str] | None = None,
) -> pd.DataFrame:
    """Raw account attribute ``columns`` for each (account, time).

    ``account_history`` columns are read as of the time, the others from the accounts snapshot —
    masked for rows older than ``snapshot_max_age_days`` before the extract date when listed in
    ``snapshot_columns``.
    """
    ids = pd.Series(account_ids).reset_index(drop=True)
    times = pd.Series(as_of, index=ids.index) if not isinstance(as_of, pd.Series) else as_of.reset_index(drop=True)
    history = [c for c in columns if crm.has(HISTORY_TABLE) and c in crm[HISTORY_TABLE].columns]
    out = snapshot_attributes(crm["accounts"], ids, [c for c in columns if c not in history])
    if history:
        out = pd.concat([out, history_as_of(crm[HISTORY_TABLE], ids, times, history)], axis=1)
    if snapshot_columns and snapshot_max_age_days is not None:
        cutoff = pd.Timestamp(crm.extract_date) - pd.Timedelta(days=snapshot_max_age_days)
        old = (pd.to_datetime(times) < cutoff).to_numpy()
        for c in snapshot_columns:
            if c in out.columns and c not in history:
                out[c] = out[c].mask(old)
    out.insert(0, "account_id", ids.to_numpy())
    return out.reindex(columns=["account_id", *columns])
