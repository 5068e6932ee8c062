"""Logging icpkit models to MLflow (pickle-free pyfunc) and registering them behind a champion gate.

* :func:`log_model` logs a saved icpkit model folder as an MLflow pyfunc model "from code": the
  code file :mod:`icpkit.registry.pyfunc_model` plus the folder as the artifact ``model_dir``.
  Nothing is pickled, so consumers load it with ``MLFLOW_ALLOW_PICKLE_DESERIALIZATION=false``.
* :func:`register_with_gate` registers a version and gives it ``@champion`` only when it is at
  least as good as the current champion on the same holdout; otherwise ``@challenger``.
* :func:`load_champion` / :func:`champion_score_on` let the caller score the current champion
  on the candidate's holdout before calling the gate.
"""

from __future__ import annotations

import contextlib
import logging
import math
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import Model, ModelSignature
from mlflow.types import ColSpec, DataType, Schema

from icpkit.registry.loaders import load_scorer, read_format
from icpkit.registry.tracking import Tracker, library_versions, use_tracking_uri

_log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
ARTIFACT_KEY = "model_dir"
CODE_FILE = Path(__file__).with_name("pyfunc_model.py")
#: Version tags written by the gate.
TAG_CANDIDATE_SCORE = "icpkit.candidate_score"
TAG_CHAMPION_SCORE = "icpkit.champion_score"
TAG_CHAMPION_VERSION = "icpkit.champion_version_at_registration"
TAG_GATE = "icpkit.gate"
TAG_GATE_REASON = "icpkit.gate_reason"
TAG_FORMAT = "icpkit.format"

#: Distributions pinned in the logged model's requirements (MLflow's own inference would load
#: the model in a subprocess, which is slow). icpkit itself is not on PyPI and is not listed.
_PINNED = ("mlflow", "numpy", "pandas", "scikit-learn", "lightgbm")
_EXTRA_PINNED = ("scipy", "pyarrow")


@dataclass(frozen=True)
class RegistrationResult:
    name: str
    version: str
    alias: Literal["champion", "challenger"]
    candidate_score: float
    champion_score: float | None
    reason: str
    #: The version that held ``@champion`` when this one was registered (``None``: none did).
    previous_champion_version: str | None = None
    model_uri: str = ""

    @property
    def is_champion(self) -> bool:
        return self.alias == CHAMPION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- input frames and signatures ------------------------------------------------------------
def is_numeric_column(s: pd.Series) -> bool:
    return bool(pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s))


