"""Packaging, logging and verified loading of pickle-free icpkit models, against real SQLite stores."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml

from icpkit.registry import (
    Candidate,
    Tracker,
    build_model_folder,
    load_champion,
    load_verified,
    loaders,
    log_model,
    model_requirements,
    register_candidates,
    to_model_input,
    typical_example,
)
from icpkit.registry.store import client_for

# Fixtures tracking_uri, data and models live in tests/unit/conftest.py.
ROOT = Path(__file__).resolve().parents[2]


def _publish(uri, model_dir, X, name="icp-win", score=0.7):
    """Log ``model_dir`` in a fresh training run and register it (no champion yet: champion)."""
    tracker = Tracker(uri, "icpkit-test")
    with tracker.start_training("test run") as run_id:
        ref = log_model(uri, run_id, model_dir, "win", X)
        candidate = Candidate(name, ref, score, lambda model: 0.0, "Win propensity.")
        reg = register_candidates(uri, [candidate], run_id=run_id, dataset_key="k", config_hash="c")[0]
    return ref, reg


def _environment():
    # MLflow's telemetry client keeps its own session id in the environment; that is not ours.
    return {k: v for k, v in os.environ.items() if not k.startswith("_MLFLOW_TELEMETRY")}


@pytest.mark.parametrize("kind", ["lightgbm", "logistic"])
def test_registered_model_loads_without_pickles_and_matches_in_memory(
    tracking_uri, data, models, kind, monkeypatch
):
    X, _, Xh, _ = data
    model, model_dir = models[kind]
    ref, reg = _publish(tracking_uri, model_dir, X)
    assert (reg.version, reg.alias) == ("1", "champion")
    folder = Path(ref.artifact_location.removeprefix("file://"))
    assert {"MLmodel", "pyfunc_model.py", "requirements.txt", "code/icpkit/registry/loaders.py"} <= set(
        ref.manifest
    )
    assert not [p for p in folder.rglob("*") if p.suffix in {".pkl", ".pickle", ".joblib", ".cloudpickle"}]

    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    loaded = load_verified(tracking_uri, "models:/icp-win@champion")
    schema = loaded.metadata.get_input_schema()
    # Every input named, untyped and optional: the model's own input checks type the values.
    assert [c.name for c in schema.inputs] == ["employees", "industry", "seats"]
    assert not any(c.required for c in schema.inputs)
    expected = model.predict_proba(Xh)
    out = loaded.predict(to_model_input(Xh))
    assert list(out.columns) == ["win_propensity"]
    np.testing.assert_allclose(out["win_propensity"].to_numpy(), expected, rtol=1e-12)
    # int64 and bool numbers go through to_model_input (MLflow refuses int64 -> double as unsafe).
    with_ints = Xh.assign(seats=Xh["seats"].fillna(0).astype("int64"))
    plain = to_model_input(with_ints)
    assert plain["industry"].dtype == object and plain["seats"].dtype == "float64"
    np.testing.assert_allclose(
        loaded.predict(plain)["win_propensity"].to_numpy(), model.predict_proba(plain), rtol=1e-12
    )
    champion = load_champion(tracking_uri, "icp-win")
    served = champion.predict(to_model_input(Xh))["win_propensity"].to_numpy()
    np.testing.assert_allclose(served, expected, rtol=1e-12)
    assert load_champion(tracking_uri, "icp-nothing") is None


def test_logging_registering_and_loading_leave_no_global_state(tracking_uri, data, models):
    X, _, Xh, _ = data
    env, uri, registry, path = (
        _environment(),
        mlflow.get_tracking_uri(),
        mlflow.get_registry_uri(),
        list(sys.path),
    )
    _publish(tracking_uri, models["lightgbm"][1], X)
    load_verified(tracking_uri, "models:/icp-win/1").predict(to_model_input(Xh))
    assert _environment() == env
    assert (mlflow.get_tracking_uri(), mlflow.get_registry_uri()) == (uri, registry)
    assert sys.path == path  # the model's code/ folder is not left on the import path


def test_model_folder_has_relative_paths_and_a_typical_example_only(data, models, tmp_path):
    X, _, _, _ = data
    X = X.assign(company=[f"Customer {i} GmbH" for i in range(len(X))])  # unique: must not leak
    out = build_model_folder(models["logistic"][1], X[["employees", "industry", "seats"]], tmp_path / "m")
    mlmodel = yaml.safe_load((out / "MLmodel").read_text())
    conf = mlmodel["flavors"]["python_function"]
    assert conf["model_code_path"] == "pyfunc_model.py"
    assert conf["artifacts"]["model_dir"] == {"path": "artifacts/model_dir", "uri": "artifacts/model_dir"}
    for f in out.rglob("*"):
        if f.is_file() and f.suffix in {"", ".json", ".yaml", ".txt"}:
            assert str(tmp_path) not in f.read_text() and str(ROOT) not in f.read_text(), f
    example = json.loads((out / "input_example.json").read_text())
    assert example["columns"] == ["employees", "industry", "seats"] and len(example["data"]) == 1
    row = dict(zip(example["columns"], example["data"][0], strict=True))
    assert row["employees"] == pytest.approx(X["employees"].median())
    assert row["seats"] == pytest.approx(X["seats"].median())
    assert row["industry"] == X["industry"].value_counts().index[0]


def test_typical_example_hides_rare_values_and_handles_dates_and_booleans():
    frame = pd.DataFrame(
        {
            "name": pd.Series([f"acct {i}" for i in range(10)], dtype="str"),
            "plan": pd.Series(["pro"] * 6 + ["free"] * 4, dtype="str"),
            "active": [True] * 7 + [False] * 3,
            "signed": pd.to_datetime(["2024-01-01"] * 5 + ["2024-01-11"] * 5),
            "arr": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, np.nan],
        }
    )
    row = typical_example(frame).iloc[0].to_dict()
    assert row["name"] is None and row["plan"] == "pro" and row["active"] == 1.0
    assert row["signed"].startswith("2024-01-06") and row["arr"] == 5.0


def test_requirements_pin_everything_the_packaged_code_imports(tracking_uri, data, models, tmp_path):
    """Load and score a packaged model in a fresh process.

    Every library that the loaded icpkit modules import must be a pinned requirement or one of
    their dependencies.
    """
    X, _, _, _ = data
    out = build_model_folder(models["lightgbm"][1], X, tmp_path / "m")
    script = f"""
