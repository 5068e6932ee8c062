"""Experiment tracking: the only place icpkit writes runs, params, metrics and artifacts to MLflow.

Everything goes through an explicit :class:`mlflow.MlflowClient` bound to one tracking URI, so
two trackers (or two tests) with different stores never share global MLflow state. The default
store is a SQLite database under ``<project>/mlruns/`` with artifacts next to it (MLflow 3
refuses a bare ``./mlruns`` file store, and the file store loses data under concurrency).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import math
import os
import platform
import re
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import mlflow
import pandas as pd
from mlflow.entities import Metric, Param, RunStatus
from mlflow.exceptions import MlflowException

try:  # the limits of the installed MLflow (6000 chars per param value in MLflow 3)
    from mlflow.utils.validation import (
        MAX_ENTITY_KEY_LENGTH,
        MAX_METRICS_PER_BATCH,
        MAX_PARAM_VAL_LENGTH,
        MAX_PARAMS_TAGS_PER_BATCH,
    )
except ImportError:  # pragma: no cover - older/newer MLflow layouts
    MAX_PARAM_VAL_LENGTH, MAX_ENTITY_KEY_LENGTH = 500, 250
    MAX_PARAMS_TAGS_PER_BATCH, MAX_METRICS_PER_BATCH = 100, 1000

MLRUNS_DIR = "mlruns"
DB_FILE = "mlflow.db"
PARENT_RUN_TAG = "mlflow.parentRunId"
OUTCOME_TAG = "icpkit.outcome"
RUN_KIND_TAG = "icpkit.run_kind"
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


# --- tracking URI ---------------------------------------------------------------------------
def default_tracking_uri(project_root: Path) -> str:
    """``sqlite:///<abs project_root>/mlruns/mlflow.db`` (creates ``mlruns/``)."""
    mlruns = Path(project_root).expanduser().resolve() / MLRUNS_DIR
    mlruns.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(mlruns / DB_FILE).as_posix()}"


def resolve_tracking_uri(configured: str | None, environ: Mapping[str, str], project_root: Path) -> str:
    """The configured URI, else ``MLFLOW_TRACKING_URI`` from ``environ``, else the default store.

    ``environ`` is passed in (usually ``os.environ`` by the CLI) so the library itself never reads
    the process environment.
    """
    if configured:
        return configured
    from_env = environ.get("MLFLOW_TRACKING_URI")
    if from_env:
        return from_env
    return default_tracking_uri(project_root)


