"""The registered scorers: raw rows in, scores and reasons out, bad input handled and counted.

Two kinds of model are served through MLflow (``icpkit.registry.pyfunc_model``):

- **``icp-scorer``** (:class:`ICPScorer`): accounts in the contract's raw form — attribute columns
  plus the engagement counts :func:`icpkit.features.engagement_features` builds from activities as
  of a date — scored by the fitted ICP (:class:`icpkit.icp.model.FittedICP`), so training, the
  profile and every later score agree by construction;
- **``icp-<outcome>``** (:class:`OutcomeScorer`): the entity row in contract form (lead,
  opportunity or subscription term) with its account's attributes and engagement; the
  point-in-time features are built inside with the training code.

Both check their input with the :class:`~icpkit.scoring.inputs.InputSpec` learnt in training:
a missing column is one clear error, extra columns are ignored, bad rows are rejected with a
``rejected_reason`` while the batch goes on, unseen categories are scored as missing and counted,
and ids and row order are kept (rejected rows come back with empty scores).
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from icpkit.features import FeatureSpec
from icpkit.icp.model import SCORE_COLUMNS, FittedICP
from icpkit.models.propensity import PropensityModel
from icpkit.scoring.inputs import MAX_EXAMPLES, REJECTED_REASON, CheckedBatch, InputSpec, enforce_unseen_share

log = logging.getLogger(__name__)

ICP_SCORER_FORMAT = "icpkit.ICPScorer/1"
AS_OF = "as_of"
TOP_REASONS = 3


def score_checked(
    spec: InputSpec,
    frame: pd.DataFrame,
    score: Callable[[pd.DataFrame], pd.DataFrame],
    empty_output: pd.DataFrame,
    max_unseen_share: float,
    table: str,
    workers: int = 1,
) -> pd.DataFrame:
    """Check ``frame``, score the accepted rows, and return one output row per input row.

    Rejected rows keep their id and get empty scores and a ``rejected_reason``; the unseen-value
    counts are logged (and fail the batch beyond ``max_unseen_share``, raised by the check).
    ``workers > 1`` scores a large batch (at least ``MIN_ROWS_PER_WORKER`` rows per worker) in
    that many forked processes, one contiguous chunk each, with BLAS / OpenMP held to one thread
    per worker; the output is the same as with one process.
    """
    if workers > 1 and len(frame) >= 2 * MIN_ROWS_PER_WORKER and _can_fork():
        spec.require_columns(frame.columns, table)
        parts = _score_in_processes(spec, frame, score, empty_output, table, workers)
        if parts is not None:
            unseen: dict[str, int] = {}
            examples: dict[str, set[str]] = {}
            for part in parts:
                for column, count in part.unseen.items():
                    unseen[column] = unseen.get(column, 0) + count
                    examples.setdefault(column, set()).update(part.unseen_examples.get(column, []))
            shown = {c: sorted(v)[:MAX_EXAMPLES] for c, v in examples.items()}
            n_accepted, with_unseen = sum(p.n_accepted for p in parts), sum(p.rows_with_unseen for p in parts)
            enforce_unseen_share(table, unseen, shown, with_unseen, n_accepted, max_unseen_share)
            _log_unseen(table, unseen)
            return pd.concat([p.output for p in parts])
    batch = spec.check(frame, max_unseen_share=max_unseen_share, table=table)
    _log_unseen(table, batch.unseen)
    return _scored_output(spec, frame, batch, score, empty_output)


def _log_unseen(table: str, unseen: dict[str, int]) -> None:
    for column, count in unseen.items():
        if count:
            log.warning("%s: %d row(s) with an unseen %s value, scored as missing", table, count, column)


def _scored_output(
    spec: InputSpec,
    frame: pd.DataFrame,
    batch: CheckedBatch,
    score: Callable[[pd.DataFrame], pd.DataFrame],
    empty_output: pd.DataFrame,
) -> pd.DataFrame:
    scored = score(batch.frame) if len(batch.frame) else empty_output.iloc[0:0]
    out = scored.reindex(frame.index)
    if spec.id_column and spec.id_column in frame.columns and spec.id_column not in out.columns:
        out.insert(0, spec.id_column, frame[spec.id_column].to_numpy())
    out[REJECTED_REASON] = batch.rejected[REJECTED_REASON].reindex(frame.index).astype(object)
    return out


#: Fewest rows a scoring worker process gets: below that, one process scores the batch.
MIN_ROWS_PER_WORKER = 50_000


@dataclass
class _Part:
    """One worker's share of a batch: its output rows and its unseen-value counts."""

    output: pd.DataFrame
    n_accepted: int
    rows_with_unseen: int
    unseen: dict[str, int]
    unseen_examples: dict[str, list[str]]


#: The batch being scored, handed to forked workers by inheritance (nothing is pickled in).
_JOB: tuple[Any, ...] | None = None


