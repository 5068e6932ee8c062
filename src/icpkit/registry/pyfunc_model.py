"""MLflow "models from code" entry point for every icpkit model (no pickles anywhere).

MLflow copies this file into each logged model and *executes* it whenever the model is loaded
(pickle loading on or off); :func:`icpkit.registry.verification.load_verified` checks every
file's SHA-256 first. The model itself is the saved icpkit folder logged as the artifact
``model_dir`` (JSON + LightGBM text boosters); its ``model.json`` format picks the loader. The
``icpkit`` package travels with the model (``code/``), so no icpkit install is needed to load it.
"""

from pathlib import Path

import mlflow
from mlflow.pyfunc import PythonModel

from icpkit.registry.loaders import Frame, load_scorer

ARTIFACT_KEY = "model_dir"


class IcpkitPyfuncModel(PythonModel):
    """Loads the icpkit model folder and returns its ``predict(frame)`` DataFrame."""

    def load_context(self, context):
        """Load the scorer from the model's artifact folder."""
        self.scorer = load_scorer(Path(context.artifacts[ARTIFACT_KEY]))

    # The DataFrame hint only tells MLflow not to infer a schema from hints: the logged signature
    # (double / string columns) is what MLflow enforces on the input.
    def predict(self, context, model_input: Frame, params=None) -> Frame:  # noqa: ARG002 - MLflow's PythonModel signature
        """Score ``model_input``."""
        return self.scorer.predict(model_input)


mlflow.models.set_model(IcpkitPyfuncModel())
