"""Score the whole market with Spark: the same checks and the same model as the pandas path.

The input is Parquet. Each partition goes through :meth:`InputSpec.check` and
:func:`~icpkit.scoring.inputs.to_pyfunc_input` (``mapInPandas``), so rows are rejected and
unseen values counted exactly as in :mod:`icpkit.scoring.batch`; accepted rows are then scored
by ``mlflow.pyfunc.spark_udf`` on the registered model. ``pyspark`` is the optional extra
``icpkit[spark]``; it and MLflow are imported inside the functions only.

:func:`score_spark` returns Spark DataFrames (write them with Spark for a market-sized run);
:func:`score_parquet_spark` collects them into the same :class:`ScoredTable` as the pandas path.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from icpkit.errors import ICPKitError
from icpkit.scoring.batch import INPUT_ROW, REJECTED_COLUMNS, ScoredTable
from icpkit.scoring.inputs import (
    MAX_EXAMPLES,
    REJECTED_REASON,
    InputSpec,
    ScoringInputError,
    enforce_unseen_share,
    to_pyfunc_input,
)

log = logging.getLogger(__name__)

__all__ = ["SparkScores", "score_parquet_spark", "score_spark", "spark_session"]

_UNSEEN = "__unseen__"
_PREDICTION = "__prediction__"


@dataclass
class SparkScores:
    """Spark DataFrames of one scored input, plus the unseen counts (already aggregated)."""

    scores: Any
    rejected: Any
    unseen: dict[str, int]
    unseen_examples: dict[str, list[str]]
    rows_with_unseen: int
    n_scored: int


def spark_session(master: str = "local[2]", app_name: str = "icpkit-score") -> Any:
    """A SparkSession on ``master`` (``local[2]`` here; a cluster URL in production).

    Raises
    ------
    ICPKitError
        PySpark is not installed (``pip install 'icpkit[spark]'``).
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise ICPKitError("--engine spark needs PySpark: pip install 'icpkit[spark]' (and Java 17)") from None
    builder = SparkSession.builder.master(master).appName(app_name)
    session = builder.getOrCreate()
    sc = session.sparkContext
    if master.startswith("local") and sc.pythonExec == "python3":
        # PySpark's default worker is whatever "python3" is on PATH, which in a virtualenv is not
        # the interpreter that has icpkit; local workers run this one. (UDFs read pythonExec when
        # they are created. On a cluster the executors' Python is the cluster's PYSPARK_PYTHON.)
        sc.pythonExec = sys.executable
    return session


def score_spark(
    spark: Any,
    input_path: str | Path,
    model_uri: str,
    spec: InputSpec,
    *,
    tracking_uri: str | None = None,
    keep: Sequence[str] = (),
    id_column: str | None = None,
    result_type: Any = None,
    table: str = "input",
) -> SparkScores:
    """Check and score a Parquet input with Spark.

    Parameters
    ----------
    spark
        The SparkSession.
    input_path
        Parquet file or folder. An ``input_row`` column, if present, orders and names rows;
        otherwise Spark's increasing row ids are used.
    model_uri
        ``models:/icp-scorer/3``, ``runs:/...`` or a local model folder.
    spec
        The model's input spec.
    tracking_uri
        Registry for ``models:/`` URIs (``None``: MLflow's current one).
    keep, id_column, table
        As in :func:`icpkit.scoring.batch.score_frame`.
    result_type
        Spark type of the model output (``None``: from the model's output signature).

    Returns
    -------
    SparkScores
    """
    from pyspark.sql import functions as F

    df = spark.read.parquet(str(input_path))
    _require(spec, df.columns, keep, table)
    if INPUT_ROW not in df.columns:
        df = df.withColumn(INPUT_ROW, F.monotonically_increasing_id())
    id_column = id_column or spec.id_column
    checked = df.mapInPandas(_checker(spec, keep, id_column), schema=_checked_schema(spec, df, keep)).cache()
    unseen, examples, rows_with_unseen = _unseen_counts(checked, spec)
    accepted = checked.filter(F.col(REJECTED_REASON).isNull())
    udf = _model_udf(spark, model_uri, tracking_uri, result_type)
    predicted = accepted.withColumn(_PREDICTION, udf(F.struct(*[F.col(c) for c in spec.names])))
    kept = [F.col(_kept_name(c)).alias(c) for c in keep]
    is_struct = type(predicted.schema[_PREDICTION].dataType).__name__ == "StructType"
    outputs = [f"{_PREDICTION}.*"] if is_struct else [F.col(_PREDICTION).alias("prediction")]
    scores = predicted.select(INPUT_ROW, *kept, *outputs)
    rejected = checked.filter(F.col(REJECTED_REASON).isNotNull()).select(*REJECTED_COLUMNS)
    return SparkScores(scores, rejected, unseen, examples, rows_with_unseen, accepted.count())


