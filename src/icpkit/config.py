"""The one typed configuration object that flows through icpkit.

Loaded from YAML with :func:`load_config`. Every model forbids unknown keys, so a typo in a
config file is an error that names the key instead of a setting silently ignored.
"""

from __future__ import annotations

import codecs
import datetime as dt
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from icpkit.errors import ConfigError

TableName = Literal["accounts", "leads", "opportunities", "subscriptions", "activities", "account_history"]
OutcomeName = Literal["conversion", "win", "expansion", "renewal"]
Dimension = Literal["firmographic", "technographic", "behavioral", "business_need", "growth"]

ALL_OUTCOMES: tuple[OutcomeName, ...] = ("conversion", "win", "expansion", "renewal")
DIMENSIONS: tuple[Dimension, ...] = (
    "firmographic",
    "technographic",
    "behavioral",
    "business_need",
    "growth",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class LabelRule(_Strict):
    """Derive a 0/1 label from a status column, e.g. ``deal_stage: Won / Lost``.

    Values in ``positive`` become 1, in ``negative`` 0, in ``open`` (and empty cells) stay empty
    (scored, never trained on). Any other value is a data-contract error, so a new stage in the
    CRM is noticed rather than silently treated as open.
    """

    column: str
    positive: list[str]
    negative: list[str]
    open: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _disjoint(self) -> LabelRule:
        sets = {"positive": set(self.positive), "negative": set(self.negative), "open": set(self.open)}
        names = list(sets)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                both = sets[a] & sets[b]
                if both:
                    raise ValueError(f"values {sorted(both)} are listed as both {a} and {b}")
        return self


class SourceConfig(_Strict):
    """Where one table's rows come from: a file (or SQL table) or a query, and its own mapping.

    Also an entry of ``data.tables.activities.sources``, where several sources are concatenated.
    """

    #: File name inside the source folder (default ``<table>.csv`` or ``<table>.parquet``),
    #: or the table name in a SQL database (default: the contract name).
    source: str | None = None
    #: A single SELECT instead of a file: DuckDB over the source folder's files (relative paths
    #: resolve from that folder), or the database's own SQL for a SQL source.
    query: str | None = None
    #: Text encoding of a CSV file (Python codec name, e.g. ``latin-1``, ``cp1252``).
    encoding: str = "utf-8"
    #: Derived columns, ``{column: DuckDB SQL expression}`` over the columns as read (before rename).
    derive: dict[str, str] = Field(default_factory=dict)
    #: Source column name -> contract column name (like ``DataFrame.rename``).
    rename: dict[str, str] = Field(default_factory=dict)

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, v: str) -> str:
        try:
            codecs.lookup(v)
        except LookupError:
            raise ValueError(
                f"unknown encoding {v!r} (use a Python codec name such as latin-1 or cp1252)"
            ) from None
        return v

    @field_validator("query")
    @classmethod
    def _non_empty_query(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("query is empty")
        return v

    @model_validator(mode="after")
    def _one_origin(self) -> SourceConfig:
        if self.source is not None and self.query is not None:
            raise ValueError("set either source (a file or SQL table) or query, not both")
        return self


class TableConfig(SourceConfig):
    """How one CRM table is read and mapped onto the contract."""

    #: Several sources concatenated into this table (only ``activities``), each with its own
    #: source or query, derive and rename; the table-level keys below then apply to the result.
    sources: list[SourceConfig] | None = None
    #: Derive the contract label column (``converted``/``won``/``renewed``) from a status column.
    label: LabelRule | None = None
    #: Fix known bad values: ``{column: {bad: good}}`` (applied after rename).
    values: dict[str, dict[str, str]] = Field(default_factory=dict)
    #: Contract columns whose empty cells exclude the row on purpose (counted and reported).
    exclude_rows_missing: list[str] = Field(default_factory=list)
    #: Columns dropped on load (e.g. free text, personal data). Reported, never used.
    drop_columns: list[str] = Field(default_factory=list)
    #: strptime format of this table's day/month dates (e.g. ``%d/%m/%Y``); without it such dates
    #: are refused as ambiguous. ISO dates (2024-03-31) never need it.
    date_format: str | None = None
    #: Placeholder texts read as empty in this table, added to ``data.missing_values``.
    missing_values: list[str] = Field(default_factory=list)

    @field_validator("date_format")
    @classmethod
    def _is_strptime_format(cls, v: str | None) -> str | None:
        if v is not None and "%" not in v:
            raise ValueError(f"date_format {v!r} is not a strptime format (e.g. '%d/%m/%Y')")
        return v

    @model_validator(mode="after")
    def _sources_alone(self) -> TableConfig:
        if self.sources is not None:
            if self.source is not None or self.query is not None:
                raise ValueError("set either sources (several) or source / query (one), not both")
            if not self.sources:
                raise ValueError("sources is empty: list at least one source")
            for i, src in enumerate(self.sources):
                if src.source is None and src.query is None:
                    raise ValueError(f"sources[{i}]: set its source (a file or SQL table) or its query")
        return self


def _default_tables() -> dict[str, TableConfig]:
    return {name: TableConfig() for name in TableName.__args__}  # type: ignore[attr-defined]


class SyntheticConfig(_Strict):
    """Generate the built-in synthetic CRM into ``data.source`` when that folder has no data yet."""

    n_accounts: int = Field(20_000, ge=100)
    seed: int = 7
    file_format: Literal["csv", "parquet"] = "csv"


class DataConfig(_Strict):
    """Where the CRM lives and how its tables map onto the contract."""

    #: A folder of CSV/Parquet files, or a SQL URL (``sqlite:///crm.db``, ``duckdb:///crm.duckdb``).
    #: Relative folder paths resolve against the config file's folder.
    source: str
    #: Date the export was taken. Events after it are errors. ``None``: the caller passes today.
    extract_date: dt.date | None = None
    tables: dict[TableName, TableConfig] = Field(default_factory=_default_tables)
    #: Set for the built-in synthetic CRM: generated into ``source`` if it is missing.
    synthetic: SyntheticConfig | None = None
    #: Placeholder texts read as empty in every table (e.g. ``Select``, ``N/A``, ``-``), compared
    #: after stripping whitespace; each replacement is counted and reported as a repair.
    missing_values: list[str] = Field(default_factory=list)
    #: Share of an attribute's non-empty values that must parse as numbers (or as dates) for the
    #: column to be typed so; the other values become empty, counted and reported as repairs.
    numeric_share: float = Field(0.95, gt=0.5, le=1.0)

    @field_validator("tables", mode="after")
    @classmethod
    def _all_tables(cls, v: dict[str, TableConfig]) -> dict[str, TableConfig]:
        for name, table in v.items():
            if table.sources is not None and name != "activities":
                raise ValueError(f"tables.{name}.sources: only activities can have several sources")
        return {**_default_tables(), **v}

    def is_sql(self) -> bool:
        """Whether ``source`` is a database URL (it contains ``://``) rather than a folder."""
        return "://" in self.source


AttributeRole = Literal["customer", "offer", "sales_org", "identifier"]


class AttributesConfig(_Strict):
    """What each attribute is: its ICP dimension, its role and (for numeric codes) its kind.

    Untagged attributes are still features; they are reported under the dimension ``other``.
    ``behavioral`` attributes feed the engagement score, the other customer traits the fit score.
    Roles are inferred (see :mod:`icpkit.attributes`); ``roles`` overrides the inference.
    """

    dimensions: dict[Dimension, list[str]] = Field(default_factory=dict)
    #: Attribute -> role: customer (an ICP trait), offer (deal / subscription / lead term),
    #: sales_org (owner, rep, manager: never a trait or exclusion), identifier (never a feature).
    roles: dict[str, AttributeRole] = Field(default_factory=dict)
    #: Numeric columns that are codes (region 3, browser 7): read as categories, not numbers.
    categorical: list[str] = Field(default_factory=list)
    #: Account attributes tagged behavioral are export-date snapshots (tickets in the last 90 days
    #: *as of the export*). Without an ``account_history`` table they are not used for rows older
    #: than this many days before the extract date (null: always used).
    snapshot_max_age_days: int | None = Field(180, ge=0)

    @model_validator(mode="after")
    def _each_once(self) -> AttributesConfig:
        seen: dict[str, str] = {}
        for dim, cols in self.dimensions.items():
            for col in cols:
                if col in seen:
                    raise ValueError(f"attribute {col!r} is tagged both {seen[col]} and {dim}")
                seen[col] = dim
        return self

    def dimension_of(self, column: str) -> str:
        """The ICP dimension ``column`` is tagged with, or ``"other"``."""
        for dim, cols in self.dimensions.items():
            if column in cols:
                return dim
        return "other"


#: Columns known to be written after the outcome, refused as features unless replaced.
DEFAULT_DENY_COLUMNS: tuple[str, ...] = (
    "stage",
    "deal_stage",
    "status",
    "close_reason",
    "loss_reason",
    "closed_at",
    "close_date",
    "churn_date",
    "churned_at",
    "churn_reason",
    "end_date",
    "expansion_arr",
    "converted_at",
)


class LeakageConfig(_Strict):
    """Columns refused as features, and the single-feature leak alarm.

    ``deny_columns`` in a config *extends* :data:`DEFAULT_DENY_COLUMNS`; ``deny_columns_replace``
    (when not null) replaces the defaults. After validation ``deny_columns`` holds the whole
    effective list, so code reading it sees every denied name; match with :meth:`is_denied`,
    which ignores case (``Status`` is ``status``).
    """

    #: Replaces the built-in list when set; null keeps it. Declared first: ``deny_columns`` reads it.
    deny_columns_replace: list[str] | None = None
    #: Columns known to be written after the outcome; refused as features wherever they appear.
    #: validate_default: the validator must add the defaults to an absent key too.
    deny_columns: list[str] = Field(default_factory=list, validate_default=True)
    #: A single feature whose own ROC-AUC on the label exceeds this stops training.
    max_single_feature_auc: float = Field(0.95, gt=0.5, le=1.0)

    @field_validator("deny_columns", mode="after")
    @classmethod
    def _extend_defaults(cls, v: list[str], info: ValidationInfo) -> list[str]:
        # Re-running on the effective list (a dumped config, an assignment) changes nothing.
        base = info.data.get("deny_columns_replace")
        base = list(DEFAULT_DENY_COLUMNS) if base is None else base
        seen: dict[str, str] = {}
        for name in [*base, *v]:
            seen.setdefault(name.casefold(), name)
        return list(seen.values())

    def is_denied(self, column: str) -> bool:
        """Whether ``column`` is on the effective deny list (case-insensitive)."""
        return column.casefold() in {c.casefold() for c in self.deny_columns}


class TuningConfig(_Strict):
    """The Optuna budget: a trial count, so that the same data gives the same model anywhere."""

    n_trials: int = Field(20, ge=1)
    #: Optional safety net. ``None`` (default): no wall-clock cap. When set and it cuts the
    #: search, the tuning result says so (``cut_by_timeout``) and reruns may differ.
    timeout_seconds: float | None = Field(None, gt=0)


class TrainingConfig(_Strict):
    """Which outcomes to train and how: split, sample minimums, tuning, threads, bootstrap."""

    outcomes: list[OutcomeName] = Field(default_factory=lambda: list(ALL_OUTCOMES))
    #: ``time``: train < validation < test by as-of time. ``random``: for exports without dates;
    #: stratified, seeded and grouped by account (the test period is then not later than training).
    split: Literal["time", "random"] = "time"
    #: Latest fraction of as-of times held out as the untouched test period.
    test_fraction: float = Field(0.2, gt=0, lt=0.5)
    #: Fraction (of what precedes the test period) used for validation / calibration.
    validation_fraction: float = Field(0.2, gt=0, lt=0.5)
    min_rows: int = Field(200, ge=10)
    min_positives: int = Field(30, ge=5)
    engagement_windows_days: list[int] = Field(default_factory=lambda: [30, 90, 180])
    tuning: TuningConfig = Field(default_factory=TuningConfig)
    max_boost_rounds: int = Field(1000, ge=10)
    #: Refit the chosen settings on training + validation rows before the test period.
    refit: bool = True
    #: Threads per fit for LightGBM, BLAS and OpenMP alike. 1 never oversubscribes a busy
    #: machine, and a fixed count keeps deterministic boosters identical across runs.
    num_threads: int = Field(1, ge=1)
    #: Outcomes trained side by side (threads, each fit at ``num_threads``). Two single-threaded
    #: fits use both cores of a small machine without any pool oversubscribing, and give the
    #: same models as one at a time; 1 trains them in turn.
    parallel_outcomes: int = Field(2, ge=1)
    #: At most this many training + validation rows fit the models (a seeded sample, in the same
    #: train / validation proportions); test metrics always use every test row. Fitting cost grows
    #: faster than the rows (more rows support more boosting rounds), so without a cap a million
    #: accounts' leads cost 17x what 100k do. ``None``: every row.
    max_fit_rows: int | None = Field(100_000, ge=1000)
    #: Bootstrap resamples for the chosen model's metric CIs.
    bootstrap_samples: int = Field(200, ge=10)
    #: Rows of the test period explained with TreeSHAP for plots and weights (exact SHAP is slow).
    shap_sample_rows: int = Field(2000, ge=100)


class TrackingConfig(_Strict):
    """Where runs go and how models are registered."""

    #: ``None``: the caller decides (the pipelines use ``MLFLOW_TRACKING_URI`` or
    #: ``sqlite:///mlruns/mlflow.db`` under the project root).
    tracking_uri: str | None = None
    experiment: str = "icpkit"
    register_models: bool = True
    #: Registered names are ``<prefix>-<outcome>``, ``<prefix>-segments``, ``<prefix>-scorer``:
    #: one prefix per dataset keeps two datasets from competing for one champion.
    model_prefix: str = Field("icp", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    #: When the champion cannot score the new holdout (its input columns changed), the new
    #: version becomes champion instead of challenger (the version's gate reason says so).
    promote_on_schema_change: bool = False
    #: Let a dataset other than the champion's compete for (and replace) it, with a warning.
    allow_dataset_change: bool = False


class TiersConfig(_Strict):
    """How fit scores become tiers: score cutoffs, or a sales capacity."""

    #: Lower bounds of Perfect, Strong, Moderate (Weak is what is left).
    cutoffs: dict[str, float] = Field(
        default_factory=lambda: {"Perfect": 80.0, "Strong": 60.0, "Moderate": 40.0}
    )
    #: If set, tiers by sales capacity: the top N % of accounts by fit are "Perfect" whatever
    #: their score, the rest are tiered by the cutoffs below Perfect.
    capacity_percent: float | None = Field(None, gt=0, lt=100)

    @field_validator("cutoffs")
    @classmethod
    def _decreasing(cls, v: dict[str, float]) -> dict[str, float]:
        validate_tier_cutoffs(v)
        return v


def validate_tier_cutoffs(cutoffs: dict[str, float]) -> None:
    """Tier lower bounds lie within 0-100 and decrease from the best tier to the worst."""
    previous_tier, previous = None, float("inf")
    for tier, cutoff in cutoffs.items():
        value = float(cutoff)
        if not 0.0 <= value <= 100.0:
            raise ValueError(f"cutoff for tier {tier!r} must be within 0-100, got {cutoff}")
        if value >= previous:
            raise ValueError(
                f"cutoffs must decrease from best to worst tier: {tier!r} ({cutoff}) is not below "
                f"{previous_tier!r} ({previous})"
            )
        previous_tier, previous = tier, value


class ICPConfig(_Strict):
    """How the ICP is derived from the outcome models (see README "The ICP")."""

    #: How much each outcome counts in the combined fit weight (engagement uses conversion).
    fit_blend: dict[OutcomeName, float] = Field(
        default_factory=lambda: {"win": 1.0, "renewal": 1.0, "expansion": 1.0}
    )
    engagement_blend: dict[OutcomeName, float] = Field(default_factory=lambda: {"conversion": 1.0})
    tiers: TiersConfig = Field(default_factory=TiersConfig)
    #: Share of engagement / fit above which an account counts as "high" in the quadrant.
    high_fit: float = 60.0
    high_engagement: float = 60.0
    segments_k_range: list[int] = Field(default_factory=lambda: [2, 3, 4, 5, 6, 7, 8])
    significance_level: float = Field(0.05, gt=0, lt=1)
    #: Most points the negative-ICP penalty takes off a fit score.
    max_penalty_points: float = Field(20.0, ge=0, le=100)
    #: Largest share of the book the penalty may touch; beyond it the broadest churn drivers are
    #: left out of the penalty (and the profile says so), so tiers stay stable shares.
    max_penalty_share: float = Field(0.25, gt=0, le=1)
    #: Largest share of the book the exclusions may flag together; a broader driver is a matter
    #: for the fit score, not an exclusion (the profile says so).
    max_exclusion_share: float = Field(0.25, gt=0, le=1)


class ScoringConfig(_Strict):
    """How ``pipelines.score`` scores the CRM and where it writes (see README "Scoring")."""

    #: Subscription terms ending within this many days of the scoring date are "due for renewal".
    renewal_horizon_days: int = Field(90, ge=0)
    #: Rows scored at once: bounds memory, whatever the input size.
    chunk_rows: int = Field(100_000, ge=1)
    #: A batch fails when more than this share of its rows hold a category value unseen in training.
    max_unseen_share: float = Field(0.05, ge=0, le=1)
    #: Output folder (``<folder>/<date>/``) or SQL URL. ``None``: ``outputs/scores`` under the project.
    output: str | None = None
    #: Prefix of the output tables in a SQL database (``icp_accounts``, ``icp_score_history``...).
    sql_table_prefix: str = Field("icp_", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    #: Registry alias scored when no ``--version`` is given.
    alias: str = "champion"
    #: Spark master for ``--engine spark`` (a cluster URL in production).
    spark_master: str = "local[2]"


class Config(_Strict):
    """The whole run: data, attributes, training, tracking, ICP, scoring."""

    seed: int = 42
    data: DataConfig
    attributes: AttributesConfig = Field(default_factory=AttributesConfig)
    leakage: LeakageConfig = Field(default_factory=LeakageConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    icp: ICPConfig = Field(default_factory=ICPConfig)
    scoring: ScoringConfig = Field(default_factory=ScoringConfig)


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    node = tree
    *parents, leaf = dotted.split(".")
    for key in parents:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {dotted!r}: {key!r} is not a section")
    node[leaf] = value


def _format_validation_error(err: ValidationError, where: str) -> str:
    lines = [f"invalid config {where}:"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        if e["type"] == "extra_forbidden":
            lines.append(f"  - {key}: unknown key (check spelling; allowed keys are documented in README)")
        else:
            lines.append(f"  - {key}: {e['msg']} (got {e.get('input')!r})")
    return "\n".join(lines)


def config_from_dict(raw: dict[str, Any], where: str = "(dict)", base_dir: Path | None = None) -> Config:
    """Validate a plain dict as a :class:`Config`; relative data folders resolve from ``base_dir``."""
    try:
        cfg = Config.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err, where)) from None
    if base_dir is not None and not cfg.data.is_sql():
        src = Path(cfg.data.source)
        if not src.is_absolute():
            cfg.data.source = str((base_dir / src).resolve())
    return cfg


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> Config:
    """Load a YAML config; ``overrides`` maps dotted keys (``training.tuning.n_trials``) to values."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    for key, value in (overrides or {}).items():
        _set_dotted(raw, key, value)
    return config_from_dict(raw, where=str(path), base_dir=path.parent)