def _can_fork() -> bool:
    return "fork" in mp.get_all_start_methods() and mp.current_process().daemon is False


def _score_part(bounds: tuple[int, int]) -> _Part:
    assert _JOB is not None
    spec, frame, score, empty_output, table = _JOB
    chunk = frame.iloc[bounds[0] : bounds[1]]
    # The share of unseen values is enforced over the whole batch, by the parent.
    batch = spec.check(chunk, max_unseen_share=1.0, table=table)
    with threadpool_limits(limits=1):
        output = _scored_output(spec, chunk, batch, score, empty_output)
    return _Part(output, len(batch.frame), batch.rows_with_unseen, dict(batch.unseen), dict(batch.unseen_examples))


def _score_in_processes(
    spec: InputSpec,
    frame: pd.DataFrame,
    score: Callable[[pd.DataFrame], pd.DataFrame],
    empty_output: pd.DataFrame,
    table: str,
    workers: int,
) -> list[_Part] | None:
    """Score contiguous chunks of ``frame`` in ``workers`` forked processes, in input order.

    Each row's scores depend on that row alone, so the concatenated chunks equal one-chunk scoring
    (:func:`score_checked` checks the dtypes and falls back to one process if a chunk differs,
    e.g. a chunk whose rows were all rejected). ``None``: the chunks could not be combined.
    """
    global _JOB
    cuts = np.linspace(0, len(frame), workers + 1).astype(int)
    _JOB = (spec, frame, score, empty_output, table)
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("fork")) as pool:
            parts = list(pool.map(_score_part, list(zip(cuts[:-1], cuts[1:], strict=True))))
    finally:
        _JOB = None
    dtypes = [tuple(p.output.dtypes) for p in parts]
    if any(p.n_accepted == 0 for p in parts) or len(set(map(str, dtypes))) != 1:
        return None
    return parts


class ICPScorer:
    """The fitted ICP served to consumers (``icp-scorer``)."""

    def __init__(
        self, fitted: FittedICP, input_spec: InputSpec, max_unseen_share: float = 0.05, workers: int | None = None
    ) -> None:
        self.fitted = fitted
        self.input_spec = input_spec
        self.max_unseen_share = max_unseen_share
        #: Processes a large batch is scored in (None: one per usable core); see :func:`score_checked`.
        self.workers = workers

    def predict(self, frame: pd.DataFrame, reasons: bool = True) -> pd.DataFrame:
        """Scores of account rows.

        An optional ``as_of`` column (else the model's extract date) is the date ages and
        engagement refer to. ``reasons=False`` leaves the reason columns empty (faster).
        """
        as_of = pd.to_datetime(frame[AS_OF]) if AS_OF in frame.columns else pd.Timestamp(self.fitted.extract_date)

        def score(rows: pd.DataFrame) -> pd.DataFrame:
            when = as_of[rows.index] if isinstance(as_of, pd.Series) else as_of
            out = self.fitted.score(rows, when, reasons=reasons)
            out.index = rows.index
            out["icp_version"] = self.fitted.version
            return out

        empty = pd.DataFrame(columns=[*SCORE_COLUMNS, "icp_version"])
        workers = self.workers if self.workers is not None else usable_cores()
        return score_checked(self.input_spec, frame, score, empty, self.max_unseen_share, "accounts", workers)

    def save(self, folder: str | Path) -> Path:
        """Write the fitted ICP with the input spec into ``folder``'s ``model.json``; returns the folder."""
        folder = self.fitted.save(folder)
        spec = json.loads((folder / "model.json").read_text())
        doc = {"format": ICP_SCORER_FORMAT, "fitted_icp": spec, "input_spec": self.input_spec.to_dict(),
               "max_unseen_share": self.max_unseen_share}  # fmt: skip
        (folder / "model.json").write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n")
        return folder


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def load_icp_scorer(folder: Path) -> ICPScorer:
    """Read the scorer :meth:`ICPScorer.save` wrote into ``folder``."""
    doc = json.loads((Path(folder) / "model.json").read_text())
    return ICPScorer(
        FittedICP.from_dict(doc["fitted_icp"]), InputSpec.from_dict(doc["input_spec"]), doc["max_unseen_share"]
    )


def icp_input_spec(fitted: FittedICP, book: pd.DataFrame) -> InputSpec:
    """The raw input of the ICP scorer, learnt from the book it was fitted on."""
    cols = fitted.input_columns()
    specs = {**(fitted.fit.attributes if fitted.fit else {}), **fitted.rule_attributes}
    if fitted.engagement is not None:
        specs |= fitted.engagement.attributes
    if fitted.segmentation is not None:
        specs |= fitted.segmentation.attributes
    frame = book.reindex(columns=cols)
    return InputSpec.from_frame(
        frame, id_column="account_id", count_columns=fitted.engagement_inputs(),
        categorical=[n for n, s in specs.items() if s.kind == "categorical" and n in frame],
        boolean=[n for n, s in specs.items() if s.kind == "boolean" and n in frame],
    )  # fmt: skip


