"""Tracker: parent/child runs, params/metrics/artifacts, tracking URI resolution."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import mlflow  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from icpkit.registry.tracking import (  # noqa: E402
    MAX_PARAM_VAL_LENGTH,
    TRUNCATION_NOTE,
    Tracker,
    default_tracking_uri,
    flatten_params,
    library_versions,
    param_value,
    resolve_tracking_uri,
)


def test_default_uri_is_sqlite_under_mlruns(tmp_path):
    uri = default_tracking_uri(tmp_path / "proj")
    assert uri == f"sqlite:///{(tmp_path / 'proj' / 'mlruns' / 'mlflow.db').resolve().as_posix()}"
    assert (tmp_path / "proj" / "mlruns").is_dir()


def test_resolve_tracking_uri_precedence(tmp_path):
    env = {"MLFLOW_TRACKING_URI": "http://tracking:5000"}
    assert resolve_tracking_uri("sqlite:///x.db", env, tmp_path) == "sqlite:///x.db"
    assert resolve_tracking_uri(None, env, tmp_path) == "http://tracking:5000"
    assert resolve_tracking_uri(None, {}, tmp_path) == default_tracking_uri(tmp_path)
    assert resolve_tracking_uri("", {"MLFLOW_TRACKING_URI": ""}, tmp_path) == default_tracking_uri(tmp_path)


def test_flatten_and_truncate_params():
    assert flatten_params({"a": {"b": 1, "c": {"d": "x"}}, "e": [1, 2], "f": {}}) == {
        "a.b": 1,
        "a.c.d": "x",
        "e": [1, 2],
        "f": {},
    }
    long = param_value("x" * (MAX_PARAM_VAL_LENGTH + 10))
    assert len(long) == MAX_PARAM_VAL_LENGTH and long.endswith(TRUNCATION_NOTE)
    assert param_value([1, "a"]) == '[1, "a"]' and param_value(None) == "None"


def test_library_versions_cover_the_stack():
    v = library_versions()
    for lib in [
        "python",
        "icpkit",
        "numpy",
        "pandas",
        "scikit-learn",
        "lightgbm",
        "shap",
        "optuna",
        "mlflow",
    ]:
        assert v[lib]
    assert v["mlflow"] == mlflow.__version__


def test_parent_and_child_runs_with_params_metrics_artifacts(tracking_uri, tmp_path):
    before = mlflow.get_tracking_uri()
    tracker = Tracker(tracking_uri, "icpkit-test")
    with tracker.start_training(
        "train-1", params={"training": {"test_fraction": 0.2}}, tags={"data": "synthetic"}
    ):
        parent = tracker.run_id
        tracker.log_metrics({"n_rows": 100})
        with tracker.start_outcome("win", params={"kind": "lightgbm"}):
            child = tracker.run_id
            assert tracker.parent_run_id == parent and child != parent
            logged = tracker.log_metrics({"roc_auc": 0.8, "brier": float("nan"), "nested": {"lift": 2.5}})
            assert logged == {"roc_auc": 0.8, "nested.lift": 2.5}
            tracker.log_metrics({"loss": 0.5}, step=3)
            tracker.log_params({"long": "y" * 7000})
            tracker.log_dict({"weights": {"industry": 0.4}}, "icp/profile.json")
            tracker.log_text("# ICP", "icp/profile.md")
            tracker.log_table(pd.DataFrame({"a": [1, 2], "b": ["x", None]}), "tables/deciles.csv")
            tracker.log_trials(pd.DataFrame({"number": [0, 1], "value": [0.7, 0.75]}))
            fig, ax = plt.subplots()
            ax.plot([0, 1], [0, 1])
            tracker.log_figure(fig, "plots/roc.png")
            extra = tmp_path / "extra"
            extra.mkdir()
            (extra / "note.txt").write_text("hi")
            tracker.log_artifacts(extra, "extra")
        assert tracker.run_id == parent
    assert tracker.run_id is None
    assert mlflow.get_tracking_uri() == before  # no global state touched

    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    p, c = client.get_run(parent), client.get_run(child)
    assert p.info.status == c.info.status == "FINISHED"
    assert p.info.run_name == "train-1" and c.info.run_name == "win"
    assert c.data.tags["mlflow.parentRunId"] == parent and c.data.tags["icpkit.outcome"] == "win"
    assert p.data.tags["data"] == "synthetic"
    assert p.data.params["training.test_fraction"] == "0.2"
    for run in (p, c):
        assert run.data.params["versions.mlflow"] == mlflow.__version__
        assert {"versions.python", "versions.lightgbm", "versions.icpkit"} <= set(run.data.params)
    assert c.data.params["kind"] == "lightgbm"
    assert c.data.params["long"].endswith(TRUNCATION_NOTE)
    assert c.data.metrics["roc_auc"] == 0.8 and "brier" not in c.data.metrics
    assert [m.step for m in client.get_metric_history(child, "loss")] == [3]
    assert p.data.metrics == {"n_rows": 100.0}

    art = Path(tracker.artifact_dir(child))
    assert art.is_relative_to(tmp_path / "mlruns")  # artifacts live next to the database
    for f in [
        "icp/profile.json",
        "icp/profile.md",
        "tables/deciles.csv",
        "tuning/trials.csv",
        "plots/roc.png",
        "extra/note.txt",
    ]:
        assert (art / f).is_file(), f
    assert pd.read_csv(art / "tuning/trials.csv")["value"].tolist() == [0.7, 0.75]
    children = client.search_runs([p.info.experiment_id], f"tags.mlflow.parentRunId = '{parent}'")
    assert [r.info.run_id for r in children] == [child]


def test_failed_training_marks_runs_failed(tracking_uri):
    tracker = Tracker(tracking_uri, "icpkit-test")
    with pytest.raises(ValueError, match="boom"):
        with tracker.start_training("bad", params={}, tags={}):
            with tracker.start_outcome("renewal"):
                child = tracker.run_id
                raise ValueError("boom")
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    assert client.get_run(child).info.status == "FAILED"
    assert tracker.run_id is None
    # A second tracker on the same experiment reuses it.
    assert Tracker(tracking_uri, "icpkit-test").experiment_id == tracker.experiment_id


def test_outcome_needs_a_training_run(tracking_uri):
    tracker = Tracker(tracking_uri, "icpkit-test")
    with pytest.raises(RuntimeError, match="start_training"):
        with tracker.start_outcome("win"):
            pass
    with pytest.raises(RuntimeError, match="no open run"):
        tracker.log_metrics({"a": 1.0})
