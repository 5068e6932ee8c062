"""The champion gate, registration all at once, recovery from a killed publish, dataset identity, secrets."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import mlflow
import pytest
from sklearn.metrics import roc_auc_score

from icpkit.registry import (
    Candidate,
    DatasetMismatchError,
    ModelIntegrityError,
    Tracker,
    champion_version,
    check_dataset,
    config_hash,
    dataset_key,
    gate_decision,
    log_model,
    recover_interrupted,
    register_candidates,
)
from icpkit.registry.publish import registered_output
from icpkit.registry.store import client_for
from tests.unit.conftest import logistic_model

ROOT = Path(__file__).resolve().parents[2]


def _auc_on(Xh, yh, column="win_propensity"):
    """A ``score_champion`` callable: the champion's AUC on this holdout."""
    return lambda champion: roc_auc_score(yh, registered_output(champion, Xh)[column].to_numpy())


def _publish(uri, entries, **kwargs):
    """``entries``: (name, model_dir, reference, score, score_champion); one training run for all."""
    tracker = Tracker(uri, "icpkit-test")
    with tracker.start_training("gate") as run_id:
        candidates = [
            Candidate(name, log_model(uri, run_id, folder, name, ref), score, scorer, f"{name} model.")
            for name, folder, ref, score, scorer in entries
        ]
        regs = register_candidates(
            uri, candidates, run_id=run_id, **{"dataset_key": "k", "config_hash": "c", **kwargs}
        )
    return run_id, regs


def _aliases(uri, name):
    rm = client_for(uri).get_registered_model(name)
    return {alias: str(version) for alias, version in sorted(rm.aliases.items())}


def test_gate_decision_rules():
    assert gate_decision(0.5, None, has_champion=False) == ("champion", "no champion yet")
    assert gate_decision(0.80, 0.80, True)[0] == "champion"  # ties keep the newer model
    assert gate_decision(0.79, 0.80, True)[0] == "challenger"
    assert gate_decision(float("nan"), None, False)[0] == "challenger"
    assert gate_decision(0.9, None, True)[0] == "challenger"
    assert gate_decision(0.9, None, True, champion_unscored="champion")[0] == "champion"


def test_champion_and_challenger_are_judged_on_the_same_holdout(tracking_uri, data, models):
    X, _, Xh, yh = data

    def auc(kind):
        return roc_auc_score(yh, models[kind][0].predict_proba(Xh))

    assert auc("lightgbm") > auc("logistic") > auc("bad")
    scorer = _auc_on(Xh, yh)
    _, (first,) = _publish(tracking_uri, [("icp-win", models["logistic"][1], X, auc("logistic"), scorer)])
    assert (first.version, first.alias, first.reason) == ("1", "champion", "no champion yet")
    _, (second,) = _publish(tracking_uri, [("icp-win", models["lightgbm"][1], X, auc("lightgbm"), scorer)])
    assert (second.version, second.alias, second.previous_champion_version) == ("2", "champion", "1")
    assert second.champion_score == pytest.approx(auc("logistic"), rel=1e-12)
    _, (third,) = _publish(tracking_uri, [("icp-win", models["bad"][1], X, auc("bad"), scorer)])
    assert (third.version, third.alias) == ("3", "challenger")
    assert _aliases(tracking_uri, "icp-win") == {"challenger": "3", "champion": "2"}

    v3 = client_for(tracking_uri).get_model_version("icp-win", "3")
    assert float(v3.tags["icpkit.candidate_score"]) == auc("bad")
    assert float(v3.tags["icpkit.champion_score"]) == pytest.approx(auc("lightgbm"), rel=1e-12)
    assert (
        v3.tags["icpkit.gate"] == "challenger" and v3.tags["icpkit.champion_version_at_registration"] == "2"
    )
    assert (v3.tags["icpkit.dataset_key"], v3.tags["icpkit.config_hash"]) == ("k", "c")
    assert "icp-win model." in v3.description and "challenger" in v3.description
    assert client_for(tracking_uri).get_registered_model("icp-win").description == "icp-win model."