class OutcomeScorer:
    """``predict(rows)`` -> ``<outcome>_propensity``, ``reasons_up``, ``reasons_down`` (same index)."""

    def __init__(self, model: PropensityModel) -> None:
        spec = model.metadata.get("feature_spec")
        if not spec:
            raise ValueError(f"the {model.outcome} model was saved without its feature spec")
        self.model = model
        self.spec = FeatureSpec.from_dict(spec)
        inputs = model.metadata.get("input_spec")
        self.input_spec = InputSpec.from_dict(inputs) if inputs else None
        self.max_unseen_share = float(model.metadata.get("max_unseen_share", 0.05))

    @property
    def output_column(self) -> str:
        """The propensity column, ``<outcome>_propensity``."""
        return f"{self.model.outcome}_propensity"

    def predict(self, rows: pd.DataFrame, reasons: bool = True) -> pd.DataFrame:
        """The propensity of each row, with its reasons unless ``reasons`` is False.

        Rows are checked against the input spec first when the model carries one.
        """

        def score(accepted: pd.DataFrame) -> pd.DataFrame:
            # Rows to score are current: their account snapshot is as of now, so nothing is masked.
            X = self.spec.features(accepted, reference_date=None)
            X.index = accepted.index
            out = pd.DataFrame({self.output_column: self.model.predict_proba(X)}, index=accepted.index)
            if reasons:
                out["reasons_up"], out["reasons_down"] = self.reasons(X)
            return out

        if self.input_spec is None:
            return score(rows)
        empty = pd.DataFrame(columns=[self.output_column, "reasons_up", "reasons_down"])
        return score_checked(self.input_spec, rows, score, empty, self.max_unseen_share, self.spec.table)

    def reasons(self, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Top attributes pushing each row's log-odds up and down: ``"industry = Retail (-0.42 log-odds)"``.

        Contributions of one attribute's features (all windows of an activity type) are summed.
        """
        if not len(X):
            return np.array([], dtype=object), np.array([], dtype=object)
        # The model's exact contributions (TreeSHAP / coefficients): no shap needed at scoring time.
        values, _ = self.model.contributions(X)
        source = self.spec.feature_source
        frame = pd.DataFrame(values.to_numpy(), columns=[source.get(f, f) for f in values.columns])
        frame = frame.T.groupby(level=0, sort=False).sum().T
        attrs, contrib = list(frame.columns), frame.to_numpy()
        shown = {a: self._display(X, a) for a in attrs}
        out = []
        for sign in (1.0, -1.0):
            order = np.argsort(-sign * contrib, axis=1, kind="stable")[:, :TOP_REASONS]
            texts = [
                "; ".join(
                    f"{attrs[j]} = {shown[attrs[j]][r]} ({contrib[r, j]:+.2f} log-odds)"
                    for j in order[r] if sign * contrib[r, j] >= 0.01
                )
                for r in range(len(contrib))
            ]  # fmt: skip
            out.append(np.asarray(texts, dtype=object))
        return out[0], out[1]

    def _display(self, X: pd.DataFrame, attribute: str) -> list[str]:
        cols = [c for c, a in self.spec.feature_source.items() if a == attribute and c in X.columns]
        if len(cols) != 1:
            return ["(activity counts)"] * len(X)
        s = X[cols[0]]
        if pd.api.types.is_numeric_dtype(s.dtype):
            return ["missing" if pd.isna(v) else f"{v:,.4g}" for v in s.to_numpy()]
        return ["missing" if pd.isna(v) else str(v) for v in s.to_numpy()]


def load_outcome_scorer(folder: Path) -> Any:
    """The served outcome model: raw rows in (models saved with their feature spec), else features in."""
    model = PropensityModel.load(folder)
    if model.metadata.get("feature_spec"):
        return OutcomeScorer(model)
    from icpkit.registry.loaders import PropensityScorer

    return PropensityScorer(model)


def outcome_input_spec(spec: FeatureSpec, rows: pd.DataFrame) -> InputSpec:
    """The raw input of an outcome model, learnt from its training rows (:func:`icpkit.features.raw_rows`)."""
    cols = [spec.id_column, "account_id", *spec.input_columns()]
    attrs = {**spec.entity, **spec.account}
    frame = rows.reindex(columns=list(dict.fromkeys(cols)))
    return InputSpec.from_frame(
        frame, id_column=spec.id_column, count_columns=spec.engagement,
        keys=["account_id"] if spec.id_column != "account_id" else [],
        categorical=[n for n, s in attrs.items() if s.kind == "categorical" and n in frame],
        boolean=[n for n, s in attrs.items() if s.kind == "boolean" and n in frame],
    )  # fmt: skip


__all__: list[Any] = ["ICPScorer", "OutcomeScorer", "icp_input_spec", "outcome_input_spec", "score_checked"]
