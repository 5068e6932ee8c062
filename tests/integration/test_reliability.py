"""Nothing lost, nothing leaked, no one let in — through the real command lines.

One small synthetic CRM is trained and published once (the module's first complete run). The
tests then kill later trainings with SIGKILL at chosen stages (read from the progress the command
prints), retrain with a dropped column, tamper with a registered model's code, train from a source
URL carrying a token, and retrain under CPU contention — and check what a user would check: the
aliases, ``outputs/<experiment>/latest``, the previous profile, the runs, every stored byte.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import yaml

from icpkit.config import load_config
from icpkit.data.loading import load_crm
from icpkit.registry import ModelIntegrityError, Tracker, load_verified
from icpkit.registry.publish import publish
from icpkit.registry.store import client_for
from icpkit.workflow import point_latest, train_and_profile, write_outputs
from tests.integration.conftest import EXTRACT

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENT = "rel"
pytestmark = pytest.mark.slow


def _config(source: str, store: Path, outcomes: tuple[str, ...] = ("conversion", "win")) -> dict:
    return {
        "seed": 5,
        "data": {"source": source, "extract_date": str(EXTRACT)},
        "training": {
            "outcomes": list(outcomes),
            "tuning": {"n_trials": 2},
            "max_boost_rounds": 100,
            "bootstrap_samples": 20,
            "shap_sample_rows": 200,
        },
        "tracking": {"tracking_uri": f"sqlite:///{store}/mlflow.db", "experiment": EXPERIMENT},
    }


def _env(**extra: str) -> dict[str, str]:
    # This checkout's code, whatever the virtualenv was installed from.
    return {
        "PATH": os.environ["PATH"],
        "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}",
        "OMP_NUM_THREADS": "1",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        **extra,
    }


def _cli(module: str, *args: str) -> subprocess.CompletedProcess:
    """Run ``python -m <module> <args>`` on this checkout, its output captured."""
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True, env=_env(), timeout=300
    )


def _train_in_process(config: Path, outputs: Path):
    """What ``python -m pipelines.train`` does, in this process (saves the start-up time)."""
    cfg = load_config(config)
    crm = load_crm(cfg.data, EXTRACT)
    tracker = Tracker(cfg.tracking.tracking_uri, cfg.tracking.experiment)
    run = train_and_profile(crm, cfg, tracker.previous_training_json("icp/icp_profile.json"))
    folder = write_outputs(run, outputs, latest=False)
    published = publish(run, tracker, folder)
    point_latest(folder)
    return run, published, folder


class World:
    """The module's store, outputs and config after its first complete run."""

    def __init__(self, root: Path, source: Path):
        self.root, self.source = root, source
        self.store, self.outputs = root / "store", root / "outputs"
        self.config = root / "icpkit.yaml"
        self.config.write_text(yaml.safe_dump(_config(str(source), self.store)))
        self.uri = f"sqlite:///{self.store}/mlflow.db"
        self.run, self.published, self.folder = _train_in_process(self.config, self.outputs)

    def train(self, log: Path, *args: str, **env: str) -> subprocess.Popen:
        """Start ``python -m pipelines.train`` on this world; its stderr goes to ``log``."""
        with log.open("w") as err:
            return subprocess.Popen(
                [sys.executable, "-m", "pipelines.train", "--config", str(self.config),
                 "--outputs", str(self.outputs), *args],
                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err, env=_env(**env),
            )  # fmt: skip

    def state(self) -> dict:
        """Every alias and version, ``latest`` and the bytes of the profile it points at."""
        client = client_for(self.uri)
        models = {rm.name: dict(sorted(rm.aliases.items())) for rm in client.search_registered_models()}
        versions = sorted(f"{mv.name}/{mv.version}" for mv in client.search_model_versions(""))
        latest = self.outputs / EXPERIMENT / "latest"
        files = {
            str(p.relative_to(latest)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(latest.rglob("*"))
            if p.is_file()
        }
        previous = Tracker(self.uri, EXPERIMENT).previous_training_json("icp/icp_profile.json")
        return {
            "aliases": models,
            "versions": versions,
            "latest": os.readlink(latest),
            "latest_files": files,
            "previous_profile_version": previous["version"],
        }

    def runs(self) -> dict[str, str]:
        client = client_for(self.uri)
        exp = client.get_experiment_by_name(EXPERIMENT)
        return {r.info.run_id: r.info.status for r in client.search_runs([exp.experiment_id])}


@pytest.fixture(scope="module")
def world(crm_folder, tmp_path_factory) -> World:
    root = tmp_path_factory.mktemp("reliability")
    source = root / "crm"
    shutil.copytree(crm_folder, source)  # the module's own copy: one test drops a column of it
    w = World(root, source)
    assert {r.alias for r in w.published.registrations.values()} == {"champion"}
    assert set(w.published.registrations) == {"conversion", "win", "scorer"}
    return w


def _kill_when(
    proc: subprocess.Popen, log: Path, ready: str | Callable[[str], bool], timeout: float = 240
) -> str:
    """SIGKILL ``proc`` as soon as its stderr shows ``ready`` (or ``ready(stderr)`` holds); the stderr."""
    check = (lambda text: ready in text) if isinstance(ready, str) else ready
    deadline = time.monotonic() + timeout  # a safety net against a hung child, not a timing
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if check(text):
            proc.send_signal(signal.SIGKILL)
            assert proc.wait(timeout=30) == -signal.SIGKILL
            return log.read_text(errors="replace")
        if proc.poll() is not None:
            pytest.fail(f"training ended (exit {proc.returncode}) before {ready!r}:\n{text[-3000:]}")
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"no {ready!r} within {timeout}s:\n{log.read_text(errors='replace')[-3000:]}")