def test_a_champion_that_cannot_score_the_new_rows_leaves_one_line_and_a_challenger(
    tracking_uri, data, models, caplog, tmp_path
):
    X, _, Xh, yh = data
    _publish(tracking_uri, [("icp-win", models["logistic"][1], X, 0.6, _auc_on(Xh, yh))])
    # The new export has no "seats" column any more; the new model is trained without it.
    folder = logistic_model(X.drop(columns="seats")).save(tmp_path / "without-seats")
    new = (X.drop(columns="seats"), _auc_on(Xh.drop(columns="seats"), yh))
    with caplog.at_level(logging.WARNING):
        _, (reg,) = _publish(tracking_uri, [("icp-win", folder, new[0], 0.9, new[1])])
    line = "champion v1 of icp-win cannot score this holdout: missing input seats"
    assert reg.alias == "challenger" and reg.reason.startswith(line)
    assert "tracking.promote_on_schema_change" in reg.reason
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [line]
    assert "Traceback" not in caplog.text
    assert champion_version(tracking_uri, "icp-win") == "1"

    _, (promoted,) = _publish(
        tracking_uri, [("icp-win", folder, new[0], 0.9, new[1])], promote_on_schema_change=True
    )
    assert promoted.alias == "champion" and "promote_on_schema_change is true" in promoted.reason
    assert champion_version(tracking_uri, "icp-win") == "3"


@pytest.mark.parametrize(
    "error",
    [
        "Model is missing inputs ['seats', 'signup_date']. Note that there were extra inputs: ['x']",
        "table 'opportunities': missing required input columns seats, signup_date (the model was trained "
        "with them); the input has: opportunity_id, account_id, created_at, amount, product, industry",
    ],
)
def test_why_a_champion_cannot_score_is_one_short_line_naming_the_columns(error):
    from icpkit.registry.gate import _cannot_score_line

    line = _cannot_score_line("icp-win", "4", ValueError(error))
    assert line == "champion v4 of icp-win cannot score this holdout: missing input seats, signup_date"


def test_no_alias_moves_until_every_version_exists_and_failures_roll_back(
    tracking_uri, data, models, monkeypatch
):
    X, _, Xh, yh = data
    first = [("icp-win", models["logistic"][1], X, 0.6, lambda m: 0.0)]
    _publish(tracking_uri, first + [("icp-renewal", models["logistic"][1], X, 0.6, lambda m: 0.0)])
    before = {n: _aliases(tracking_uri, n) for n in ("icp-win", "icp-renewal")}

    real = mlflow.MlflowClient.create_model_version

    def fail_for_renewal(self, name, *args, **kwargs):
        if name == "icp-renewal":
            raise RuntimeError("registry went away")
        return real(self, name, *args, **kwargs)

    monkeypatch.setattr(mlflow.MlflowClient, "create_model_version", fail_for_renewal)
    entries = [(n, models["lightgbm"][1], X, 0.9, lambda m: 0.0) for n in ("icp-win", "icp-renewal")]
    with pytest.raises(RuntimeError, match="registry went away"):
        _publish(tracking_uri, entries)
    assert {n: _aliases(tracking_uri, n) for n in before} == before  # icp-win v2 exists, no alias moved
    monkeypatch.undo()

    real_move = mlflow.MlflowClient.set_registered_model_alias
    calls = []

    def fail_second_move(self, name, alias, version):
        calls.append(name)
        if len(calls) == 2:
            raise RuntimeError("lost connection between two alias moves")
        return real_move(self, name, alias, version)

    monkeypatch.setattr(mlflow.MlflowClient, "set_registered_model_alias", fail_second_move)
    with pytest.raises(RuntimeError, match="between two alias moves"):
        _publish(tracking_uri, entries)
    monkeypatch.undo()
    assert {n: _aliases(tracking_uri, n) for n in before} == before  # the first move was undone
    runs = client_for(tracking_uri).search_runs(
        [client_for(tracking_uri).get_experiment_by_name("icpkit-test").experiment_id],
        "tags.`icpkit.publish_state` = 'rolled_back'",
    )
    assert len(runs) == 2


