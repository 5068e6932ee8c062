"""The one typed configuration object that flows through icpkit.

Loaded from YAML with :func:`load_config`. Every model forbids unknown keys, so a typo in a
config file is an error that names the key instead of a setting silently ignored.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from icpkit.errors import ConfigError

TableName = Literal["accounts", "leads", "opportunities", "subscriptions", "activities"]
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


class TableConfig(_Strict):
    """How one CRM table is read and mapped onto the contract."""

    #: File name inside the source folder (default ``<table>.csv`` or ``<table>.parquet``),
    #: or the table name in a SQL database (default: the contract name).
    source: str | None = None
    #: Source column name -> contract column name (like ``DataFrame.rename``).
    rename: dict[str, str] = Field(default_factory=dict)
    #: Derive the contract label column (``converted``/``won``/``renewed``) from a status column.
    label: LabelRule | None = None
    #: Fix known bad values: ``{column: {bad: good}}`` (applied after rename).
    values: dict[str, dict[str, str]] = Field(default_factory=dict)
    #: Contract columns whose empty cells exclude the row on purpose (counted and reported).
    exclude_rows_missing: list[str] = Field(default_factory=list)
    #: Columns dropped on load (e.g. free text, personal data). Reported, never used.
    drop_columns: list[str] = Field(default_factory=list)


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

    @field_validator("tables", mode="after")
    @classmethod
    def _all_tables(cls, v: dict[str, TableConfig]) -> dict[str, TableConfig]:
        return {**_default_tables(), **v}

    def is_sql(self) -> bool:
        return "://" in self.source


class AttributesConfig(_Strict):
    """Tags account/entity attributes by ICP dimension.

    Untagged attributes are still features; they are reported under the dimension ``other``.
    ``behavioral`` attributes feed the engagement score, all others the fit score.
    """

    dimensions: dict[Dimension, list[str]] = Field(default_factory=dict)

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
        for dim, cols in self.dimensions.items():
            if column in cols:
                return dim
        return "other"


class LeakageConfig(_Strict):
    #: Columns known to be written after the outcome; refused as features wherever they appear.
    deny_columns: list[str] = Field(
        default_factory=lambda: [
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
        ]
    )
    #: A single feature whose own ROC-AUC on the label exceeds this stops training.
    max_single_feature_auc: float = Field(0.95, gt=0.5, le=1.0)


class TuningConfig(_Strict):
    """The Optuna budget: a trial count, so that the same data gives the same model anywhere."""

    n_trials: int = Field(20, ge=1)
    #: Optional safety net. ``None`` (default): no wall-clock cap. When set and it cuts the
    #: search, the tuning result says so (``cut_by_timeout``) and reruns may differ.
    timeout_seconds: float | None = Field(None, gt=0)


class TrainingConfig(_Strict):
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
    #: Bootstrap resamples for the chosen model's metric CIs.
    bootstrap_samples: int = Field(200, ge=10)
    #: Rows of the test period explained with TreeSHAP for plots and weights (exact SHAP is slow).
    shap_sample_rows: int = Field(2000, ge=100)


class TrackingConfig(_Strict):
    #: ``None``: the caller decides (the pipelines use ``MLFLOW_TRACKING_URI`` or
    #: ``sqlite:///mlruns/mlflow.db`` under the project root).
    tracking_uri: str | None = None
    experiment: str = "icpkit"
    register_models: bool = True
    model_prefix: str = "icp"


class TiersConfig(_Strict):
    #: Lower bounds of Perfect, Strong, Moderate (Weak is what is left).
    cutoffs: dict[str, float] = Field(
        default_factory=lambda: {"Perfect": 80.0, "Strong": 60.0, "Moderate": 40.0}
    )
    #: If set, tiers by sales capacity: the top N % of accounts by fit are "Perfect" whatever
    #: their score, the rest are tiered by the cutoffs below Perfect.
    capacity_percent: float | None = Field(None, gt=0, lt=100)


class ICPConfig(_Strict):
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


class Config(_Strict):
    """The whole run: data, attributes, training, tracking, ICP."""

    seed: int = 42
    data: DataConfig
    attributes: AttributesConfig = Field(default_factory=AttributesConfig)
    leakage: LeakageConfig = Field(default_factory=LeakageConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    icp: ICPConfig = Field(default_factory=ICPConfig)


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
