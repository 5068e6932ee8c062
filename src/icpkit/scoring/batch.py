"""Score a frame or a Parquet / CSV file in chunks, with bounded memory and a progress bar.

Each chunk of ``chunk_rows`` rows is checked against the model's :class:`InputSpec` and scored;
the scores are concatenated in input order and rejected rows are collected with their reasons.
Files are read in Arrow record batches (only the columns the model needs), so the input never
sits in memory whole. The unseen-category rule is applied to the whole input at the end, so a
batch fails or passes the same way whatever the chunk size.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from icpkit.scoring.inputs import REJECTED_REASON, InputSpec, ScoringInputError, enforce_unseen_share

log = logging.getLogger(__name__)

__all__ = ["INPUT_ROW", "Scorer", "ScoredTable", "iter_file_chunks", "score_file", "score_frame"]

#: Position of a rejected row in the whole input (0-based), so rows without an id can be found.
INPUT_ROW = "input_row"
REJECTED_COLUMNS = [INPUT_ROW, "id", REJECTED_REASON]


class Scorer(Protocol):
    """Anything with ``predict(frame) -> DataFrame`` (same rows, same order, same index)."""

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Scores of ``frame``'s rows, one output row per input row."""
        ...


@dataclass
class ScoredTable:
    """The result of scoring one input.

    Attributes
    ----------
    name
        The table name used in messages and outputs.
    scores
        ``keep`` columns, then the model's output columns; one row per accepted input row, in
        input order, index reset.
    rejected
        ``input_row``, ``id`` (text) and ``rejected_reason`` per rejected row.
    unseen, unseen_examples
        Per column, how many scored rows held a category value unseen in training, and a few.
    rows_with_unseen
        Scored rows with at least one unseen value.
    n_rows
        Rows in the input.
    model
        The model that scored it (set by the caller; for reports).
    """

    name: str
    scores: pd.DataFrame
    rejected: pd.DataFrame
    unseen: dict[str, int] = field(default_factory=dict)
    unseen_examples: dict[str, list[str]] = field(default_factory=dict)
    rows_with_unseen: int = 0
    n_rows: int = 0
    model: str = ""


def score_frame(
    frame: pd.DataFrame,
    model: Scorer,
    spec: InputSpec,
    *,
    chunk_rows: int,
    keep: Sequence[str] = (),
    id_column: str | None = None,
    max_unseen_share: float = 1.0,
    table: str = "input",
    progress: bool | None = None,
) -> ScoredTable:
    """Score an in-memory frame in chunks.

    Parameters
    ----------
    frame
        Raw rows (extra columns ignored).
    model
        The scorer.
    spec
        The model's input spec.
    chunk_rows
        Rows per chunk (``scoring.chunk_rows``).
    keep
        Input columns copied to the scores before the model's columns (ids, amounts...).
    id_column
        The column reported as ``id`` for rejected rows (default: the spec's id column).
    max_unseen_share
        ``scoring.max_unseen_share``, applied to the whole input.
    table
        Name for messages, the progress bar and the result.
    progress
        Show a progress bar; ``None``: only when stderr is a terminal.

    Returns
    -------
    ScoredTable

    Raises
    ------
    ScoringInputError
        A required or kept column is missing, or too many rows hold unseen values.
    """
    if len(frame):  # an empty input is an empty result, whatever its columns (as in check)
        _require(spec, list(frame.columns), keep, table)
    chunks = (frame.iloc[i : i + chunk_rows] for i in range(0, len(frame), chunk_rows))
    return _score_chunks(chunks, len(frame), model, spec, keep, id_column, max_unseen_share, table, progress)


def score_file(
    path: str | Path,
    model: Scorer,
    spec: InputSpec,
    *,
    chunk_rows: int,
    keep: Sequence[str] = (),
    id_column: str | None = None,
    max_unseen_share: float = 1.0,
    table: str | None = None,
    progress: bool | None = None,
) -> ScoredTable:
    """Score a Parquet or CSV file read in record batches (see :func:`score_frame`).

    Only the columns the model needs (and ``keep``) are read. CSV cells are read as text and
    typed by the spec's checks, so a file's own type guesses never change a score.
    """
    path = Path(path)
    table = table or path.stem
    wanted = [*spec.names, *keep, *([id_column] if id_column else [])]
    present = _file_columns(path)
    _require(spec, present, keep, table)
    columns = [c for c in dict.fromkeys(wanted) if c in present]
    total = _file_rows(path)
    chunks = iter_file_chunks(path, chunk_rows, columns)
    return _score_chunks(chunks, total, model, spec, keep, id_column, max_unseen_share, table, progress)