_KILL_AFTER_FIRST_MOVE = """
import json, os, signal, sys
import mlflow
from icpkit.registry import Candidate, LoggedModelRef, register_candidates

uri, run_id, refs = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
real = mlflow.MlflowClient.set_registered_model_alias
def move_then_die(self, name, alias, version):
    real(self, name, alias, version)
    os.kill(os.getpid(), signal.SIGKILL)   # killed between two alias moves: no cleanup runs
mlflow.MlflowClient.set_registered_model_alias = move_then_die
candidates = [Candidate(r["name"], LoggedModelRef(**r), 0.9, lambda m: 0.1, "model") for r in refs]
register_candidates(uri, candidates, run_id=run_id, dataset_key="k", config_hash="c")
"""


def test_a_publish_killed_between_two_alias_moves_is_rolled_back_exactly(tracking_uri, data, models):
    X, _, _, _ = data
    names = ("icp-win", "icp-segments")
    _publish(tracking_uri, [(n, models["logistic"][1], X, 0.9, lambda m: 0.0) for n in names])
    _publish(tracking_uri, [(n, models["bad"][1], X, 0.1, lambda m: 0.9) for n in names])  # challengers
    before = {n: _aliases(tracking_uri, n) for n in names}
    assert before == {n: {"challenger": "2", "champion": "1"} for n in names}

    client = client_for(tracking_uri)
    tracker = Tracker(tracking_uri, "icpkit-test")
    child_run = client.create_run(tracker.experiment_id, run_name="killed").info.run_id
    refs = [asdict(log_model(tracking_uri, child_run, models["lightgbm"][1], n, X)) for n in names]
    proc = subprocess.run(
        [sys.executable, "-c", _KILL_AFTER_FIRST_MOVE, tracking_uri, child_run, json.dumps(refs)],
        cwd=ROOT,
        env={"PATH": os.environ["PATH"], "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == -9, proc.stderr
    half_way = {n: _aliases(tracking_uri, n) for n in names}
    assert half_way["icp-win"]["champion"] == "3" and half_way["icp-segments"] == before["icp-segments"]

    notes = recover_interrupted(tracking_uri, "icpkit-test")
    assert {n: _aliases(tracking_uri, n) for n in names} == before
    assert len(notes) == 1 and "icp-win @champion back to v1" in notes[0]
    record = json.loads(client.get_run(child_run).data.tags["icpkit.publish"])
    assert record["state"] == "rolled_back"
    assert client.get_model_version("icp-win", "3").tags["icpkit.publish_result"] == "rolled back"
    assert recover_interrupted(tracking_uri, "icpkit-test") == []  # nothing left to repair


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_runs_of_dead_processes_are_marked_failed(tracking_uri):
    client = client_for(tracking_uri)
    tracker = Tracker(tracking_uri, "icpkit-test")
    with tracker.start_training("alive") as alive:
        dead = client.create_run(tracker.experiment_id, run_name="killed training").info.run_id
        client.set_tag(dead, "icpkit.pid", str(_dead_pid()))
        client.set_tag(dead, "icpkit.host", client.get_run(alive).data.tags["icpkit.host"])
        notes = recover_interrupted(tracking_uri, "icpkit-test")
        assert client.get_run(alive).info.status == "RUNNING"  # this process is alive
    assert len(notes) == 1 and "killed training" in notes[0]
    run = client.get_run(dead)
    assert run.info.status == "FAILED" and "ended before the run finished" in run.data.tags["icpkit.failure"]
    assert recover_interrupted(tracking_uri, "no-such-experiment") == []


def test_outcome_runs_carry_the_process_so_a_killed_training_fails_them_too(tracking_uri):
    client = client_for(tracking_uri)
    tracker = Tracker(tracking_uri, "icpkit-test")
    with tracker.start_training("killed") as parent, tracker.start_outcome("win") as child:
        tags, parent_tags = client.get_run(child).data.tags, client.get_run(parent).data.tags
        client.set_tag(parent, "icpkit.pid", str(_dead_pid()))
        client.set_tag(child, "icpkit.pid", str(_dead_pid()))
        notes = recover_interrupted(tracking_uri, "icpkit-test")
        assert [client.get_run(r).info.status for r in (parent, child)] == ["FAILED", "FAILED"]
    assert tags["icpkit.pid"] == str(os.getpid()) and tags["icpkit.host"] == parent_tags["icpkit.host"]
    assert len(notes) == 2 and any("(win)" in note for note in notes)


def test_a_tampered_champion_stops_the_publish(tracking_uri, data, models):
    X, _, _, _ = data
    _publish(tracking_uri, [("icp-win", models["logistic"][1], X, 0.6, lambda m: 0.0)])
    location = client_for(tracking_uri).get_model_version_download_uri("icp-win", "1")
    code = Path(location.removeprefix("file://")) / "pyfunc_model.py"
    code.write_text(code.read_text() + "\nprint('changed')\n")
    with pytest.raises(ModelIntegrityError, match="pyfunc_model.py does not match"):
        _publish(tracking_uri, [("icp-win", models["lightgbm"][1], X, 0.9, lambda m: 0.0)])
    versions = client_for(tracking_uri).search_model_versions("name = 'icp-win'")
    assert [str(v.version) for v in versions] == ["1"]


def test_datasets_never_mix_silently(tracking_uri, data, models, caplog):
    X, _, _, _ = data
    crm = dataset_key("postgresql://alice:old@db/crm", {"accounts": None, "leads": "leads_v2"})
    assert crm == dataset_key("postgresql://alice:rotated@db/crm", {"leads": "leads_v2", "accounts": None})
    telco = dataset_key("/data/telco", {"accounts": "telco.csv"})
    assert crm != telco and crm != dataset_key("postgresql://alice:old@db/crm", {"accounts": None})
    _publish(tracking_uri, [("icp-win", models["logistic"][1], X, 0.6, lambda m: 0.0)], dataset_key=crm)

    check_dataset(tracking_uri, ["icp-win", "icp-renewal"], crm)  # same source refreshed: competes
    with pytest.raises(DatasetMismatchError) as err:
        check_dataset(tracking_uri, ["icp-win", "icp-renewal"], telco)
    message = str(err.value)
    assert "icp-win @champion (v1 from dataset" in message and "icp-renewal" not in message
    assert "tracking.model_prefix" in message and "tracking.allow_dataset_change: true" in message
    with caplog.at_level(logging.WARNING):
        check_dataset(tracking_uri, ["icp-win"], telco, allow_change=True)
    assert "allow_dataset_change" in caplog.text


def test_no_secret_leaves_in_tags_params_descriptions_artifacts_or_logs(tracking_uri, data, models, caplog):
    X, _, _, _ = data
    secret = "Hunter2xyzzy"
    source = f"postgresql://alice:{secret}@db.example.com/crm?sslmode=require&token=tok{secret}"
    config = {"data": {"source": source}, "tracking": {"tracking_uri": source}}
    tracker = Tracker(tracking_uri, "icpkit-test")
    with (
        caplog.at_level(logging.DEBUG),
        tracker.start_training(f"crm {source}", params={"config": config}, tags={"source": source}) as run_id,
    ):
        tracker.log_dataset_inputs(source, {"accounts": X}, {"accounts": "fp"})
        tracker.log_dict({"source": source}, "config.json")
        tracker.log_table(X.head(2).assign(source=source), "tables/sample.csv")
        ref = log_model(tracking_uri, run_id, models["logistic"][1], "win", X, metadata={"source": source})
        candidate = Candidate(
            "icp-win", ref, 0.7, lambda m: 0.0, f"Win propensity from {source}", tags={"src": source}
        )
        register_candidates(
            tracking_uri,
            [candidate],
            run_id=run_id,
            dataset_key=dataset_key(source),
            config_hash=config_hash(config),
            fingerprint={"accounts": source},
            dataset_label=source,
        )
    client = client_for(tracking_uri)
    run = client.get_run(run_id)
    mv = client.get_model_version("icp-win", "1")
    seen = [
        run.info.run_name,
        json.dumps(run.data.tags),
        json.dumps(run.data.params),
        json.dumps(mv.tags),
        mv.description,
        client.get_registered_model("icp-win").description,
        caplog.text,
    ]
    assert all(secret not in text for text in seen), [text for text in seen if secret in text]
    assert "alice:***@db.example.com" in run.data.params["config.data.source"]
    store = Path(tracking_uri.removeprefix("sqlite:///")).parent
    leaked = [p for p in store.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]
    assert leaked == []  # not in any artifact file, nor in the SQLite database itself
