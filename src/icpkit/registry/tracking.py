"""Experiment tracking: one training is a parent run, each outcome a nested child run.

Every write goes through an explicit client bound to one tracking URI (see
:mod:`icpkit.registry.store`), and every tag, param and run name goes through
:func:`icpkit.secrets.mask_secrets`, so a URL with a password never reaches the store. The
training run carries the pid and host of the process that opened it, which lets
:func:`icpkit.registry.gate.recover_interrupted` mark the runs of a killed process as failed.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import logging
import math
import os
import platform
import re
import socket
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunStatus
from mlflow.exceptions import MlflowException

from icpkit.registry.store import client_for, sqlite_db_path
from icpkit.secrets import mask_any, mask_secrets
from icpkit.serialization import json_default

log = logging.getLogger(__name__)

#: MLflow 3's documented limits (its constants live in a private module, so they are restated).
MAX_PARAM_VAL_LENGTH = 6000
MAX_TAG_VAL_LENGTH = 8000
MAX_ENTITY_KEY_LENGTH = 250
MAX_PARAMS_TAGS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000

PARENT_RUN_TAG = "mlflow.parentRunId"
OUTCOME_TAG = "icpkit.outcome"
RUN_KIND_TAG = "icpkit.run_kind"
PID_TAG = "icpkit.pid"
HOST_TAG = "icpkit.host"
TRUNCATION_NOTE = "...[truncated]"

#: Distribution names reported by :func:`library_versions` (key -> distribution).
_VERSIONED_LIBRARIES: dict[str, str] = {
    "icpkit": "icpkit",
    "numpy": "numpy",
    "pandas": "pandas",
    "scikit-learn": "scikit-learn",
    "lightgbm": "lightgbm",
    "shap": "shap",
    "optuna": "optuna",
    "mlflow": "mlflow",
}


# --- small helpers --------------------------------------------------------------------------
def library_versions() -> dict[str, str]:
    """Versions of Python and of the installed libraries that shape a model.

    Returns
    -------
    dict[str, str]
        ``python`` plus each installed library of the stack; libraries that are not installed
        are left out (``icpkit`` falls back to its ``__version__`` when run from a source tree).
    """
    out = {"python": platform.python_version()}
    for key, dist in _VERSIONED_LIBRARIES.items():
        try:
            out[key] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            if key == "icpkit":
                import icpkit

                out[key] = icpkit.__version__
    return out


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (nested mappings only; lists stay values)."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            flat.update(flatten_params(value, name))
        else:
            flat[name] = value
    return flat


def param_value(value: Any, limit: int = MAX_PARAM_VAL_LENGTH) -> str:
    """A param or tag value as MLflow stores it: text, credentials masked, cut to ``limit``.

    Parameters
    ----------
    value : Any
        Strings stay, mappings and sequences become JSON, anything else ``str``.
    limit : int
        Longer values are cut and end with ``...[truncated]``.

    Returns
    -------
    str
        The stored text.
    """
    if isinstance(value, str):
        text = value
    elif isinstance(value, Mapping | list | tuple):
        try:
            text = json.dumps(value, default=str)
        except (TypeError, ValueError):
            text = str(value)
    else:
        text = str(value)
    text = mask_secrets(text)
    if len(text) > limit:
        text = text[: limit - len(TRUNCATION_NOTE)] + TRUNCATION_NOTE
    return text


def _param_key(key: str) -> str:
    """Keys over MLflow's length limit are cut and made unique with a stable hash suffix."""
    if len(key) <= MAX_ENTITY_KEY_LENGTH:
        return key
    digest = hashlib.sha1(key.encode()).hexdigest()[:8]
    return f"{key[: MAX_ENTITY_KEY_LENGTH - 9]}~{digest}"


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "experiment"