def iter_file_chunks(
    path: str | Path, chunk_rows: int, columns: Sequence[str] | None = None
) -> Iterator[pd.DataFrame]:
    """Yield a Parquet or CSV file as frames of at most ``chunk_rows`` rows (CSV cells as text).

    Parameters
    ----------
    path
        ``.parquet`` or ``.csv`` file.
    chunk_rows
        Rows per yielded frame.
    columns
        Columns to read (default: all).

    Yields
    ------
    pandas.DataFrame
        Consecutive row ranges with a RangeIndex continuing across chunks.
    """
    start = 0
    for table in _rechunk(_record_batches(Path(path), chunk_rows, columns), chunk_rows):
        df = table.to_pandas()
        df.index = pd.RangeIndex(start, start + len(df))
        start += len(df)
        yield df


# ---------------------------------------------------------------------------------------------
# the chunk loop


def _score_chunks(
    chunks: Iterable[pd.DataFrame],
    total: int | None,
    model: Scorer,
    spec: InputSpec,
    keep: Sequence[str],
    id_column: str | None,
    max_unseen_share: float,
    table: str,
    progress: bool | None,
) -> ScoredTable:
    result = ScoredTable(table, pd.DataFrame(), pd.DataFrame(columns=REJECTED_COLUMNS))
    scored: list[pd.DataFrame] = []
    rejected: list[pd.DataFrame] = []
    offset = 0
    with _progress_bar(table, total, progress) as advance:
        for chunk in chunks:
            chunk = chunk.reset_index(drop=True)
            checked = spec.check(chunk, max_unseen_share=1.0, table=table)
            if len(checked.frame):
                scored.append(_scores(chunk, checked.frame, model, keep))
            rejected.append(_rejected_rows(chunk, checked.rejected, id_column or spec.id_column, offset))
            _add_unseen(result, checked.unseen, checked.unseen_examples, checked.rows_with_unseen)
            offset += len(chunk)
            advance(len(chunk))
    result.n_rows = offset
    result.scores = _concat(scored) if scored else _scores_of_empty(model, spec, keep)
    result.rejected = (
        _concat([r for r in rejected if len(r)])
        if any(len(r) for r in rejected)
        else (
            pd.DataFrame(
                {c: pd.Series([], dtype="int64" if c == INPUT_ROW else "str") for c in REJECTED_COLUMNS}
            )
        )
    )
    enforce_unseen_share(
        table,
        result.unseen,
        result.unseen_examples,
        result.rows_with_unseen,
        len(result.scores),
        max_unseen_share,
    )
    if len(result.rejected):
        log.warning(
            "%s: %d of %d rows rejected (see the rejected table)", table, len(result.rejected), offset
        )
    return result


def _scores(chunk: pd.DataFrame, typed: pd.DataFrame, model: Scorer, keep: Sequence[str]) -> pd.DataFrame:
    out = model.predict(typed)
    if not isinstance(out, pd.DataFrame) or len(out) != len(typed):
        got = type(out).__name__ if not isinstance(out, pd.DataFrame) else f"{len(out)} rows"
        raise ValueError(
            f"the scorer returned {got} for {len(typed)} input rows; expected a DataFrame, row for row"
        )
    out = out.set_axis(typed.index)
    kept = pd.DataFrame(
        {c: typed[c] if c in typed else chunk.loc[typed.index, c] for c in keep}, index=typed.index
    )
    return pd.concat([kept, out.drop(columns=[c for c in keep if c in out])], axis=1)


