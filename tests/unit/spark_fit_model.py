"""A tiny MLflow models-from-code scorer for the Spark scoring test (no pickles, no artifacts)."""

import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel


class TinyFitModel(PythonModel):
    """fit_score = employees / 10 + 5 per visit (missing -> 0), capped at 100; tier and a reason."""

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        employees = pd.to_numeric(model_input["employees"], errors="coerce").fillna(0.0)
        visits = pd.to_numeric(model_input["visits"], errors="coerce").fillna(0.0)
        fit = np.clip(employees / 10 + 5 * visits, 0, 100)
        industry = model_input["industry"].astype(object).where(model_input["industry"].notna(), "unknown")
        return pd.DataFrame(
            {
                "fit_score": fit.astype("float64"),
                "tier": np.where(fit >= 60, "Strong", "Weak").astype(object),
                "reasons_up": [f"industry = {v}" for v in industry],
            }
        )


mlflow.models.set_model(TinyFitModel())