# --- 1. a killed training changes nothing ---------------------------------------------------------
def test_kill_during_tuning_leaves_aliases_latest_and_the_previous_profile(world, tmp_path):
    before, runs = world.state(), world.runs()
    folders = {p.name for p in (world.outputs / EXPERIMENT).iterdir()}
    # More trials than the first run, so the kill lands inside the search.
    proc = world.train(tmp_path / "stderr.txt", "--set", "training.tuning.n_trials=40")
    text = _kill_when(proc, tmp_path / "stderr.txt", "win: tuning LightGBM (40 trials)")
    assert "win: refit on" not in text  # killed inside the search
    assert world.state() == before
    assert world.runs() == runs  # nothing reached MLflow
    assert {p.name for p in (world.outputs / EXPERIMENT).iterdir()} == folders


def test_kill_during_the_icp_stage_leaves_aliases_latest_and_the_previous_profile(world, tmp_path):
    before, runs = world.state(), world.runs()
    folders = {p.name for p in (world.outputs / EXPERIMENT).iterdir()}
    # FORCE_COLOR: the progress line renders on a pipe as on a terminal, so its steps can be read.
    proc = world.train(tmp_path / "stderr.txt", FORCE_COLOR="1", TERM="xterm")
    text = _kill_when(proc, tmp_path / "stderr.txt", "ICP: ")
    assert "writing the ICP" not in text
    assert world.state() == before
    assert world.runs() == runs
    assert {p.name for p in (world.outputs / EXPERIMENT).iterdir()} == folders


def test_kill_while_publishing_then_the_next_start_fails_the_run_and_keeps_every_alias(world, tmp_path):
    before, runs = world.state(), world.runs()
    client = client_for(world.uri)
    exp = client.get_experiment_by_name(EXPERIMENT).experiment_id

    def publishing(text: str) -> bool:
        # Kill once the publish is under way: an outcome's child run is open in the store.
        return "logging to MLflow and registering" in text and bool(
            client.search_runs([exp], "tags.`icpkit.run_kind` = 'outcome' and attributes.status = 'RUNNING'")
        )

    proc = world.train(tmp_path / "stderr.txt", FORCE_COLOR="1", TERM="xterm")
    _kill_when(proc, tmp_path / "stderr.txt", publishing)
    killed = [r for r in world.runs() if r not in runs]
    assert killed and all(world.runs()[r] == "RUNNING" for r in killed)
    assert os.readlink(world.outputs / EXPERIMENT / "latest") == before["latest"]

    # The next start (here on another dataset, so it stops right after its start-up checks).
    other = tmp_path / "other-crm"
    shutil.copytree(world.source, other)
    again = _cli(
        "pipelines.train", "--config", str(world.config), "--outputs", str(world.outputs),
        "--set", f"data.source={other}",
    )  # fmt: skip
    assert again.returncode == 2, again.stderr[-3000:]
    assert "Traceback" not in again.stderr
    assert "tracking.model_prefix" in again.stderr  # another dataset never competes silently
    assert "marked FAILED" in again.stderr
    assert all(world.runs()[r] == "FAILED" for r in killed)
    after = world.state()
    assert after["aliases"] == before["aliases"] and after["latest"] == before["latest"]
    assert after["latest_files"] == before["latest_files"]
    assert after["previous_profile_version"] == before["previous_profile_version"]