def _scores_of_empty(model: Scorer, spec: InputSpec, keep: Sequence[str]) -> pd.DataFrame:
    # No accepted row: still return the model's output columns (the scorer must accept 0 rows).
    empty = spec.empty_frame()
    out = _scores(
        empty.assign(**{c: pd.Series([], dtype="str") for c in keep if c not in empty}), empty, model, keep
    )
    return out.reset_index(drop=True)


def _rejected_rows(
    chunk: pd.DataFrame, rejected: pd.DataFrame, id_column: str | None, offset: int
) -> pd.DataFrame:
    ids = (
        chunk.loc[rejected.index, id_column].astype("str")
        if id_column and id_column in chunk
        else pd.Series(pd.NA, index=rejected.index, dtype="str")
    )
    return pd.DataFrame(
        {
            INPUT_ROW: (rejected.index.to_numpy() + offset).astype("int64"),
            "id": ids.to_numpy(),
            REJECTED_REASON: rejected[REJECTED_REASON].to_numpy(),
        }
    ).astype({"id": "str", REJECTED_REASON: "str"})


def _add_unseen(
    result: ScoredTable, unseen: dict[str, int], examples: dict[str, list[str]], rows: int
) -> None:
    for col, n in unseen.items():
        result.unseen[col] = result.unseen.get(col, 0) + n
        merged = sorted({*result.unseen_examples.get(col, []), *examples.get(col, [])})
        result.unseen_examples[col] = merged[:3]
    result.rows_with_unseen += rows


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0].reset_index(drop=True)


def _require(spec: InputSpec, present: list[str], keep: Sequence[str], table: str) -> None:
    spec.require_columns(present, table)
    missing = [c for c in keep if c not in present]
    if missing:
        raise ScoringInputError(
            f"table '{table}': missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)}"
        )


def _progress_bar(table: str, total: int | None, enabled: bool | None) -> Any:
    """A context giving ``advance(n)``: a rich progress bar, or nothing when not on a terminal."""
    from rich.console import Console

    console = Console(stderr=True)
    if not (console.is_terminal if enabled is None else enabled):
        return nullcontext(lambda _n: None)
    return _RichBar(console, table, total)


class _RichBar:
    def __init__(self, console: Any, table: str, total: int | None) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(
            TextColumn(f"scoring {table}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
            console=console, transient=True,
        )  # fmt: skip
        self.task = self.progress.add_task(table, total=total)

    def __enter__(self) -> Any:
        self.progress.start()
        return lambda n: self.progress.advance(self.task, n)

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()


# ---------------------------------------------------------------------------------------------
# reading files in record batches


def _file_columns(path: Path) -> list[str]:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return list(pq.ParquetFile(path).schema_arrow.names)
    if path.suffix == ".csv":
        with path.open(newline="") as f:
            return next(csv.reader(f), [])
    raise ScoringInputError(f"cannot score {path}: expected a .parquet or .csv file")


def _file_rows(path: Path) -> int | None:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    return None  # a CSV's length is unknown until it is read


def _record_batches(path: Path, chunk_rows: int, columns: Sequence[str] | None) -> Iterator[Any]:
    import pyarrow as pa

    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        yield from pq.ParquetFile(path).iter_batches(batch_size=chunk_rows, columns=columns)
        return
    from pyarrow import csv as pacsv

    names = _file_columns(path)
    convert = pacsv.ConvertOptions(
        column_types={c: pa.string() for c in names},
        include_columns=list(columns) if columns is not None else None,
        strings_can_be_null=True,
    )
    yield from pacsv.open_csv(path, convert_options=convert)


def _rechunk(batches: Iterator[Any], chunk_rows: int) -> Iterator[Any]:
    """Regroup record batches of any size into tables of exactly ``chunk_rows`` (the last: fewer)."""
    import pyarrow as pa

    pending: list[Any] = []
    size = 0
    for batch in batches:
        pending.append(batch)
        size += batch.num_rows
        while size >= chunk_rows:
            table = pa.Table.from_batches(pending)
            yield table.slice(0, chunk_rows)
            rest = table.slice(chunk_rows)
            pending, size = (rest.to_batches(), rest.num_rows) if rest.num_rows else ([], 0)
    if size:
        yield pa.Table.from_batches(pending)
