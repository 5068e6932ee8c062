"""The Spark path scores like the pandas path (local[2], a tiny models-from-code pyfunc)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from icpkit.registry.verification import MANIFEST_TAG, file_manifest, manifest_text
from icpkit.scoring.batch import INPUT_ROW, score_frame
from icpkit.scoring.inputs import ColumnSpec, InputSpec, to_pyfunc_input

pytest.importorskip("pyspark")
pytestmark = pytest.mark.slow

MODEL_CODE = Path(__file__).with_name("spark_fit_model.py")
SPEC = InputSpec(
    (
        ColumnSpec("account_id", "id"),
        ColumnSpec("employees", "numeric", lower=0.0),
        ColumnSpec("industry", "categorical", categories=("Banking", "Retail")),
        ColumnSpec("visits", "count"),
    ),
    id_column="account_id",
)


class Pyfunc:
    """The pandas path's view of a pyfunc model (as pipelines.score wraps it)."""

    def __init__(self, model) -> None:
        self.model = model

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        return self.model.predict(to_pyfunc_input(frame)).set_axis(frame.index)


@pytest.fixture
def registered(tracking_uri):
    import mlflow
    from mlflow.models import infer_signature

    example = pd.DataFrame(
        {"account_id": ["a"], "employees": [1.0], "industry": ["Banking"], "visits": [1.0]}
    )
    output = pd.DataFrame({"fit_score": [1.0], "tier": ["Weak"], "reasons_up": ["industry = Banking"]})
    mlflow.set_tracking_uri(tracking_uri)
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(MODEL_CODE),
            signature=infer_signature(example, output),
            input_example=example,
            registered_model_name="icp-scorer",
        )
    version = info.registered_model_version
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    # Record the files' manifest as icpkit's registration does: the Spark path verifies it.
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=client.get_model_version_download_uri("icp-scorer", version), tracking_uri=tracking_uri
    )
    client.set_model_version_tag("icp-scorer", version, MANIFEST_TAG, manifest_text(file_manifest(local)))
    client.set_registered_model_alias("icp-scorer", "champion", version)
    mlflow.set_tracking_uri(None)
    return f"models:/icp-scorer/{version}"


@pytest.fixture
def market(tmp_path) -> tuple[pd.DataFrame, Path]:
    rng = np.random.default_rng(0)
    n = 400
    frame = pd.DataFrame(
        {
            "account_id": [f"acc{i}" for i in range(n)],
            "employees": rng.integers(0, 900, n).astype(float),
            "industry": rng.choice(["Banking", "Retail", "Mining", None], n),
            "visits": rng.integers(0, 8, n).astype(float),
            "region": "EU",  # extra column, ignored
        }
    )
    frame.loc[[3, 50], "employees"] = [-1.0, np.inf]
    frame.loc[7, "visits"] = -2.0
    frame.loc[9, "employees"] = np.nan
    path = tmp_path / "market.parquet"
    frame.assign(**{INPUT_ROW: range(n)}).to_parquet(path, index=False)
    return frame, path


def test_spark_scores_equal_pandas_scores(registered, tracking_uri, market):
    import mlflow

    from icpkit.registry import load_verified
    from icpkit.scoring.spark import score_parquet_spark, spark_session

    frame, path = market
    pandas_model = Pyfunc(load_verified(tracking_uri, registered))
    expected = score_frame(frame, pandas_model, SPEC, chunk_rows=64, keep=["account_id"])
    spark = spark_session("local[2]")
    try:
        got = score_parquet_spark(
            spark, path, registered, SPEC, tracking_uri=tracking_uri, keep=["account_id"]
        )
    finally:
        spark.stop()
        mlflow.set_tracking_uri(None)
    assert len(expected.scores) == 397 and len(got.scores) == 397  # 3 rejected, NaN is missing
    pd.testing.assert_frame_equal(got.scores, expected.scores, check_dtype=False)
    pd.testing.assert_frame_equal(got.rejected, expected.rejected, check_dtype=False)
    assert got.unseen == expected.unseen and got.unseen_examples == expected.unseen_examples == {
        "industry": ["Mining"]
    }
    assert got.rows_with_unseen == expected.rows_with_unseen > 0


def test_pipeline_spark_engine_writes_the_pandas_scores(registered, tracking_uri, tmp_path, monkeypatch):
    import sys

    import pipelines.score as score_cli
    from pipelines._cli import run_main

    data = tmp_path / "crm"
    data.mkdir()
    (data / "accounts.csv").write_text(
        "account_id,employees,industry,visits\nA1,500,Banking,2\nA2,inf,Retail,1\nA3,80,Mining,0\nA4,,Retail,3\n"
    )
    config = tmp_path / "config.yaml"
    config.write_text(
        f"data:\n  source: {data}\n  extract_date: 2025-06-30\ntracking:\n  tracking_uri: {tracking_uri}\n"
        "scoring:\n  max_unseen_share: 0.5\n"
    )
    tables = {}
    for engine in ("pandas", "spark"):
        out = tmp_path / engine
        argv = ["pipelines.score", "--config", str(config), "--output", str(out), "--engine", engine]
        monkeypatch.setattr(sys, "argv", argv)
        with pytest.raises(SystemExit) as exit_:
            run_main(score_cli.main)
        assert exit_.value.code == 0
        tables[engine] = {
            t: pd.read_parquet(out / "2025-06-30" / f"{t}.parquet") for t in ("accounts", "rejected")
        }
    for name in ("accounts", "rejected"):
        pd.testing.assert_frame_equal(tables["spark"][name], tables["pandas"][name], check_dtype=False)
    accounts = tables["pandas"]["accounts"]
    # The loader repairs inf in a numeric attribute to missing (a counted repair) before scoring,
    # so A2 is scored with employees missing, on both engines alike.
    assert accounts["account_id"].tolist() == ["A1", "A2", "A3", "A4"]
    assert accounts.loc[accounts["account_id"] == "A2", "fit_score"].tolist() == [5.0]  # 0 employees + 1 visit
    assert accounts["model_versions"].unique().tolist() == ["icp-scorer=1"]
    assert tables["pandas"]["rejected"].empty
