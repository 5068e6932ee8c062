"""Verified loading: a registered model whose files changed is refused before any of its code runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from icpkit.registry import (
    Candidate,
    ModelIntegrityError,
    Tracker,
    download_verified,
    load_verified,
    log_model,
    packaging,
    register_candidates,
    to_model_input,
    verification,
)
from icpkit.registry.store import client_for

ROOT = Path(__file__).resolve().parents[2]


def _register(uri, model_dir, X, name="icp-win"):
    tracker = Tracker(uri, "icpkit-test")
    with tracker.start_training("verify") as run_id:
        ref = log_model(uri, run_id, model_dir, "win", X)
        register_candidates(
            uri,
            [Candidate(name, ref, 0.7, lambda m: 0.0, "Win propensity.")],
            run_id=run_id,
            dataset_key="k",
            config_hash="c",
        )
    return ref, Path(ref.artifact_location.removeprefix("file://"))


def test_manifest_is_recorded_on_the_version(tracking_uri, data, models):
    X, _, _, _ = data
    ref, folder = _register(tracking_uri, models["logistic"][1], X)
    mv = client_for(tracking_uri).get_model_version("icp-win", "1")
    manifest = verification.recorded_manifest(tracking_uri, mv)
    assert manifest == ref.manifest == verification.file_manifest(folder)
    assert {"pyfunc_model.py", "artifacts/model_dir/model.json", "code/icpkit/__init__.py"} <= set(manifest)


def test_an_appended_line_in_the_code_file_is_refused_before_it_runs(tracking_uri, data, models, tmp_path):
    X, _, Xh, _ = data
    _, folder = _register(tracking_uri, models["lightgbm"][1], X)
    marker = tmp_path / "the-tampered-code-ran"
    with (folder / "pyfunc_model.py").open("a") as f:
        f.write(f"\nopen({str(marker)!r}, 'w').write('pwned')\n")
    with pytest.raises(ModelIntegrityError, match="file pyfunc_model.py does not match the SHA-256") as err:
        load_verified(tracking_uri, "models:/icp-win@champion")
    assert err.value.path == "pyfunc_model.py"
    assert not marker.exists()


def test_a_changed_packaged_module_an_added_or_a_missing_file_is_refused(tracking_uri, data, models):
    X, _, Xh, _ = data
    _, folder = _register(tracking_uri, models["lightgbm"][1], X)
    assert load_verified(tracking_uri, "models:/icp-win/1").predict(to_model_input(Xh)).shape == (len(Xh), 1)

    secrets_py = folder / "code" / "icpkit" / "secrets.py"
    original = secrets_py.read_text()
    secrets_py.write_text(original + "\nMASK = 'not masked'\n")
    with pytest.raises(ModelIntegrityError, match="file code/icpkit/secrets.py does not match"):
        load_verified(tracking_uri, "models:/icp-win/1")
    secrets_py.write_text(original)

    (folder / "code" / "icpkit" / "sitecustomize.py").write_text("print('hello')\n")
    with pytest.raises(ModelIntegrityError, match="file code/icpkit/sitecustomize.py was added"):
        load_verified(tracking_uri, "models:/icp-win/1")
    (folder / "code" / "icpkit" / "sitecustomize.py").unlink()

    (folder / "artifacts" / "model_dir" / "booster.txt").unlink()
    with pytest.raises(ModelIntegrityError, match="booster.txt recorded at registration is missing"):
        load_verified(tracking_uri, "models:/icp-win/1")


def test_a_long_manifest_is_an_artifact_pinned_by_its_hash(tracking_uri, data, models, monkeypatch):
    X, _, Xh, _ = data
    monkeypatch.setattr(packaging, "MANIFEST_TAG_LIMIT", 100)
    ref, _ = _register(tracking_uri, models["logistic"][1], X)
    assert ref.manifest_artifact == f"model_manifests/{ref.model_id}.json"
    tags = client_for(tracking_uri).get_model_version("icp-win", "1").tags
    assert "icpkit.manifest" not in tags and tags["icpkit.manifest_artifact"] == ref.manifest_artifact
    assert load_verified(tracking_uri, "models:/icp-win@champion").predict(to_model_input(Xh)).shape[
        0
    ] == len(Xh)

    run_artifacts = Path(
        client_for(tracking_uri).get_run(ref.run_id).info.artifact_uri.removeprefix("file://")
    )
    stored = run_artifacts / ref.manifest_artifact
    # An attacker who rewrites both a file and the manifest artifact is still caught by the tag.
    stored.write_text(stored.read_text().replace('"MLmodel":"', '"MLmodel":"0'))
    with pytest.raises(ModelIntegrityError, match="manifest artifact .* does not match the SHA-256"):
        load_verified(tracking_uri, "models:/icp-win@champion")


def test_unknown_or_unregistered_uris_are_refused(tracking_uri):
    with pytest.raises(ModelIntegrityError, match="only registered versions carry a manifest"):
        load_verified(tracking_uri, "models:/m-0123456789abcdef")
    with pytest.raises(ModelIntegrityError, match="not found in the registry"):
        load_verified(tracking_uri, "models:/icp-nothing@champion")


def test_download_verified_keeps_a_checked_copy_to_load(tracking_uri, data, models, tmp_path):
    X, _, _, _ = data
    ref, _ = _register(tracking_uri, models["logistic"][1], X)
    verified = download_verified(tracking_uri, "models:/icp-win@champion", tmp_path / "copy")
    assert (verified.name, verified.version, verified.n_files) == ("icp-win", "1", len(ref.manifest))
    assert verification.file_manifest(tmp_path / "copy") == ref.manifest


def _cli(tracking_uri, *args):
    env = {"PATH": os.environ["PATH"], "MLFLOW_TRACKING_URI": tracking_uri}
    return subprocess.run(
        [sys.executable, "-m", "icpkit.registry.verify", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_verify_one_liner_exits_0_then_2_after_tampering(tracking_uri, data, models, tmp_path):
    X, _, _, _ = data
    _, folder = _register(tracking_uri, models["logistic"][1], X, name="icp-scorer")
    ok = _cli(tracking_uri, "models:/icp-scorer@champion", "--dst", str(tmp_path / "verified"))
    assert ok.returncode == 0, ok.stderr
    assert "OK models:/icp-scorer/1 (models:/icp-scorer@champion)" in ok.stdout
    assert (tmp_path / "verified" / "MLmodel").is_file()

    (folder / "MLmodel").write_text((folder / "MLmodel").read_text() + "\n# changed\n")
    refused = _cli(tracking_uri, "models:/icp-scorer@champion")
    assert refused.returncode == 2
    assert "REFUSED" in refused.stderr and "file MLmodel does not match" in refused.stderr
    assert "Traceback" not in refused.stderr