def score_parquet_spark(
    spark: Any,
    input_path: str | Path,
    model_uri: str,
    spec: InputSpec,
    *,
    tracking_uri: str | None = None,
    keep: Sequence[str] = (),
    id_column: str | None = None,
    max_unseen_share: float = 1.0,
    result_type: Any = None,
    table: str = "input",
) -> ScoredTable:
    """:func:`score_spark`, collected in input order into the pandas path's :class:`ScoredTable`."""
    result = score_spark(
        spark, input_path, model_uri, spec, tracking_uri=tracking_uri, keep=keep,
        id_column=id_column, result_type=result_type, table=table,
    )  # fmt: skip
    scores = result.scores.orderBy(INPUT_ROW).toPandas().drop(columns=[INPUT_ROW])
    rejected = result.rejected.orderBy(INPUT_ROW).toPandas().astype({"id": "str", REJECTED_REASON: "str"})
    n_rows = len(scores) + len(rejected)
    enforce_unseen_share(
        table, result.unseen, result.unseen_examples, result.rows_with_unseen, len(scores), max_unseen_share
    )
    return ScoredTable(
        table, scores.reset_index(drop=True), rejected.reset_index(drop=True), result.unseen,
        result.unseen_examples, result.rows_with_unseen, n_rows,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# pieces


def _require(spec: InputSpec, columns: Sequence[str], keep: Sequence[str], table: str) -> None:
    spec.require_columns(columns, table)
    missing = [c for c in keep if c not in columns]
    if missing:
        raise ScoringInputError(f"table '{table}': missing column(s) {', '.join(missing)}")


def _kept_name(column: str) -> str:
    return f"__keep__{column}"


def _unseen_columns(spec: InputSpec) -> list[str]:
    return [c.name for c in spec.columns if c.kind in ("categorical", "boolean")]


def _checked_schema(spec: InputSpec, df: Any, keep: Sequence[str]) -> Any:
    """input_row, the model inputs (double / string), kept columns, rejection and unseen text."""
    from pyspark.sql.types import DoubleType, LongType, StringType, StructField, StructType

    numeric = {c.name for c in spec.columns if c.kind in ("numeric", "count", "boolean")}
    boolean_numeric = {c.name for c in spec.columns if c.kind == "boolean" and _numeric_spelling(c)}
    fields = [StructField(INPUT_ROW, LongType())]
    for c in spec.columns:
        is_double = c.name in numeric and (c.kind != "boolean" or c.name in boolean_numeric)
        fields.append(StructField(c.name, DoubleType() if is_double else StringType()))
    input_types = {f.name: f.dataType for f in df.schema.fields}
    for c in keep:
        kept_type = next((f.dataType for f in fields if f.name == c), input_types[c])
        fields.append(StructField(_kept_name(c), kept_type))
    fields += [StructField("id", StringType()), StructField(REJECTED_REASON, StringType())]
    fields += [StructField(f"{_UNSEEN}{c}", StringType()) for c in _unseen_columns(spec)]
    return StructType(fields)


def _numeric_spelling(column: Any) -> bool:
    # Booleans reach the model as doubles unless the training spelling is text ("yes"/"no").
    return column.spelling is None or not isinstance(column.spelling[1], str)


def _checker(spec: InputSpec, keep: Sequence[str], id_column: str | None) -> Any:
    """The per-partition function: the pandas path's checks, row for row."""
    unseen_cols = _unseen_columns(spec)

    def check(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for raw in batches:
            batch = spec.check(raw.reset_index(drop=True), max_unseen_share=1.0)
            model_in = to_pyfunc_input(batch.frame).reindex(raw.index)
            out = pd.DataFrame({INPUT_ROW: raw[INPUT_ROW].astype("int64")})
            for c in spec.names:
                out[c] = model_in[c]
            for c in keep:
                out[_kept_name(c)] = model_in[c] if c in model_in else raw[c]
            out["id"] = raw[id_column].astype("str") if id_column and id_column in raw else None
            out[REJECTED_REASON] = batch.rejected[REJECTED_REASON].reindex(raw.index).astype(object)
            for c in unseen_cols:
                values = batch.unseen_values[c] if c in batch.unseen_values else None
                out[f"{_UNSEEN}{c}"] = None if values is None else values.reindex(raw.index).astype(object)
            yield out.astype({REJECTED_REASON: object}).where(out.notna(), None)

    return check


def _unseen_counts(checked: Any, spec: InputSpec) -> tuple[dict[str, int], dict[str, list[str]], int]:
    from pyspark.sql import functions as F

    cols = [f"{_UNSEEN}{c}" for c in _unseen_columns(spec)]
    accepted = checked.filter(F.col(REJECTED_REASON).isNull())
    if not cols:
        return {}, {}, 0
    any_unseen = (
        F.greatest(*[F.col(c).isNotNull().cast("int") for c in cols])
        if len(cols) > 1
        else (F.col(cols[0]).isNotNull().cast("int"))
    )
    row = accepted.agg(*[F.count(c).alias(c) for c in cols], F.sum(any_unseen).alias("__rows__")).first()
    counts = {c[len(_UNSEEN) :]: int(row[c]) for c in cols if row[c]}
    examples = {}
    for col in counts:
        values = accepted.select(f"{_UNSEEN}{col}").dropna().distinct().orderBy(f"{_UNSEEN}{col}")
        examples[col] = [r[0] for r in values.limit(MAX_EXAMPLES).collect()]
    return counts, examples, int(row["__rows__"] or 0)


def _model_udf(spark: Any, model_uri: str, tracking_uri: str | None, result_type: Any) -> Any:
    import tempfile

    import mlflow.pyfunc
    from mlflow.models import Model

    from icpkit.registry.verification import download_verified

    # A registered model is downloaded and verified on the driver (no global tracking URI is
    # set); executors load that local copy. A local folder is used as it is.
    local = model_uri
    if model_uri.startswith("models:/"):
        if tracking_uri is None:
            raise ValueError("scoring a registered model on Spark needs its tracking URI")
        local = str(download_verified(tracking_uri, model_uri, tempfile.mkdtemp(prefix="icpkit-spark-")).path)
    if result_type is None:
        result_type = _struct_of_outputs(Model.load(local).signature)
    return mlflow.pyfunc.spark_udf(spark, local, result_type=result_type, env_manager="local")


_SPARK_TYPES = {
    "double": "double",
    "float": "float",
    "long": "bigint",
    "integer": "int",
    "boolean": "boolean",
}


def _struct_of_outputs(signature: Any) -> str | None:
    """A struct DDL from the output signature, so even a one-column output keeps its name.

    (``spark_udf`` would turn a one-column schema into a bare ``double``.) ``None`` when the model
    declares no output schema: ``spark_udf``'s default then applies.
    """
    outputs = getattr(signature, "outputs", None)
    if outputs is None:
        return None
    fields = [f"`{c.name}` {_SPARK_TYPES.get(getattr(c.type, 'name', ''), 'string')}" for c in outputs.inputs]
    return ", ".join(fields)
