"""Format -> loader dispatch for saved icpkit model folders (no MLflow import here).

Every saved icpkit model is a folder with a ``model.json`` whose ``"format"`` field names what
wrote it (``"icpkit.PropensityModel/2"``). A loader turns such a folder into a *scorer*: an
object with ``predict(frame: pd.DataFrame) -> pd.DataFrame``. The MLflow pyfunc wrapper
(:mod:`icpkit.registry.pyfunc_model`) and :func:`icpkit.registry.registry.log_model` both
dispatch through :func:`load_scorer`, so a new model kind plugs in with one line::

    register_loader("icpkit.SegmentModel/1", "icpkit.icp.segments:SegmentModel.load")

A loader may be given as a callable or as a lazy ``"module:attribute.path"`` string, which is
imported on first use (so this module never imports model code it does not need, and the
built-in entries below can name modules that are loaded only inside MLflow).
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

MODEL_FILE = "model.json"
#: The frame type scorers take and return (re-exported for the pyfunc code file's type hints).
Frame = pd.DataFrame


class Scorer(Protocol):
    def predict(self, frame: pd.DataFrame) -> pd.DataFrame: ...


Loader = Callable[[Path], Any]

_LOADERS: dict[str, Loader | str] = {}


def register_loader(fmt: str, loader: Loader | str) -> None:
    """Make folders whose ``model.json`` says ``"format": fmt`` loadable.

    ``loader(directory) -> scorer`` where the scorer has ``predict(frame) -> DataFrame``; or a
    ``"module:attr"`` string naming such a function. Re-registering a format replaces it.
    """
    if not fmt:
        raise ValueError("format must be a non-empty string")
    _LOADERS[fmt] = loader


def registered_formats() -> list[str]:
    return sorted(_LOADERS)


def read_format(model_dir: str | Path) -> str:
    """The ``format`` field of ``<model_dir>/model.json``."""
    spec_path = Path(model_dir) / MODEL_FILE
    if not spec_path.is_file():
        raise FileNotFoundError(f"no {MODEL_FILE} in {model_dir}: not a saved icpkit model folder")
    spec = json.loads(spec_path.read_text())
    fmt = spec.get("format") if isinstance(spec, dict) else None
    if not fmt:
        raise ValueError(f"{spec_path} has no 'format' field")
    return str(fmt)


def get_loader(fmt: str) -> Loader:
    try:
        loader = _LOADERS[fmt]
    except KeyError:
        raise ValueError(
            f"no loader registered for model format {fmt!r}; known formats: {registered_formats()}"
        ) from None
    if isinstance(loader, str):
        loader = _import_attr(loader)
        _LOADERS[fmt] = loader
    return loader


def load_scorer(model_dir: str | Path) -> Scorer:
    """Load the saved model in ``model_dir`` as a scorer, dispatching on its format."""
    model_dir = Path(model_dir)
    scorer = get_loader(read_format(model_dir))(model_dir)
    if not callable(getattr(scorer, "predict", None)):
        raise TypeError(f"the loader for {model_dir} returned {type(scorer).__name__} without predict()")
    return scorer


def _import_attr(spec: str) -> Loader:
    module_name, _, attr_path = spec.partition(":")
    if not attr_path:
        raise ValueError(f"lazy loader {spec!r} must look like 'package.module:attribute'")
    obj: Any = importlib.import_module(module_name)
    for part in attr_path.split("."):
        obj = getattr(obj, part)
    return obj


# --- built-in formats ------------------------------------------------------------------------
class PropensityScorer:
    """A :class:`~icpkit.models.propensity.PropensityModel` as a scorer: one column
    ``<outcome>_propensity`` with the calibrated probability, same index as the input."""

    def __init__(self, model: Any) -> None:
        self.model = model

    @property
    def output_column(self) -> str:
        return f"{self.model.outcome}_propensity"

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        proba = self.model.predict_proba(frame)
        return pd.DataFrame({self.output_column: proba}, index=frame.index)


def load_propensity(model_dir: Path) -> PropensityScorer:
    from icpkit.models.propensity import PropensityModel

    return PropensityScorer(PropensityModel.load(model_dir))


register_loader("icpkit.PropensityModel/2", load_propensity)
register_loader("icpkit.SegmentModel/2", "icpkit.icp.segments:load_segment_scorer")
