"""Packaging a saved icpkit model folder as a pickle-free MLflow model, and logging it.

The MLflow model folder is built locally with :func:`mlflow.pyfunc.save_model` ("models from
code": the code file :mod:`icpkit.registry.pyfunc_model`, the icpkit folder as the artifact
``model_dir`` and the ``icpkit`` package itself as ``code/``), so it loads where icpkit is not
installed. Its ``requirements.txt`` pins what that code imports when scoring. The input example
is one *made-up* row of typical values (medians, frequent categories), never a customer row, and
the ``MLmodel`` file holds no absolute local path. The folder is then uploaded as an MLflow
logged model through an explicit client; no MLflow global is touched.
"""

from __future__ import annotations

import importlib.metadata
import logging
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.entities import LoggedModelStatus
from mlflow.models import Model, ModelSignature
from mlflow.types import ColSpec, DataType, Schema
from mlflow.types.schema import AnyType

import icpkit
from icpkit.registry.loaders import load_scorer, read_format
from icpkit.registry.store import client_for
from icpkit.registry.tracking import library_versions, param_value
from icpkit.registry.verification import MANIFEST_TAG_LIMIT, file_manifest, manifest_text

log = logging.getLogger(__name__)

ARTIFACT_KEY = "model_dir"
CODE_FILE = Path(__file__).with_name("pyfunc_model.py")
FORMAT_TAG = "icpkit.format"
MANIFEST_FOLDER = "model_manifests"
#: Distributions the packaged icpkit code imports when a model is loaded and scores (checked by
#: tests/unit/test_registry.py, which loads a model and maps what icpkit modules import).
SCORING_DISTRIBUTIONS = (
    "mlflow",
    "numpy",
    "pandas",
    "pyarrow",
    "scipy",
    "scikit-learn",
    "lightgbm",
    "statsmodels",
    "rich",  # scoring's progress bar (imported lazily by icpkit.scoring.batch)
)
#: A category value appears in the input example only if at least this many rows share it.
MIN_EXAMPLE_COUNT = 5
_PICKLE_SUFFIXES = {".pkl", ".pickle", ".joblib", ".cloudpickle"}


@dataclass(frozen=True)
class LoggedModelRef:
    """A model uploaded to MLflow, ready to be registered.

    Attributes
    ----------
    model_id : str
        MLflow's logged-model id (``m-…``).
    name : str
        The logged model's name (e.g. ``win``).
    run_id : str
        The run it belongs to.
    artifact_location : str
        Where its files are (the source of registered versions).
    format : str
        The icpkit model format.
    manifest : dict[str, str]
        SHA-256 of every file, computed locally before upload.
    manifest_artifact : str or None
        Run-relative path of the manifest when it is too long for a version tag.
    """

    model_id: str
    name: str
    run_id: str
    artifact_location: str
    format: str
    manifest: dict[str, str] = field(repr=False)
    manifest_artifact: str | None = None

    @property
    def uri(self) -> str:
        """``models:/<model_id>``."""
        return f"models:/{self.model_id}"


# --- input frames and signatures ------------------------------------------------------------
def is_numeric_column(s: pd.Series) -> bool:
    """Numbers and booleans are numeric inputs (``double`` in the signature)."""
    return bool(pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s))


def to_model_input(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame a logged icpkit model expects.

    Parameters
    ----------
    frame : pd.DataFrame
        Raw rows (any numeric, boolean, text, category or date columns).

    Returns
    -------
    pd.DataFrame
        Numbers and booleans as float64; everything else as object columns of ``str`` with
        ``None`` for missing. Same index and columns.
    """
    out = {}
    for col in frame.columns:
        s = frame[col]
        if is_numeric_column(s):
            out[col] = pd.to_numeric(s, errors="coerce").astype("float64")
        else:
            values = s.astype(object)
            mask = values.isna().to_numpy()
            arr = np.array([str(v) for v in values.to_numpy()], dtype=object)
            arr[mask] = None
            out[col] = pd.Series(arr, index=frame.index, dtype=object)
    return pd.DataFrame(out, index=frame.index, columns=frame.columns)


def input_schema(frame: pd.DataFrame) -> Schema:
    """Every input column by name, of any type and optional.

    MLflow's own enforcement rejects ordinary pandas columns (an ``int64`` or ``bool`` column
    where ``double`` is declared) and cannot say which rows are bad; the model's
    :class:`~icpkit.scoring.inputs.InputSpec` does the typing instead: a missing required column is
    one clear error, int / bool / float are all accepted, bad rows are rejected with a reason.
    """
    return Schema([ColSpec(AnyType(), str(c), required=False) for c in frame.columns])


def output_schema(frame: pd.DataFrame) -> Schema:
    """The schema of a scorer's output frame."""
    specs = []
    for c in frame.columns:
        s = frame[c]
        if pd.api.types.is_bool_dtype(s):
            t = DataType.boolean
        elif pd.api.types.is_integer_dtype(s):
            t = DataType.long
        elif pd.api.types.is_numeric_dtype(s):
            t = DataType.double
        else:
            t = DataType.string
        specs.append(ColSpec(t, str(c)))
    return Schema(specs)


