"""MLflow "models from code" entry point for every icpkit model (no pickles anywhere).

MLflow copies this file into each logged model and executes it on load; the model itself is the
saved icpkit folder logged as the artifact ``model_dir`` (JSON + LightGBM text boosters). The
folder's ``model.json`` ``format`` picks the loader (see :mod:`icpkit.registry.loaders`).
Imports only icpkit modules and mlflow.
"""

from pathlib import Path

import mlflow
from mlflow.pyfunc import PythonModel

from icpkit.registry.loaders import Frame, load_scorer

ARTIFACT_KEY = "model_dir"


class IcpkitPyfuncModel(PythonModel):
    """Loads the icpkit model folder and returns its ``predict(frame)`` DataFrame."""

    def load_context(self, context):
        self.scorer = load_scorer(Path(context.artifacts[ARTIFACT_KEY]))

    # The DataFrame hint only tells MLflow not to infer a schema from hints: the logged signature
    # (double / string columns) is what MLflow enforces on the input.
    def predict(self, context, model_input: Frame, params=None) -> Frame:
        return self.scorer.predict(model_input)


mlflow.models.set_model(IcpkitPyfuncModel())
