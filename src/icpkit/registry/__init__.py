"""The one place icpkit talks to MLflow: tracking, pickle-free pyfunc models, and the registry.

The models-from-code file :mod:`icpkit.registry.pyfunc_model` is deliberately not imported
here (MLflow executes it when a model is logged or loaded).
"""

from icpkit.registry.loaders import (
    PropensityScorer,
    get_loader,
    load_scorer,
    read_format,
    register_loader,
    registered_formats,
)
from icpkit.registry.registry import (
    CHALLENGER,
    CHAMPION,
    RegistrationResult,
    champion_score_on,
    champion_scores,
    champion_version,
    gate_decision,
    input_schema,
    load_champion,
    load_pyfunc,
    log_model,
    logged_model_dir,
    register_with_gate,
    to_model_input,
)
from icpkit.registry.tracking import (
    Tracker,
    default_tracking_uri,
    flatten_params,
    library_versions,
    resolve_tracking_uri,
    use_tracking_uri,
)

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "PropensityScorer",
    "RegistrationResult",
    "Tracker",
    "champion_score_on",
    "champion_scores",
    "champion_version",
    "default_tracking_uri",
    "flatten_params",
    "gate_decision",
    "get_loader",
    "input_schema",
    "library_versions",
    "load_champion",
    "load_pyfunc",
    "load_scorer",
    "log_model",
    "logged_model_dir",
    "read_format",
    "register_loader",
    "register_with_gate",
    "registered_formats",
    "resolve_tracking_uri",
    "to_model_input",
    "use_tracking_uri",
]