def typical_example(reference: pd.DataFrame, min_count: int = MIN_EXAMPLE_COUNT) -> pd.DataFrame:
    """One made-up row of typical values, to serve as a model's input example.

    Parameters
    ----------
    reference : pd.DataFrame
        Rows in the model's input form (e.g. the training features).
    min_count : int
        A text value is shown only if at least this many rows share it, so a rare value (a
        company name, an id) never leaves the machine; otherwise the cell is empty.

    Returns
    -------
    pd.DataFrame
        One row: the median of each numeric column, the most frequent value of each other
        column, in :func:`to_model_input` form.
    """
    row: dict[str, Any] = {}
    for col in reference.columns:
        s = reference[col]
        if pd.api.types.is_bool_dtype(s):
            mode = s.dropna().astype(float).mode()
            row[col] = float(mode.iloc[0]) if len(mode) else np.nan
        elif pd.api.types.is_numeric_dtype(s):
            row[col] = float(pd.to_numeric(s, errors="coerce").median())
        elif pd.api.types.is_datetime64_any_dtype(s):
            median = s.dropna().median() if s.notna().any() else None
            row[col] = None if median is None else str(median)
        else:
            counts = s.dropna().astype(str).value_counts()
            row[col] = str(counts.index[0]) if len(counts) and counts.iloc[0] >= min_count else None
    return to_model_input(pd.DataFrame([row], columns=reference.columns))


