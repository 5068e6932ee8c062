"""A registered model loads and scores in a fresh virtualenv built from its own requirements.txt only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from icpkit.registry import (
    Candidate,
    Tracker,
    download_verified,
    log_model,
    register_candidates,
    to_model_input,
)

_SCORE = """
import json, sys
import pandas as pd
try:
    import icpkit
    sys.exit("icpkit is importable before the model is loaded: the environment is not clean")
except ModuleNotFoundError:
    pass
import mlflow
model_dir, rows = sys.argv[1], sys.argv[2]
model = mlflow.pyfunc.load_model(model_dir)
frame = pd.read_json(rows, orient="split")
out = model.predict(frame)
print(json.dumps({"icpkit_from": sys.modules["icpkit"].__file__, "scores": out.iloc[:, 0].tolist()}))
"""


@pytest.mark.slow
def test_model_loads_in_a_fresh_virtualenv_from_its_requirements_only(tracking_uri, data, models, tmp_path):
    X, _, Xh, _ = data
    model, model_dir = models["lightgbm"]
    tracker = Tracker(tracking_uri, "icpkit-test")
    with tracker.start_training("clean env") as run_id:
        ref = log_model(tracking_uri, run_id, model_dir, "win", X)
        candidate = Candidate("icp-win", ref, 0.7, lambda m: 0.0, "Win propensity.")
        register_candidates(tracking_uri, [candidate], run_id=run_id, dataset_key="k", config_hash="c")
    verified = download_verified(tracking_uri, "models:/icp-win@champion", tmp_path / "model")

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    # The machine's pip configuration (index, wheel folders) applies; nothing but the model's
    # requirements is installed.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "MLFLOW_"))}
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "-r", str(verified.path / "requirements.txt")],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert install.returncode == 0, install.stderr[-3000:]

    rows = tmp_path / "rows.json"
    rows.write_text(to_model_input(Xh).to_json(orient="split", index=False))
    env |= {"MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
    proc = subprocess.run(
        [str(python), "-c", _SCORE, str(verified.path), str(rows)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert Path(result["icpkit_from"]).is_relative_to(verified.path / "code")
    np.testing.assert_allclose(result["scores"], model.predict_proba(Xh), rtol=1e-12)