# --- 2. a changed schema: one line, a challenger, exit 0 ----------------------------------------------
def test_retrain_with_a_dropped_column_registers_a_challenger_with_a_one_line_reason(world, tmp_path):
    client = client_for(world.uri)
    champion = {
        n: str(client.get_registered_model(f"icp-{n}").aliases["champion"]) for n in ("win", "conversion")
    }
    accounts = world.source / "accounts.csv"
    original = accounts.read_bytes()
    try:
        pd.read_csv(accounts, dtype=str, keep_default_na=False).drop(columns=["employees"]).to_csv(
            accounts, index=False
        )
        proc = _cli("pipelines.train", "--config", str(world.config), "--outputs", str(world.outputs))
    finally:
        accounts.write_bytes(original)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    line = f"champion v{champion['win']} of icp-win cannot score this holdout: missing input employees"
    lines = [ln for ln in proc.stderr.splitlines() if "icp-win cannot score" in ln]
    assert len(lines) == 1 and line in lines[0], proc.stderr[-3000:]
    rm = client.get_registered_model("icp-win")
    new = max(int(v.version) for v in client.search_model_versions("name = 'icp-win'"))
    assert str(rm.aliases["champion"]) == champion["win"] and str(rm.aliases["challenger"]) == str(new)
    tags = client.get_model_version("icp-win", str(new)).tags
    assert tags["icpkit.gate"] == "challenger" and "missing input employees" in tags["icpkit.gate_reason"]
    assert "tracking.promote_on_schema_change" in tags["icpkit.gate_reason"]
    assert re.search(r"win\s.*challenger", proc.stderr)  # the summary table says so too


# --- 3. a tampered model is refused before its code runs ---------------------------------------------
def test_a_tampered_code_file_is_refused_by_load_verified_and_by_the_score_command(world, tmp_path):
    client = client_for(world.uri)
    version = str(client.get_registered_model("icp-win").aliases["champion"])
    code = (
        Path(client.get_model_version_download_uri("icp-win", version).removeprefix("file://"))
        / "pyfunc_model.py"
    )
    original = code.read_bytes()
    marker = tmp_path / "the-tampered-code-ran"
    code.write_bytes(
        original + f"\nimport pathlib; pathlib.Path({str(marker)!r}).write_text('ran')\n".encode()
    )
    try:
        with pytest.raises(ModelIntegrityError, match="pyfunc_model.py does not match"):
            load_verified(world.uri, f"models:/icp-win/{version}")
        proc = _cli("pipelines.score", "--config", str(world.config), "--output", str(tmp_path / "scores"))
    finally:
        code.write_bytes(original)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert "icp-win" in proc.stderr and "pyfunc_model.py does not match" in proc.stderr
    assert not marker.exists()  # refused before any of its code ran
    assert not (tmp_path / "scores").exists()
    load_verified(world.uri, f"models:/icp-win/{version}")  # restored: loads again


# --- 4. a secret in the source URL never leaves the process ------------------------------------------
#: Not "S3cretPW": that is the example in secrets.py, packaged with every model.
SECRET = "Tok3nXyzzy42"


