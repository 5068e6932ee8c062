"""Scoring: input checks, entities to score, chunked batch scoring, outputs, overrides, history.

No MLflow here (models arrive as objects with ``predict(frame) -> DataFrame``); the optional
Spark path in :mod:`icpkit.scoring.spark` imports MLflow and PySpark inside its functions.
"""

from icpkit.scoring.inputs import (
    REJECTED_REASON,
    CheckedBatch,
    ColumnSpec,
    InputSpec,
    ScoringInputError,
    enforce_unseen_share,
    to_pyfunc_input,
)

__all__ = [
    "REJECTED_REASON",
    "CheckedBatch",
    "ColumnSpec",
    "InputSpec",
    "ScoringInputError",
    "enforce_unseen_share",
    "to_pyfunc_input",
]