def sqlite_db_path(tracking_uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI, else ``None``."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    return Path(unquote(tracking_uri[len("sqlite:///") :]))


def default_artifact_root(tracking_uri: str) -> Path | None:
    """Artifacts of a SQLite store live next to its database; ``None`` for other stores."""
    db = sqlite_db_path(tracking_uri)
    return db.parent if db is not None else None


@contextlib.contextmanager
def use_tracking_uri(tracking_uri: str) -> Iterator[None]:
    """Temporarily point MLflow's *global* tracking and registry URIs at ``tracking_uri``.

    Only for MLflow functions that have no client argument (``pyfunc.log_model``,
    ``pyfunc.load_model``). Restores the previous globals and the ``MLFLOW_TRACKING_URI`` /
    ``MLFLOW_REGISTRY_URI`` environment variables MLflow rewrites as a side effect.
    """
    from mlflow.tracking._model_registry import utils as reg_utils
    from mlflow.tracking._tracking_service import utils as trk_utils

    saved_env = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    saved_tracking = trk_utils._tracking_uri
    saved_registry = reg_utils._registry_uri
    try:
        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_registry_uri(tracking_uri)
        yield
    finally:
        trk_utils._tracking_uri = saved_tracking
        reg_utils._registry_uri = saved_registry
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        with contextlib.suppress(Exception):  # tracer provider caches the URI (MLflow 3)
            from mlflow.tracing.provider import reset

            reset()


# --- small helpers --------------------------------------------------------------------------
def library_versions() -> dict[str, str]:
    """Versions of Python and the libraries that shape a model (``"not installed"`` if absent)."""
    out = {"python": platform.python_version()}
    for key, dist in _VERSIONED_LIBRARIES.items():
        try:
            out[key] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            if key == "icpkit":
                import icpkit

                out[key] = getattr(icpkit, "__version__", "unknown")
            else:
                out[key] = "not installed"
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
    """Stringify a param value; values over MLflow's limit are cut and end with a note."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, Mapping | list | tuple):
        try:
            text = json.dumps(value, default=str, sort_keys=False)
        except (TypeError, ValueError):
            text = str(value)
    else:
        text = str(value)
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


def _now_ms() -> int:
    return int(time.time() * 1000)


def _as_metric_value(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


# --- the tracker ----------------------------------------------------------------------------
class Tracker:
    """Writes one training (parent run) and its outcomes (nested child runs) to MLflow.

    >>> tracker = Tracker(uri, "icpkit")
    >>> with tracker.start_training("train-2024-06", params=cfg, tags={}):
    ...     with tracker.start_outcome("win"):
    ...         tracker.log_metrics({"roc_auc": 0.81})

    Every ``log_*`` method writes to the innermost open run unless ``run_id`` is given.
    """

    def __init__(
        self,
        tracking_uri: str,
        experiment_name: str = "icpkit",
        artifact_root: Path | None = None,
    ) -> None:
        self.tracking_uri = tracking_uri
        self.experiment_name = experiment_name
        self.artifact_root = Path(artifact_root) if artifact_root is not None else None
        if self.artifact_root is None:
            self.artifact_root = default_artifact_root(tracking_uri)
        db = sqlite_db_path(tracking_uri)
        if db is not None:
            db.parent.mkdir(parents=True, exist_ok=True)
        self.client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
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

    @property
    def experiment_artifact_location(self) -> str:
        return self.client.get_experiment(self.experiment_id).artifact_location

    @contextlib.contextmanager
    def _run(self, run_name: str, tags: Mapping[str, Any], params: Mapping[str, Any] | None) -> Iterator[str]:
        run = self.client.create_run(
            self.experiment_id,
            run_name=run_name,
            tags={k: param_value(v) for k, v in tags.items()},
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
        self,
        run_name: str | None = None,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
    ) -> Iterator[str]:
        """Open the parent run of one training; yields its run id. Fails the run on exceptions."""
        if self._runs:
            raise RuntimeError(f"a training run is already open: {self._runs[0]}")
        all_tags = {RUN_KIND_TAG: "training", **(tags or {})}
        with self._run(run_name or "training", all_tags, params) as run_id:
            yield run_id

    @contextlib.contextmanager
    def start_outcome(
        self,
        outcome: str,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
    ) -> Iterator[str]:
        """Open a child run of the training run for one outcome; yields its run id."""
        parent = self.parent_run_id
        if parent is None:
            raise RuntimeError("start_outcome() needs an open start_training() run")
        all_tags = {PARENT_RUN_TAG: parent, OUTCOME_TAG: outcome, RUN_KIND_TAG: "outcome", **(tags or {})}
        with self._run(outcome, all_tags, params) as run_id:
            yield run_id

    def _target(self, run_id: str | None) -> str:
        target = run_id or self.run_id
        if target is None:
            raise RuntimeError("no open run: use start_training()/start_outcome() or pass run_id")
        return target

    # -- params, metrics, tags ---------------------------------------------------------------
    def log_params(self, params: Mapping[str, Any], run_id: str | None = None) -> dict[str, str]:
        """Log (nested) params flattened with dots, stringified and cut to MLflow's length limit.

        Returns what was logged. Re-logging a key with the same value is harmless; with a
        different value MLflow raises (params are immutable).
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
        ts = _now_ms()
        logged = {}
        for key, value in flatten_params(metrics).items():
            number = _as_metric_value(value)
            if number is not None:
                logged[_param_key(key)] = number
        items = [Metric(k, v, ts, step or 0) for k, v in logged.items()]
        for start in range(0, len(items), MAX_METRICS_PER_BATCH):
            self.client.log_batch(target, metrics=items[start : start + MAX_METRICS_PER_BATCH])
        return logged

    def set_tags(self, tags: Mapping[str, Any], run_id: str | None = None) -> None:
        target = self._target(run_id)
        for key, value in tags.items():
            self.client.set_tag(target, key, param_value(value))

    # -- artifacts ---------------------------------------------------------------------------
    def log_figure(self, fig: Any, path: str, run_id: str | None = None, close: bool = True) -> None:
        """Log a matplotlib figure as ``path`` (e.g. ``plots/roc.png``)."""
        self.client.log_figure(self._target(run_id), fig, path)
        if close:
            with contextlib.suppress(Exception):
                import matplotlib.pyplot as plt

                plt.close(fig)

    def log_dict(self, obj: Any, path: str, run_id: str | None = None) -> None:
        """Log a JSON (or ``.yaml``) artifact; numpy scalars and other objects are stringified."""
        target = self._target(run_id)
        if path.endswith((".yaml", ".yml")):
            self.client.log_dict(target, obj, path)
            return
        self.client.log_text(target, json.dumps(obj, indent=1, default=_json_default), path)

    def log_text(self, text: str, path: str, run_id: str | None = None) -> None:
        self.client.log_text(self._target(run_id), text, path)

    def log_table(self, df: pd.DataFrame, path: str, run_id: str | None = None, index: bool = False) -> None:
        """Log a DataFrame as a CSV artifact at ``path`` (``.csv`` appended if missing)."""
        target = self._target(run_id)
        if not path.endswith(".csv"):
            path = f"{path}.csv"
        folder, _, name = path.rpartition("/")
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / name
            df.to_csv(local, index=index)
            self.client.log_artifact(target, str(local), artifact_path=folder or None)

    def log_artifacts(
        self, local_dir: str | Path, path: str | None = None, run_id: str | None = None
    ) -> None:
        self.client.log_artifacts(self._target(run_id), str(local_dir), artifact_path=path)

    def log_artifact(
        self, local_file: str | Path, path: str | None = None, run_id: str | None = None
    ) -> None:
        self.client.log_artifact(self._target(run_id), str(local_file), artifact_path=path)

    def log_trials(
        self, trials: pd.DataFrame, path: str = "tuning/trials.csv", run_id: str | None = None
    ) -> None:
        """Log an Optuna ``study.trials_dataframe()`` as a CSV table artifact."""
        self.log_table(trials, path, run_id=run_id)

    def previous_training_json(self, artifact_path: str) -> dict[str, Any] | None:
        """``artifact_path`` (a JSON file) of the latest finished training run other than the open one.

        ``None`` when no earlier training logged it (e.g. the first run, or a new experiment).
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
                    local = self.client.download_artifacts(run.info.run_id, artifact_path, tmp)
                    return json.loads(Path(local).read_text())
            except (MlflowException, OSError, ValueError):
                continue
        return None

    def artifact_uri(self, run_id: str | None = None) -> str:
        return self.client.get_run(self._target(run_id)).info.artifact_uri

    def artifact_dir(self, run_id: str | None = None) -> Path | None:
        """The local folder of a run's artifacts (``None`` for remote artifact stores)."""
        parsed = urlparse(self.artifact_uri(run_id))
        return Path(unquote(parsed.path)) if parsed.scheme in ("file", "") else None


def _json_default(o: Any) -> Any:
    item = getattr(o, "item", None)
    if callable(item):
        with contextlib.suppress(Exception):
            return item()
    tolist = getattr(o, "tolist", None)
    if callable(tolist):
        return tolist()
    if isinstance(o, Path):
        return str(o)
    return str(o)
