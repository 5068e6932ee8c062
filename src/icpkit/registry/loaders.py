"""Which code loads a saved icpkit model folder (no MLflow import here).

Every saved icpkit model is a folder with a ``model.json`` whose ``"format"`` names what wrote it
(``"icpkit.PropensityModel/1"``). :data:`LOADERS` maps each format to the function that turns
such a folder into a *scorer* (an object with ``predict(frame) -> DataFrame``). The table is
fixed in code: a model folder cannot name arbitrary code to run. A new model kind is one line::

    "icpkit.FittedICP/1": "icpkit.icp.model:load_icp_scorer",
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from icpkit.serialization import MODEL_FILE

#: The frame type scorers take and return (re-exported for the pyfunc code file's type hints).
Frame = pd.DataFrame

#: format -> ``"module:function"`` taking the model folder and returning a scorer.
LOADERS: dict[str, str] = {
    "icpkit.PropensityModel/2": "icpkit.scoring.served:load_outcome_scorer",
    "icpkit.ICPScorer/1": "icpkit.scoring.served:load_icp_scorer",
}


class Scorer(Protocol):
    """What every loaded icpkit model offers."""

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Score ``frame``; same index, one row per input row."""
        ...


def read_format(model_dir: str | Path) -> str:
    """The ``format`` field of ``<model_dir>/model.json``.

    Raises
    ------
    ValueError
        The folder has no ``model.json``, or it names no format icpkit knows.
    """
    spec_path = Path(model_dir) / MODEL_FILE
    if not spec_path.is_file():
        raise ValueError(f"no {MODEL_FILE} in {model_dir}: not a saved icpkit model folder")
    spec = json.loads(spec_path.read_text())
    fmt = spec.get("format") if isinstance(spec, dict) else None
    if fmt not in LOADERS:
        raise ValueError(f"{spec_path}: unknown model format {fmt!r}; known formats: {sorted(LOADERS)}")
    return str(fmt)


def load_scorer(model_dir: str | Path) -> Scorer:
    """Load the saved model in ``model_dir`` as a scorer, dispatching on its format."""
    module_name, _, attr = LOADERS[read_format(model_dir)].partition(":")
    loader: Any = getattr(importlib.import_module(module_name), attr)
    return loader(Path(model_dir))


class PropensityScorer:
    """A :class:`~icpkit.models.propensity.PropensityModel` as a scorer.

    Its output is one column ``<outcome>_propensity`` with the calibrated probability.
    """

    def __init__(self, model: Any) -> None:
        self.model = model

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Calibrated probabilities, same index as ``frame``."""
        proba = self.model.predict_proba(frame)
        return pd.DataFrame({f"{self.model.outcome}_propensity": proba}, index=frame.index)