def test_a_token_in_the_data_source_appears_in_no_log_tag_param_description_or_file(world, tmp_path):
    db = tmp_path / "crm.db"
    with sqlite3.connect(db) as con:
        for csv in sorted(world.source.glob("*.csv")):
            pd.read_csv(csv, dtype=str, keep_default_na=False).to_sql(csv.stem, con, index=False)
    source = f"sqlite:///file:{db}?mode=ro&token={SECRET}&uri=true"  # SQLite's URI form takes any key
    store, outputs = tmp_path / "store", tmp_path / "outputs"
    config = tmp_path / "icpkit.yaml"
    config.write_text(yaml.safe_dump(_config(source, store, outcomes=("win",))))
    proc = _cli("pipelines.train", "--config", str(config), "--outputs", str(outputs), "-v")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert SECRET not in proc.stdout + proc.stderr
    client = client_for(f"sqlite:///{store}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name(EXPERIMENT).experiment_id])
    assert runs and all(SECRET not in json.dumps([r.info.run_name, r.data.tags, r.data.params]) for r in runs)
    parent = next(r for r in runs if r.data.tags.get("icpkit.run_kind") == "training")
    assert "token=***" in parent.data.params["config.data.source"]  # masked, not dropped
    for mv in client.search_model_versions(""):
        assert SECRET not in json.dumps(
            [mv.tags, mv.description, client.get_registered_model(mv.name).description]
        )
    files = [p for folder in (store, outputs) for p in folder.rglob("*") if p.is_file()]
    assert any(p.name == "mlflow.db" for p in files) and any(p.name == "booster.txt" for p in files)
    assert [p for p in files if SECRET.encode() in p.read_bytes()] == []  # no artifact, nor the store itself


# --- 5. the same run on a busy machine gives the same files -------------------------------------------
def _model_files(uri: str, name: str, version: str) -> dict[str, bytes]:
    folder = Path(client_for(uri).get_model_version_download_uri(name, version).removeprefix("file://"))
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted((folder / "artifacts").rglob("*"))
        if p.is_file()
    }


#: Profile keys that say when or after what a run happened, not what it found.
RUN_CONTEXT_KEYS = {"generated_at", "started_at", "created_at", "changes"}


def _without_run_context(value):
    if isinstance(value, dict):
        return {k: _without_run_context(v) for k, v in value.items() if k not in RUN_CONTEXT_KEYS}
    if isinstance(value, list):
        return [_without_run_context(v) for v in value]
    return value


def test_same_config_under_cpu_contention_gives_identical_boosters_and_profile(world):
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 2)]
    try:
        _, published, folder = _train_in_process(world.config, world.outputs)
    finally:
        for p in busy:
            p.kill()
            p.wait()
    first = world.published.registrations
    for key in ("conversion", "win", "scorer"):
        old, new = first[key], published.registrations[key]
        assert new.version != old.version
        before, after = (
            _model_files(world.uri, old.name, old.version),
            _model_files(world.uri, new.name, new.version),
        )
        assert set(before) == set(after) and before, key
        assert [f for f in before if before[f] != after[f]] == [], key
    assert any(
        f.endswith("booster.txt")
        for f in _model_files(world.uri, "icp-conversion", first["conversion"].version)
    )
    profile = lambda f: _without_run_context(json.loads((f / "icp_profile.json").read_text()))  # noqa: E731
    assert profile(folder) == profile(world.folder)


# --- 6. an unreachable tracking server is one message, not five tracebacks ----------------------------
def test_an_unreachable_tracking_server_stops_the_cli_with_one_masked_message(tmp_path):
    crm = tmp_path / "crm"
    crm.mkdir()
    pd.DataFrame({"account_id": ["A1", "A2"], "industry": ["x", "y"]}).to_csv(
        crm / "accounts.csv", index=False
    )
    config = tmp_path / "icpkit.yaml"
    uri = f"http://alice:{SECRET}@127.0.0.1:9"  # port 9 (discard): nothing answers
    config.write_text(yaml.safe_dump({"data": {"source": str(crm), "extract_date": str(EXTRACT)},
                                      "tracking": {"tracking_uri": uri}}))  # fmt: skip
    proc = _cli("pipelines.train", "--config", str(config), "--outputs", str(tmp_path / "out"))
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and SECRET not in proc.stdout + proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "http://alice:***@127.0.0.1:9 is unavailable" in errors[0], proc.stderr
    assert "tracking.tracking_uri" in proc.stderr and not (tmp_path / "out").exists()