def to_model_input(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame the logged pyfunc model expects: numbers (and bools) as float64, everything
    else as object columns of ``str`` with ``None`` for missing (``category`` becomes ``str``)."""
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
    """Numeric columns as ``double`` (NaN allowed), all others as ``string`` (None allowed)."""
    return Schema(
        [
            ColSpec(DataType.double if is_numeric_column(frame[c]) else DataType.string, str(c))
            for c in frame.columns
        ]
    )


def output_schema(frame: pd.DataFrame) -> Schema:
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


def _requirements() -> list[str]:
    versions = library_versions()
    reqs = [
        f"{lib}=={versions[lib]}" for lib in _PINNED if versions.get(lib, "not installed") != "not installed"
    ]
    import importlib.metadata as md

    for dist in _EXTRA_PINNED:
        with contextlib.suppress(md.PackageNotFoundError):
            reqs.append(f"{dist}=={md.version(dist)}")
    return reqs


def _find_pickles(folder: Path) -> list[Path]:
    suffixes = {".pkl", ".pickle", ".joblib", ".cloudpickle"}
    return [p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in suffixes]


# --- logging --------------------------------------------------------------------------------
def log_model(
    tracker_or_run_id: Tracker | str,
    model_dir: str | Path,
    name: str,
    input_example: pd.DataFrame,
    *,
    tracking_uri: str | None = None,
    example_rows: int = 5,
    metadata: dict[str, Any] | None = None,
) -> str:
    """Log the saved icpkit model in ``model_dir`` as a pickle-free pyfunc model; returns its
    ``models:/<model_id>`` URI.

    ``tracker_or_run_id``: a :class:`Tracker` (its innermost open run is used) or a run id, in
    which case ``tracking_uri`` is required. ``input_example``: raw feature rows; it defines the
    signature (numbers -> double, others -> string) and a few rows are stored as the example.
    Raises if the logged model folder contains any pickle file.
    """
    if isinstance(tracker_or_run_id, Tracker):
        tracker = tracker_or_run_id
        run_id = tracker.run_id
        uri = tracking_uri or tracker.tracking_uri
        if run_id is None:
            raise RuntimeError("log_model needs an open run on the tracker")
    else:
        run_id = tracker_or_run_id
        if tracking_uri is None:
            raise ValueError("pass tracking_uri when logging by run id")
        uri = tracking_uri
    model_dir = Path(model_dir).resolve()
    fmt = read_format(model_dir)
    if _find_pickles(model_dir):
        raise ValueError(f"{model_dir} contains pickle files: {_find_pickles(model_dir)}")

    example = to_model_input(input_example)
    scorer = load_scorer(model_dir)  # also proves the format has a loader
    sample = example.head(max(example_rows, 1))
    signature = ModelSignature(inputs=input_schema(example), outputs=output_schema(scorer.predict(sample)))

    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    run = client.get_run(run_id)
    logged = client.create_logged_model(
        experiment_id=run.info.experiment_id,
        name=name,
        source_run_id=run_id,
        tags={TAG_FORMAT: fmt},
        model_type="icpkit",
    )
    with use_tracking_uri(uri):
        info = Model.log(
            artifact_path=None,
            name=name,
            flavor=mlflow.pyfunc,
            python_model=str(CODE_FILE),
            artifacts={ARTIFACT_KEY: str(model_dir)},
            signature=signature,
            input_example=sample,
            pip_requirements=_requirements(),
            metadata={
                "icpkit_format": fmt,
                "icpkit_version": library_versions()["icpkit"],
                **(metadata or {}),
            },
            run_id=run_id,
            model_id=logged.model_id,
        )
    model_uri = f"models:/{info.model_id}"
    _assert_no_pickles(client, info.model_id)
    return model_uri


def _assert_no_pickles(client: mlflow.MlflowClient, model_id: str) -> None:
    location = client.get_logged_model(model_id).artifact_location
    local = _local_path(location)
    if local is not None and local.exists():
        found = _find_pickles(local)
    else:  # remote store: list the artifacts
        found = [Path(f.path) for f in _walk_logged_model_artifacts(client, model_id) if _is_pickle(f.path)]
    if found:
        raise RuntimeError(f"logged model {model_id} contains pickle files: {found}")


def _is_pickle(path: str) -> bool:
    return Path(path).suffix.lower() in {".pkl", ".pickle", ".joblib", ".cloudpickle"}


def _walk_logged_model_artifacts(client: mlflow.MlflowClient, model_id: str, path: str | None = None):
    for f in client.list_logged_model_artifacts(model_id, path):
        if f.is_dir:
            yield from _walk_logged_model_artifacts(client, model_id, f.path)
        else:
            yield f


def _local_path(uri: str) -> Path | None:
    from urllib.parse import unquote, urlparse

    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme == "" and uri:
        return Path(uri)
    return None


def logged_model_dir(tracking_uri: str, model_uri: str) -> Path | None:
    """The local artifact folder of a ``models:/<model_id>`` URI (``None`` if remote)."""
    model_id = model_uri.removeprefix("models:/")
    client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    return _local_path(client.get_logged_model(model_id).artifact_location)


# --- registry -------------------------------------------------------------------------------
def _client(client_or_uri: mlflow.MlflowClient | str) -> mlflow.MlflowClient:
    if isinstance(client_or_uri, mlflow.MlflowClient):
        return client_or_uri
    return mlflow.MlflowClient(tracking_uri=client_or_uri, registry_uri=client_or_uri)


def _alias_version(client: mlflow.MlflowClient, name: str, alias: str) -> Any | None:
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def _ensure_registered_model(client: mlflow.MlflowClient, name: str) -> None:
    try:
        client.get_registered_model(name)
    except MlflowException:
        try:
            client.create_registered_model(name)
        except MlflowException:  # created concurrently
            client.get_registered_model(name)


def _finite(x: float | None) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x))


def gate_decision(
    candidate_score: float,
    champion_score: float | None,
    has_champion: bool,
    higher_is_better: bool = True,
    tolerance: float = 0.0,
    if_champion_unscored: Literal["champion", "challenger"] = "challenger",
) -> tuple[Literal["champion", "challenger"], str]:
    """The alias a candidate earns and why (pure function; see :func:`register_with_gate`)."""
    if not _finite(candidate_score):
        return CHALLENGER, "candidate score is missing or NaN"
    if not has_champion:
        return CHAMPION, "no champion yet"
    if not _finite(champion_score):
        return if_champion_unscored, "the current champion was not scored on this holdout"
    assert champion_score is not None
    if higher_is_better:
        ok = candidate_score >= champion_score - tolerance
        rel = ">=" if ok else "<"
        bound = f"champion {champion_score:.6g} - tolerance {tolerance:g}"
    else:
        ok = candidate_score <= champion_score + tolerance
        rel = "<=" if ok else ">"
        bound = f"champion {champion_score:.6g} + tolerance {tolerance:g}"
    reason = f"candidate {candidate_score:.6g} {rel} {bound}"
    return (CHAMPION if ok else CHALLENGER), reason


def register_with_gate(
    client_or_tracking_uri: mlflow.MlflowClient | str,
    registered_name: str,
    model_uri: str,
    candidate_score: float,
    champion_score: float | None,
    higher_is_better: bool = True,
    tolerance: float = 0.0,
    *,
    if_champion_unscored: Literal["champion", "challenger"] = "challenger",
    tags: dict[str, Any] | None = None,
    description: str | None = None,
) -> RegistrationResult:
    """Register ``model_uri`` as a new version of ``registered_name`` and set its alias.

    It takes ``@champion`` (moving the alias off the old champion) if there is no champion yet,
    or if ``candidate_score >= champion_score - tolerance`` (``<= champion + tolerance`` when
    lower is better); otherwise it gets ``@challenger``. ``champion_score`` must be the current
    champion's score on the same holdout (see :func:`champion_score_on`); when a champion exists
    but ``champion_score`` is ``None``, ``if_champion_unscored`` decides. The version is tagged
    with both scores and the reason.
    """
    client = _client(client_or_tracking_uri)
    _ensure_registered_model(client, registered_name)
    current = _alias_version(client, registered_name, CHAMPION)
    alias, reason = gate_decision(
        candidate_score,
        champion_score,
        current is not None,
        higher_is_better=higher_is_better,
        tolerance=tolerance,
        if_champion_unscored=if_champion_unscored,
    )
    from mlflow.store.artifact.utils.models import _parse_model_id_if_present

    model_id = _parse_model_id_if_present(model_uri)
    run_id = None
    if model_id is not None:
        with contextlib.suppress(MlflowException):
            run_id = client.get_logged_model(model_id).source_run_id
    version_tags = {
        TAG_CANDIDATE_SCORE: repr(float(candidate_score)),
        TAG_CHAMPION_SCORE: "" if champion_score is None else repr(float(champion_score)),
        TAG_CHAMPION_VERSION: "" if current is None else str(current.version),
        TAG_GATE: alias,
        TAG_GATE_REASON: reason,
        "icpkit.higher_is_better": str(bool(higher_is_better)).lower(),
        "icpkit.tolerance": repr(float(tolerance)),
        **{k: str(v) for k, v in (tags or {}).items()},
    }
    # MLflow 3.17's SQL registry store resolves a ``models:/<id>`` source with a *global*
    # MlflowClient(), so the global URI must point at this store while the version is created.
    with use_tracking_uri(client.tracking_uri):
        mv = client.create_model_version(
            name=registered_name,
            source=model_uri,
            run_id=run_id,
            tags=version_tags,
            description=description,
            model_id=model_id,
        )
    client.set_registered_model_alias(registered_name, alias, mv.version)
    return RegistrationResult(
        name=registered_name,
        version=str(mv.version),
        alias=alias,
        candidate_score=float(candidate_score),
        champion_score=None if champion_score is None else float(champion_score),
        reason=reason,
        previous_champion_version=None if current is None else str(current.version),
        model_uri=f"models:/{registered_name}/{mv.version}",
    )


def champion_version(tracking_uri: str, registered_name: str, alias: str = CHAMPION) -> str | None:
    """The version number holding ``@alias`` (``None`` if the model or alias does not exist)."""
    mv = _alias_version(_client(tracking_uri), registered_name, alias)
    return None if mv is None else str(mv.version)


def load_champion(tracking_uri: str, registered_name: str, alias: str = CHAMPION) -> Any | None:
    """The ``@champion`` version as an MLflow pyfunc model, or ``None`` when there is none yet.

    Pinned to the version the alias points at when called. Needs no pickles.
    """
    version = champion_version(tracking_uri, registered_name, alias)
    if version is None:
        return None
    return load_pyfunc(tracking_uri, f"models:/{registered_name}/{version}")


def load_pyfunc(tracking_uri: str, model_uri: str) -> Any:
    """``mlflow.pyfunc.load_model`` against an explicit store (global URIs restored after)."""
    with tempfile.TemporaryDirectory(prefix="icpkit-model-") as tmp, use_tracking_uri(tracking_uri):
        # Models from code run their code file from the downloaded copy while loading, and the
        # scorer keeps everything it needs in memory, so the temporary copy can go afterwards.
        return mlflow.pyfunc.load_model(model_uri, dst_path=tmp)


def champion_scores(model: Any, X: pd.DataFrame) -> np.ndarray:
    """The score column of a pyfunc prediction (the single column, or ``*_propensity``)."""
    out = model.predict(to_model_input(X))
    if isinstance(out, pd.DataFrame):
        if out.shape[1] == 1:
            return out.iloc[:, 0].to_numpy(dtype=float)
        cols = [c for c in out.columns if str(c).endswith("_propensity")]
        if len(cols) == 1:
            return out[cols[0]].to_numpy(dtype=float)
        raise ValueError(f"cannot tell which output column is the score: {list(out.columns)}")
    return np.asarray(out, dtype=float).reshape(len(X), -1)[:, 0]


def champion_score_on(
    tracking_uri: str,
    name: str,
    X: pd.DataFrame,
    y: Sequence[float] | np.ndarray | pd.Series,
    metric_fn: Callable[[np.ndarray, np.ndarray], float],
    *,
    on_error: Literal["raise", "none"] = "raise",
) -> float | None:
    """``metric_fn(y, champion scores on X)``, or ``None`` when there is no champion yet.

    ``on_error="none"`` also returns ``None`` (with a warning) when the champion cannot score
    ``X`` (e.g. its features no longer exist); pair it with ``if_champion_unscored`` in the gate.
    """
    model = load_champion(tracking_uri, name)
    if model is None:
        return None
    try:
        scores = champion_scores(model, X)
    except Exception as exc:  # noqa: BLE001 - schema errors come in many types
        if on_error == "raise":
            raise
        _log.warning("champion of %s cannot score this holdout: %s", name, exc)
        return None
    return float(metric_fn(np.asarray(y), scores))