def _as_metric_value(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number




def _type_name(dtype: Any) -> str:
    """A column's type as recorded; a loaded ``category`` column (activities) records its values' type."""
    return str(dtype.categories.dtype) if isinstance(dtype, pd.CategoricalDtype) else str(dtype)


def _dataset_entity(name: str, frame: pd.DataFrame, digest: str, source: str) -> Dataset:
    """An MLflow dataset record: masked source, digest, schema and size; never a row."""
    masked = mask_secrets(source)
    if "://" in masked:
        kind = "http" if masked.startswith(("http://", "https://")) else masked.split("://", 1)[0]
    else:
        kind = "local"
    schema = {"mlflow_colspec": [{"name": str(c), "type": _type_name(t)} for c, t in frame.dtypes.items()]}
    return Dataset(
        name=name,
        digest=digest[:36],
        source_type=kind,
        source=json.dumps({"uri": masked}),
        schema=json.dumps(schema),
        profile=json.dumps({"num_rows": len(frame), "num_elements": int(frame.size)}),
    )


# --- the tracker ----------------------------------------------------------------------------
class Tracker:
    """Writes one training (parent run) and its outcomes (nested child runs) to MLflow.

    Parameters
    ----------
    tracking_uri : str
        The store (see :func:`icpkit.registry.store.resolve_tracking_uri`).
    experiment_name : str
        Created on first use.
    artifact_root : Path or None
        Where a new experiment keeps its artifacts; default: next to a SQLite database.

    Examples
    --------
    >>> tracker = Tracker(uri, "icpkit")
    >>> with tracker.start_training("crm-2024-06-30", params=cfg, tags={}):
    ...     with tracker.start_outcome("win"):
    ...         tracker.log_metrics({"test_roc_auc": 0.81})

    Every ``log_*`` method writes to the innermost open run unless ``run_id`` is given.
    """

    def __init__(self, tracking_uri: str, experiment_name: str = "icpkit", artifact_root: Path | None = None):
        self.tracking_uri = tracking_uri
        self.experiment_name = experiment_name
        db = sqlite_db_path(tracking_uri)
        if artifact_root is None and db is not None:
            artifact_root = db.parent
        self.artifact_root = Path(artifact_root) if artifact_root is not None else None
        if db is not None:
            db.parent.mkdir(parents=True, exist_ok=True)
        self.client = client_for(tracking_uri)
        self.experiment_id = self._ensure_experiment()
        self._runs: list[str] = []

    # -- runs ------------------------------------------------------------------------------
    def _ensure_experiment(self) -> str:
        existing = self.client.get_experiment_by_name(self.experiment_name)
        if existing is not None:
            return existing.experiment_id
        location = None
        if self.artifact_root is not None:
            folder = self.artifact_root.expanduser().resolve() / _slug(self.experiment_name)
            folder.mkdir(parents=True, exist_ok=True)
            location = folder.as_uri()
        try:
            return self.client.create_experiment(self.experiment_name, artifact_location=location)
        except MlflowException:  # another process may have created it first
            again = self.client.get_experiment_by_name(self.experiment_name)
            if again is None:
                raise
            return again.experiment_id

    @property
    def run_id(self) -> str | None:
        """The innermost open run (child run inside ``start_outcome``), else ``None``."""
        return self._runs[-1] if self._runs else None

    @property
    def parent_run_id(self) -> str | None:
        """The open training (parent) run, else ``None``."""
        return self._runs[0] if self._runs else None

    @contextlib.contextmanager
    def _run(self, run_name: str, tags: Mapping[str, Any], params: Mapping[str, Any] | None) -> Iterator[str]:
        run = self.client.create_run(
            self.experiment_id,
            run_name=param_value(run_name, MAX_ENTITY_KEY_LENGTH),
            tags={k: param_value(v, MAX_TAG_VAL_LENGTH) for k, v in tags.items()},
        )
        run_id = run.info.run_id
        self._runs.append(run_id)
        status = RunStatus.to_string(RunStatus.FAILED)
        try:
            self.log_params({"versions": library_versions()}, run_id=run_id)
            if params:
                self.log_params(params, run_id=run_id)
            yield run_id
            status = RunStatus.to_string(RunStatus.FINISHED)
        except KeyboardInterrupt:
            status = RunStatus.to_string(RunStatus.KILLED)
            raise
        finally:
            self._runs.remove(run_id)
            self.client.set_terminated(run_id, status=status)

    @contextlib.contextmanager
    def start_training(
        self, run_name: str, params: Mapping[str, Any] | None = None, tags: Mapping[str, Any] | None = None
    ) -> Iterator[str]:
        """Open the parent run of one training.

        Parameters
        ----------
        run_name : str
            Shown in the MLflow UI; say the dataset and date (``"ravenstack 2025-06-30"``).
        params : Mapping or None
            Nested params, flattened with dots.
        tags : Mapping or None
            Extra run tags.

        Yields
        ------
        str
            The run id. The run ends FINISHED, or FAILED on an exception (KILLED on Ctrl-C).
        """
        if self._runs:
            raise RuntimeError(f"a training run is already open: {self._runs[0]}")
        process = {PID_TAG: os.getpid(), HOST_TAG: socket.gethostname()}
        all_tags = {RUN_KIND_TAG: "training", **process, **(tags or {})}
        with self._run(run_name, all_tags, params) as run_id:
            yield run_id

    @contextlib.contextmanager
    def start_outcome(
        self, outcome: str, params: Mapping[str, Any] | None = None, tags: Mapping[str, Any] | None = None
    ) -> Iterator[str]:
        """Open a child run of the open training run for one outcome; yields its run id."""
        parent = self.parent_run_id
        if parent is None:
            raise RuntimeError("start_outcome() needs an open start_training() run")
        # The process tags let the next start fail this run too when the process is killed.
        process = {PID_TAG: os.getpid(), HOST_TAG: socket.gethostname()}
        all_tags = {PARENT_RUN_TAG: parent, OUTCOME_TAG: outcome, RUN_KIND_TAG: "outcome", **process, **(tags or {})}
        with self._run(outcome, all_tags, params) as run_id:
            yield run_id

    def _target(self, run_id: str | None) -> str:
        target = run_id or self.run_id
        if target is None:
            raise RuntimeError("no open run: use start_training()/start_outcome() or pass run_id")
        return target

    # -- params, metrics, tags, inputs ---------------------------------------------------------
    def log_params(self, params: Mapping[str, Any], run_id: str | None = None) -> dict[str, str]:
        """Log (nested) params flattened with dots, masked and cut to MLflow's length limit.

        Returns
        -------
        dict[str, str]
            What was logged. Re-logging a key with another value raises (params are immutable).
        """
        target = self._target(run_id)
        flat = {_param_key(k): param_value(v) for k, v in flatten_params(params).items()}
        items = [Param(k, v) for k, v in flat.items()]
        for start in range(0, len(items), MAX_PARAMS_TAGS_PER_BATCH):
            self.client.log_batch(target, params=items[start : start + MAX_PARAMS_TAGS_PER_BATCH])
        return flat

    def log_metrics(
        self, metrics: Mapping[str, Any], step: int | None = None, run_id: str | None = None
    ) -> dict[str, float]:
        """Log numeric metrics; NaN and non-numeric values are skipped. Returns what was logged."""
        target = self._target(run_id)
        ts = int(time.time() * 1000)
        logged = {}
        for key, value in flatten_params(metrics).items():
            number = _as_metric_value(value)
            if number is not None:
                logged[_param_key(key)] = number
        items = [Metric(k, v, ts, step or 0) for k, v in logged.items()]
        for start in range(0, len(items), MAX_METRICS_PER_BATCH):
            self.client.log_batch(target, metrics=items[start : start + MAX_METRICS_PER_BATCH])
        return logged

    def log_summary_metrics(self, by_outcome: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
        """Put each outcome's main test metrics on the parent run, so the runs list shows quality.

        Parameters
        ----------
        by_outcome : Mapping[str, Mapping[str, Any]]
            ``{"win": {"test_roc_auc": 0.81, "test_ece": 0.03}, ...}``.

        Returns
        -------
        dict[str, float]
            What was logged, as ``<outcome>_<metric>`` (``win_test_roc_auc``).
        """
        parent = self.parent_run_id
        if parent is None:
            raise RuntimeError("log_summary_metrics() needs an open start_training() run")
        flat = {f"{o}_{k}": v for o, metrics in by_outcome.items() for k, v in metrics.items()}
        return self.log_metrics(flat, run_id=parent)

    def set_tags(self, tags: Mapping[str, Any], run_id: str | None = None) -> None:
        """Set run tags (values masked and cut to MLflow's limit)."""
        target = self._target(run_id)
        for key, value in tags.items():
            self.client.set_tag(target, key, param_value(value, MAX_TAG_VAL_LENGTH))

    def log_dataset_inputs(
        self,
        source: str,
        tables: Mapping[str, pd.DataFrame],
        digests: Mapping[str, str],
        context: str = "training",
        run_id: str | None = None,
    ) -> None:
        """Record the input tables as MLflow dataset inputs of the run (like ``mlflow.log_input``).

        Parameters
        ----------
        source : str
            The data source (folder or SQL URL); stored masked, with the table name appended.
        tables : Mapping[str, pd.DataFrame]
            The loaded tables; only their column types and sizes are recorded, never a row.
        digests : Mapping[str, str]
            A content fingerprint per table (at most 36 characters are kept).
        context : str
            The ``mlflow.data.context`` input tag.
        run_id : str or None
            Default: the innermost open run.
        """
        inputs = [
            DatasetInput(
                _dataset_entity(name, frame, digests.get(name, "unknown"), f"{source.rstrip('/')}/{name}"),
                tags=[InputTag(key="mlflow.data.context", value=context)],
            )
            for name, frame in tables.items()
        ]
        self.client.log_inputs(self._target(run_id), datasets=inputs)

    # -- artifacts ---------------------------------------------------------------------------
    def log_figure(self, fig: Any, path: str, run_id: str | None = None, close: bool = True) -> None:
        """Log a matplotlib figure as ``path`` (e.g. ``plots/roc.png``)."""
        self.client.log_figure(self._target(run_id), fig, path)
        if close:
            import matplotlib.pyplot as plt

            plt.close(fig)

    def log_dict(self, obj: Any, path: str, run_id: str | None = None) -> None:
        """Log a JSON artifact; strings are masked, numpy values become plain numbers."""
        text = json.dumps(mask_any(json.loads(json.dumps(obj, default=json_default))), indent=1)
        self.client.log_text(self._target(run_id), text, path)

    def log_table(self, df: pd.DataFrame, path: str, run_id: str | None = None, index: bool = False) -> None:
        """Log a DataFrame as a CSV artifact at ``path`` (``.csv`` appended if missing); text masked."""
        target = self._target(run_id)
        if not path.endswith(".csv"):
            path = f"{path}.csv"
        folder, _, name = path.rpartition("/")
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / name
            local.write_text(mask_secrets(df.to_csv(index=index)))
            self.client.log_artifact(target, str(local), artifact_path=folder or None)

    def log_artifact(self, local_file: str | Path, path: str | None = None, run_id: str | None = None) -> None:
        """Upload one file into the run's folder ``path`` (its writer is responsible for it)."""
        self.client.log_artifact(self._target(run_id), str(local_file), artifact_path=path)

    def log_artifacts(
        self, local_dir: str | Path, path: str | None = None, run_id: str | None = None
    ) -> None:
        """Upload a folder as is (its writer is responsible for what it contains)."""
        self.client.log_artifacts(self._target(run_id), str(local_dir), artifact_path=path)

    def log_trials(
        self, trials: pd.DataFrame, path: str = "tuning/trials.csv", run_id: str | None = None
    ) -> None:
        """Log an Optuna ``study.trials_dataframe()`` as a CSV table artifact."""
        self.log_table(trials, path, run_id=run_id)

    def previous_training_json(self, artifact_path: str) -> dict[str, Any] | None:
        """``artifact_path`` (a JSON file) of the latest finished training run other than the open one.

        Returns
        -------
        dict or None
            ``None`` when no earlier finished training logged it.
        """
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{RUN_KIND_TAG}` = 'training' and attributes.status = 'FINISHED'",
            order_by=["attributes.start_time DESC"],
            max_results=20,
        )
        for run in runs:
            if run.info.run_id in self._runs:
                continue
            try:
                with tempfile.TemporaryDirectory() as tmp:
                    local = mlflow.artifacts.download_artifacts(
                        run_id=run.info.run_id,
                        artifact_path=artifact_path,
                        dst_path=tmp,
                        tracking_uri=self.tracking_uri,
                    )
                    return json.loads(Path(local).read_text())
            except (MlflowException, OSError, ValueError):
                continue
        return None
