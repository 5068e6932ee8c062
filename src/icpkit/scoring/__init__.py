"""Scoring: input checks, entities to score, chunked batch scoring, outputs, overrides, history.

No MLflow here (models arrive as objects with ``predict(frame) -> DataFrame``); the optional
Spark path in :mod:`icpkit.scoring.spark` imports MLflow and PySpark inside its functions.
"""

from icpkit.scoring.batch import INPUT_ROW, ScoredTable, Scorer, iter_file_chunks, score_file, score_frame
from icpkit.scoring.entities import (
    ENTITY_TABLES,
    account_frame,
    entities_to_score,
    entity_frame,
    expected_value,
    open_leads,
    open_opportunities,
    renewals_due,
)
from icpkit.scoring.history import history_rows, merge_history, previous_run, tier_changes
from icpkit.scoring.inputs import (
    REJECTED_REASON,
    CheckedBatch,
    ColumnSpec,
    InputSpec,
    ScoringInputError,
    enforce_unseen_share,
    to_pyfunc_input,
)
from icpkit.scoring.outputs import (
    TABLES,
    FolderDestination,
    RunOutput,
    SQLDestination,
    open_destination,
    stamp,
    version_label,
)
from icpkit.scoring.overrides import AppliedOverride, Override, apply_overrides, read_overrides

__all__ = [
    "ENTITY_TABLES",
    "INPUT_ROW",
    "REJECTED_REASON",
    "TABLES",
    "AppliedOverride",
    "CheckedBatch",
    "ColumnSpec",
    "FolderDestination",
    "InputSpec",
    "Override",
    "RunOutput",
    "SQLDestination",
    "ScoredTable",
    "Scorer",
    "ScoringInputError",
    "account_frame",
    "apply_overrides",
    "enforce_unseen_share",
    "entities_to_score",
    "entity_frame",
    "expected_value",
    "history_rows",
    "iter_file_chunks",
    "merge_history",
    "open_destination",
    "open_leads",
    "open_opportunities",
    "previous_run",
    "read_overrides",
    "renewals_due",
    "score_file",
    "score_frame",
    "stamp",
    "tier_changes",
    "to_pyfunc_input",
    "version_label",
]
