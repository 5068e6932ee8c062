"""Tracker runs, params, metrics, artifacts and dataset inputs; tracking URIs and reachability."""

import json
import logging
import re
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import mlflow  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from icpkit.registry import TrackingUnavailableError, check_tracking  # noqa: E402
from icpkit.registry.store import client_for, default_tracking_uri, resolve_tracking_uri  # noqa: E402
from icpkit.registry.tracking import (  # noqa: E402
    MAX_PARAM_VAL_LENGTH,
    TRUNCATION_NOTE,
    Tracker,
    flatten_params,
    library_versions,
    param_value,
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


def test_flatten_truncate_and_mask_params():
    assert flatten_params({"a": {"b": 1, "c": {"d": "x"}}, "e": [1, 2], "f": {}}) == {
        "a.b": 1,
        "a.c.d": "x",
        "e": [1, 2],
        "f": {},
    }
    long = param_value("x" * (MAX_PARAM_VAL_LENGTH + 10))
    assert len(long) == MAX_PARAM_VAL_LENGTH and long.endswith(TRUNCATION_NOTE)
    assert param_value([1, "a"]) == '[1, "a"]' and param_value(None) == "None"
    assert param_value("postgresql://alice:S3cretPW@db/crm") == "postgresql://alice:***@db/crm"
    assert "tok123" not in param_value({"source": "https://h/x.csv?token=tok123"})


def test_library_versions_are_real_versions():
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
        assert re.fullmatch(r"\d+\.\d+(\.\d+)?\S*", v[lib]), (lib, v[lib])
    assert v["mlflow"] == mlflow.__version__


def test_parent_and_child_runs_with_params_metrics_artifacts(tracking_uri, tmp_path):
    before = mlflow.get_tracking_uri()
    tracker = Tracker(tracking_uri, "icpkit-test")
    with tracker.start_training(
        "crm 2025-06-30", params={"training": {"test_fraction": 0.2}}, tags={"data": "synthetic"}
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
        summary = tracker.log_summary_metrics({"win": {"test_roc_auc": 0.81, "test_ece": 0.02}})
    assert summary == {"win_test_roc_auc": 0.81, "win_test_ece": 0.02}
    assert tracker.run_id is None
    assert mlflow.get_tracking_uri() == before  # no global state touched

    client = client_for(tracking_uri)
    p, c = client.get_run(parent), client.get_run(child)
    assert p.info.status == c.info.status == "FINISHED"
    assert p.info.run_name == "crm 2025-06-30" and c.info.run_name == "win"
    assert c.data.tags["mlflow.parentRunId"] == parent and c.data.tags["icpkit.outcome"] == "win"
    assert p.data.tags["data"] == "synthetic" and p.data.tags["icpkit.pid"].isdigit()
    assert p.data.params["training.test_fraction"] == "0.2"
    for run in (p, c):
        assert run.data.params["versions.mlflow"] == mlflow.__version__
    assert c.data.params["kind"] == "lightgbm" and c.data.params["long"].endswith(TRUNCATION_NOTE)
    assert c.data.metrics["roc_auc"] == 0.8 and "brier" not in c.data.metrics
    assert [m.step for m in client.get_metric_history(child, "loss")] == [3]
    assert p.data.metrics == {"n_rows": 100.0, "win_test_roc_auc": 0.81, "win_test_ece": 0.02}

    art = Path(client.get_run(child).info.artifact_uri.removeprefix("file://"))
    assert art.is_relative_to(tmp_path / "mlruns")  # artifacts live next to the database
    for f in [
        "icp/profile.json",
        "tables/deciles.csv",
        "tuning/trials.csv",
        "plots/roc.png",
        "extra/note.txt",
    ]:
        assert (art / f).is_file(), f
    assert pd.read_csv(art / "tuning/trials.csv")["value"].tolist() == [0.7, 0.75]
    children = client.search_runs([p.info.experiment_id], f"tags.mlflow.parentRunId = '{parent}'")
    assert [r.info.run_id for r in children] == [child]


def test_dataset_inputs_carry_masked_source_and_digest_not_rows(tracking_uri):
    tracker = Tracker(tracking_uri, "icpkit-test")
    accounts = pd.DataFrame({"account_id": ["A-secret-1", "A2"], "employees": [10, 20]})
    with tracker.start_training("inputs") as run_id:
        tracker.log_dataset_inputs(
            "postgresql://alice:S3cretPW@db/crm", {"accounts": accounts}, {"accounts": "abc123"}
        )
    inputs = client_for(tracking_uri).get_run(run_id).inputs.dataset_inputs
    (only,) = inputs
    ds = only.dataset
    assert (ds.name, ds.digest, ds.source_type) == ("accounts", "abc123", "postgresql")
    assert json.loads(ds.source) == {"uri": "postgresql://alice:***@db/crm/accounts"}
    assert json.loads(ds.profile)["num_rows"] == 2
    assert "S3cretPW" not in repr(only) and "A-secret-1" not in repr(only)
    assert {t.key: t.value for t in only.tags} == {"mlflow.data.context": "training"}


def test_failed_training_marks_runs_failed(tracking_uri):
    tracker = Tracker(tracking_uri, "icpkit-test")
    with pytest.raises(ValueError, match="boom"):
        with tracker.start_training("bad"):
            with tracker.start_outcome("renewal"):
                child = tracker.run_id
                raise ValueError("boom")
    assert client_for(tracking_uri).get_run(child).info.status == "FAILED"
    assert tracker.run_id is None
    assert Tracker(tracking_uri, "icpkit-test").experiment_id == tracker.experiment_id


def test_outcome_needs_a_training_run(tracking_uri):
    tracker = Tracker(tracking_uri, "icpkit-test")
    with pytest.raises(RuntimeError, match="start_training"):
        with tracker.start_outcome("win"):
            pass
    with pytest.raises(RuntimeError, match="no open run"):
        tracker.log_metrics({"a": 1.0})


def test_previous_training_json_skips_the_open_run(tracking_uri):
    tracker = Tracker(tracking_uri, "icpkit-test")
    with tracker.start_training("first"):
        tracker.log_dict({"version": "v1"}, "icp/icp_profile.json")
    with tracker.start_training("second"):
        tracker.log_dict({"version": "v2"}, "icp/icp_profile.json")
        assert tracker.previous_training_json("icp/icp_profile.json") == {"version": "v1"}
        assert tracker.previous_training_json("icp/absent.json") is None


# --- reachability ----------------------------------------------------------------------------
def test_unreachable_server_is_one_clear_error_fast(caplog):
    started = time.perf_counter()
    with caplog.at_level(logging.DEBUG), pytest.raises(TrackingUnavailableError) as err:
        check_tracking("http://alice:S3cretPW@127.0.0.1:9", timeout_seconds=2)
    assert time.perf_counter() - started < 30  # MLflow's own client retries for minutes
    message = str(err.value)
    assert "http://alice:***@127.0.0.1:9 is unavailable" in message and "tracking.tracking_uri" in message
    assert "S3cretPW" not in message and "S3cretPW" not in caplog.text
    assert "Traceback" not in caplog.text


def test_unwritable_sqlite_store_is_one_clear_error(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the store's folder should be")
    with pytest.raises(TrackingUnavailableError, match="is unavailable: cannot write"):
        check_tracking(f"sqlite:///{blocker}/mlflow.db")
    with pytest.raises(TrackingUnavailableError, match="unavailable"):
        check_tracking("sqlite:////proc/icpkit-cannot-exist/mlflow.db")


def test_a_working_store_passes_the_check(tracking_uri):
    check_tracking(tracking_uri)