def model_requirements(extra: Sequence[str] = ()) -> list[str]:
    """Pinned ``name==version`` lines for :data:`SCORING_DISTRIBUTIONS` plus ``extra`` as given."""
    reqs = []
    for dist in SCORING_DISTRIBUTIONS:
        try:
            reqs.append(f"{dist}=={importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            log.debug("%s is not installed; left out of the model requirements", dist)
    return [*reqs, *extra]


# --- building the folder ----------------------------------------------------------------------
def find_pickles(folder: Path) -> list[Path]:
    """Files under ``folder`` whose suffix says pickle (``.pkl``, ``.joblib``, …)."""
    return [p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in _PICKLE_SUFFIXES]


def build_model_folder(
    model_dir: str | Path,
    reference: pd.DataFrame,
    out: str | Path,
    *,
    extra_requirements: Sequence[str] = (),
    metadata: Mapping[str, Any] | None = None,
) -> Path:
    """Write the MLflow model folder for a saved icpkit model, locally (no tracking store).

    Parameters
    ----------
    model_dir : str or Path
        A saved icpkit model folder (``model.json`` with a known format).
    reference : pd.DataFrame
        Rows in the model's input form; they define the signature and the typical example.
    out : str or Path
        A new folder to write.
    extra_requirements : Sequence[str]
        More requirement lines, when a model's code imports more than the usual stack.
    metadata : Mapping or None
        Extra ``MLmodel`` metadata (values masked).

    Returns
    -------
    Path
        ``out``.

    Raises
    ------
    ValueError
        The folder is no icpkit model, contains a pickle, or an absolute local path leaked in.
    """
    model_dir = Path(model_dir).resolve()
    fmt = read_format(model_dir)
    if pickles := find_pickles(model_dir):
        raise ValueError(f"{model_dir} contains pickle files: {[p.name for p in pickles]}")
    example = typical_example(reference)
    outputs = load_scorer(model_dir).predict(example)
    signature = ModelSignature(inputs=input_schema(to_model_input(reference)), outputs=output_schema(outputs))
    versions = library_versions()
    meta = {"icpkit_format": fmt, "icpkit_version": versions.get("icpkit", icpkit.__version__)}
    meta |= {k: param_value(v) for k, v in (metadata or {}).items()}
    out = Path(out)
    with tempfile.TemporaryDirectory(prefix="icpkit-pack-") as tmp:
        staged = Path(tmp) / ARTIFACT_KEY  # the artifact folder keeps this name inside the model
        shutil.copytree(model_dir, staged)
        # icpkit's own source only: no bytecode caches (machine-specific, and they bloat the manifest).
        code = Path(tmp) / "code" / "icpkit"
        shutil.copytree(Path(icpkit.__file__).parent, code, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        mlflow.pyfunc.save_model(
            str(out),
            python_model=str(CODE_FILE),
            artifacts={ARTIFACT_KEY: str(staged)},
            code_paths=[str(code)],
            signature=signature,
            input_example=example,
            pip_requirements=model_requirements(extra_requirements),
            metadata=meta,
        )
        _relative_paths_only(out, [tmp, str(model_dir), str(CODE_FILE.parent)])
    if pickles := find_pickles(out):
        raise ValueError(f"the MLflow model folder contains pickle files: {[p.name for p in pickles]}")
    return out


def _relative_paths_only(folder: Path, local_roots: Sequence[str]) -> None:
    """Replace the absolute source paths MLflow writes into ``MLmodel`` by model-relative ones."""
    mlmodel = Model.load(str(folder / "MLmodel"))
    conf = mlmodel.flavors["python_function"]
    conf["model_code_path"] = CODE_FILE.name  # MLflow loads <model>/<basename> of this path
    for artifact in conf.get("artifacts", {}).values():
        artifact["uri"] = artifact["path"]
    mlmodel.save(str(folder / "MLmodel"))
    for path in folder.rglob("*"):
        if path.is_file() and path.suffix in {"", ".yaml", ".json", ".txt"}:
            text = path.read_text(errors="ignore")
            if leaked := [root for root in local_roots if root in text]:
                raise ValueError(f"{path.name} of the model folder holds a local path: {leaked[0]}")


# --- logging --------------------------------------------------------------------------------
def log_model(
    tracking_uri: str,
    run_id: str,
    model_dir: str | Path,
    name: str,
    reference: pd.DataFrame,
    *,
    extra_requirements: Sequence[str] = (),
    metadata: Mapping[str, Any] | None = None,
) -> LoggedModelRef:
    """Package a saved icpkit model and upload it as an MLflow logged model of ``run_id``.

    Parameters
    ----------
    tracking_uri : str
        The store.
    run_id : str
        The run the model belongs to (open or finished).
    model_dir : str or Path
        A saved icpkit model folder.
    name : str
        The logged model's name (``win``, ``segments``, ``scorer``).
    reference : pd.DataFrame
        Rows in the model's input form (signature and typical example; no row is stored).
    extra_requirements : Sequence[str]
        See :func:`build_model_folder`.
    metadata : Mapping or None
        See :func:`build_model_folder`.

    Returns
    -------
    LoggedModelRef
        What :func:`icpkit.registry.gate.register_candidates` needs, with the file manifest.
    """
    client = client_for(tracking_uri)
    experiment_id = client.get_run(run_id).info.experiment_id
    with tempfile.TemporaryDirectory(prefix="icpkit-model-") as tmp:
        folder = build_model_folder(
            model_dir,
            reference,
            Path(tmp) / "model",
            extra_requirements=extra_requirements,
            metadata=metadata,
        )
        fmt = read_format(folder / "artifacts" / ARTIFACT_KEY)
        manifest = file_manifest(folder)
        logged = client.create_logged_model(
            experiment_id=experiment_id,
            name=name,
            source_run_id=run_id,
            tags={FORMAT_TAG: fmt},
            model_type="icpkit",
        )
        try:
            client.log_model_artifacts(logged.model_id, str(folder))
        except BaseException:
            client.finalize_logged_model(logged.model_id, LoggedModelStatus.FAILED)
            raise
    client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
    manifest_artifact = None
    text = manifest_text(manifest)
    if len(text) > MANIFEST_TAG_LIMIT:
        manifest_artifact = f"{MANIFEST_FOLDER}/{logged.model_id}.json"
        client.log_text(run_id, text, manifest_artifact)
    return LoggedModelRef(
        model_id=logged.model_id,
        name=name,
        run_id=run_id,
        artifact_location=client.get_logged_model(logged.model_id).artifact_location,
        format=fmt,
        manifest=manifest,
        manifest_artifact=manifest_artifact,
    )
