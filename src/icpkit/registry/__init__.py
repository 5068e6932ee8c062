"""The one place icpkit talks to MLflow: tracking, packaging, verified loading and the registry.

The publish API (called once, at the end of a complete training)::

    check_tracking(uri)                                   # fail fast on an unreachable store
    recover_interrupted(uri, experiment)                  # undo a publish killed half-way
    check_dataset(uri, names, dataset_key(...))           # before training
    ref = log_model(uri, run_id, model_dir, "win", X)     # package + upload, per model
    register_candidates(uri, [Candidate(...), ...], run_id=..., dataset_key=..., config_hash=...)
    load_verified(uri, "models:/icp-win@champion")        # hashes checked before any code runs

The models-from-code file :mod:`icpkit.registry.pyfunc_model` is deliberately not imported here
(MLflow executes it when a model is saved or loaded).
"""

from icpkit.registry.errors import DatasetMismatchError, ModelIntegrityError, TrackingUnavailableError
from icpkit.registry.gate import (
    CHALLENGER,
    CHAMPION,
    Candidate,
    Registration,
    champion_version,
    check_dataset,
    config_hash,
    dataset_key,
    gate_decision,
    load_champion,
    recover_interrupted,
    register_candidates,
)
from icpkit.registry.loaders import PropensityScorer, load_scorer, read_format
from icpkit.registry.packaging import (
    LoggedModelRef,
    build_model_folder,
    input_schema,
    log_model,
    model_requirements,
    to_model_input,
    typical_example,
)
from icpkit.registry.store import check_tracking, client_for, default_tracking_uri, resolve_tracking_uri
from icpkit.registry.tracking import Tracker, flatten_params, library_versions
from icpkit.registry.verification import VerifiedModel, download_verified, file_manifest, load_verified

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "Candidate",
    "DatasetMismatchError",
    "LoggedModelRef",
    "ModelIntegrityError",
    "PropensityScorer",
    "Registration",
    "Tracker",
    "TrackingUnavailableError",
    "VerifiedModel",
    "build_model_folder",
    "champion_version",
    "check_dataset",
    "check_tracking",
    "client_for",
    "config_hash",
    "dataset_key",
    "default_tracking_uri",
    "download_verified",
    "file_manifest",
    "flatten_params",
    "gate_decision",
    "input_schema",
    "library_versions",
    "load_champion",
    "load_scorer",
    "load_verified",
    "log_model",
    "model_requirements",
    "read_format",
    "recover_interrupted",
    "register_candidates",
    "resolve_tracking_uri",
    "to_model_input",
    "typical_example",
]