import importlib.metadata as md, json, sys
import mlflow, pandas as pd
model = mlflow.pyfunc.load_model({str(out)!r})
example = pd.read_json({str(out / "input_example.json")!r}, orient="split")
model.predict(example)
# What the loaded icpkit modules import themselves (third-party libraries' own optional imports,
# such as sklearn's rich progress bar, are theirs to declare).
import ast
names = set()
for mod in [m for n, m in list(sys.modules.items()) if n.split(".")[0] == "icpkit"]:
    for node in ast.walk(ast.parse(open(mod.__file__).read())):
        if isinstance(node, ast.Import):
            names |= {{a.name.split(".")[0] for a in node.names}}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
dists = md.packages_distributions()
print(json.dumps(sorted({{d for n in names for d in dists.get(n, [])}})))
"""
    env = {"PATH": os.environ["PATH"], "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "false"}
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    used = {_canonical(d) for d in json.loads(proc.stdout.strip().splitlines()[-1])} - {"icpkit"}
    pinned = [line.split("==")[0] for line in (out / "requirements.txt").read_text().split()]
    assert [line for line in (out / "requirements.txt").read_text().split() if "==" not in line] == []
    assert pinned == [r.split("==")[0] for r in model_requirements()]
    covered = _with_dependencies(pinned)
    assert used <= covered, f"imported at scoring time but not required: {sorted(used - covered)}"


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-")


def _with_dependencies(roots: list[str]) -> set[str]:
    """``roots`` and everything they require (without extras), as installed here."""
    import importlib.metadata as md
    import re

    seen, todo = set(), [_canonical(r) for r in roots]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = md.requires(name) or []
        except md.PackageNotFoundError:
            continue
        for req in requires:
            if "extra ==" in req:
                continue
            todo.append(_canonical(re.split(r"[\s<>=!~;\[(]", req, maxsplit=1)[0]))
    return seen


class _ConstantScorer:
    """A stand-in for later formats (e.g. the composite scorer): JSON in, DataFrame out."""

    def __init__(self, value):
        self.value = value

    def predict(self, frame):
        return pd.DataFrame({"segment": [self.value] * len(frame)}, index=frame.index)


def load_constant(directory):
    return _ConstantScorer(json.loads((Path(directory) / "model.json").read_text())["value"])


def test_a_new_format_is_one_line_in_the_loader_table(tracking_uri, data, tmp_path, monkeypatch):
    X, _, Xh, _ = data
    monkeypatch.setitem(loaders.LOADERS, "test.Constant/1", "tests.unit.test_registry:load_constant")
    folder = tmp_path / "const"
    folder.mkdir()
    (folder / "model.json").write_text('{"format": "test.Constant/1", "value": "saas-midmarket"}')
    _publish(tracking_uri, folder, X, name="icp-segments")
    out = load_champion(tracking_uri, "icp-segments").predict(to_model_input(Xh))
    assert out["segment"].eq("saas-midmarket").all() and len(out) == len(Xh)

    (folder / "model.json").write_text('{"format": "nobody.knows/9"}')
    with pytest.raises(ValueError, match="unknown model format 'nobody.knows/9'"):
        build_model_folder(folder, X, tmp_path / "x")
    (folder / "model.json").write_text('{"format": "test.Constant/1", "value": "x"}')
    (folder / "weights.pkl").write_bytes(b"\x80\x04")
    with pytest.raises(ValueError, match="pickle"):
        build_model_folder(folder, X, tmp_path / "y")


def test_logged_model_belongs_to_its_run(tracking_uri, data, models):
    X, _, _, _ = data
    ref, reg = _publish(tracking_uri, models["lightgbm"][1], X)
    client = client_for(tracking_uri)
    logged = client.get_logged_model(ref.model_id)
    assert logged.source_run_id == ref.run_id and logged.status.to_proto() == 2  # READY
    version = client.get_model_version("icp-win", reg.version)
    assert version.run_id == ref.run_id and version.source == ref.artifact_location
