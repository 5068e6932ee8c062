"""Verified loading: every file of a registered model is checked against SHA-256s recorded at registration.

MLflow "models from code" *executes* the model's code file (and the ``icpkit`` package shipped
in ``code/``) when the model is loaded, with pickle loading on or off. So a registered version
carries a manifest — the SHA-256 of every file of the model folder, computed on the folder built
locally before upload — and :func:`load_verified` downloads the files, checks every hash and
that no file was added or removed, and only then lets MLflow load the local copy.

The manifest is a version tag (``icpkit.manifest``) when it fits :data:`MANIFEST_TAG_LIMIT`;
otherwise it is an artifact of the training run and the tag ``icpkit.manifest_sha256`` pins it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
from mlflow.exceptions import MlflowException

from icpkit.errors import ICPKitError
from icpkit.registry.errors import ModelIntegrityError
from icpkit.registry.store import client_for
from icpkit.secrets import mask_secrets

log = logging.getLogger(__name__)

MANIFEST_TAG = "icpkit.manifest"
MANIFEST_SHA_TAG = "icpkit.manifest_sha256"
MANIFEST_ARTIFACT_TAG = "icpkit.manifest_artifact"
#: Longest manifest kept in a version tag. MLflow 3.17's SQL registry accepts 100,000
#: characters; older servers and other registries accept less, so longer ones become artifacts.
MANIFEST_TAG_LIMIT = 5000

_MODEL_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[\w-]+))$")


@dataclass(frozen=True)
class VerifiedModel:
    """A registered model version whose downloaded files match its manifest."""

    name: str
    version: str
    path: Path
    n_files: int


# --- manifests ------------------------------------------------------------------------------
def file_manifest(folder: str | Path) -> dict[str, str]:
    """The SHA-256 of every file under ``folder``.

    Parameters
    ----------
    folder : str or Path
        A model folder.

    Returns
    -------
    dict[str, str]
        ``{relative posix path: hex digest}``, sorted by path.
    """
    root = Path(folder)
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return {p.relative_to(root).as_posix(): _sha256(p.read_bytes()) for p in files}


def manifest_text(manifest: dict[str, str]) -> str:
    """The canonical JSON of a manifest (sorted keys, no spaces): what is tagged and hashed."""
    return json.dumps(manifest, sort_keys=True, separators=(",", ":"))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_files(folder: str | Path, manifest: dict[str, str], label: str) -> int:
    """Compare a downloaded model folder with its manifest.

    Parameters
    ----------
    folder : str or Path
        The downloaded files.
    manifest : dict[str, str]
        The recorded SHA-256 per file.
    label : str
        How to name the model in messages (``models:/icp-win/3``).

    Returns
    -------
    int
        The number of files checked.

    Raises
    ------
    ModelIntegrityError
        A file differs, was added, or is missing; the message names it.
    """
    found = file_manifest(folder)
    advice = "Do not load it; register a new version from a trusted training run."
    added, missing = sorted(set(found) - set(manifest)), sorted(set(manifest) - set(found))
    if added:
        raise ModelIntegrityError(
            f"{label}: file {added[0]} was added after registration. {advice}", added[0]
        )
    if missing:
        path = missing[0]
        raise ModelIntegrityError(f"{label}: file {path} recorded at registration is missing. {advice}", path)
    for path, expected in manifest.items():
        if found[path] != expected:
            raise ModelIntegrityError(
                f"{label}: file {path} does not match the SHA-256 recorded at registration "
                f"(expected {expected[:12]}…, found {found[path][:12]}…). {advice}",
                path,
            )
    return len(found)


# --- registry look-ups -----------------------------------------------------------------------
def parse_model_uri(model_uri: str) -> tuple[str, str | None, str | None]:
    """Split ``models:/<name>/<version>`` or ``models:/<name>@<alias>``.

    Returns
    -------
    tuple
        ``(name, version, alias)`` with exactly one of version and alias set.

    Raises
    ------
    ModelIntegrityError
        Any other URI (a bare logged model ``models:/m-…`` has no recorded manifest).
    """
    match = _MODEL_URI.match(model_uri)
    if match is None:
        raise ModelIntegrityError(
            f"{model_uri!r}: expected models:/<name>/<version> or models:/<name>@<alias>; only "
            "registered versions carry a manifest to verify against"
        )
    return match["name"], match["version"], match["alias"]


def resolve_version(tracking_uri: str, model_uri: str) -> Any:
    """The :class:`mlflow.entities.model_registry.ModelVersion` a registered-model URI names."""
    name, version, alias = parse_model_uri(model_uri)
    client = client_for(tracking_uri)
    try:
        if alias is not None:
            return client.get_model_version_by_alias(name, alias)
        return client.get_model_version(name, version)
    except MlflowException as exc:
        raise ModelIntegrityError(f"{model_uri}: not found in the registry ({_first_line(exc)})") from None


def recorded_manifest(tracking_uri: str, mv: Any) -> dict[str, str]:
    """The manifest recorded on a model version (from its tag, or its pinned run artifact)."""
    label = f"models:/{mv.name}/{mv.version}"
    tags = mv.tags or {}
    if MANIFEST_TAG in tags:
        return json.loads(tags[MANIFEST_TAG])
    if MANIFEST_SHA_TAG not in tags or MANIFEST_ARTIFACT_TAG not in tags or not mv.run_id:
        raise ModelIntegrityError(
            f"{label} carries no icpkit manifest (registered without icpkit's register_candidates), "
            "so its files cannot be verified"
        )
    with tempfile.TemporaryDirectory(prefix="icpkit-manifest-") as tmp:
        local = mlflow.artifacts.download_artifacts(
            run_id=mv.run_id,
            artifact_path=tags[MANIFEST_ARTIFACT_TAG],
            dst_path=tmp,
            tracking_uri=tracking_uri,
        )
        text = Path(local).read_text()
    if _sha256(text.encode()) != tags[MANIFEST_SHA_TAG]:
        raise ModelIntegrityError(
            f"{label}: its manifest artifact {tags[MANIFEST_ARTIFACT_TAG]} does not match the SHA-256 "
            "recorded on the version; the manifest was changed after registration",
            tags[MANIFEST_ARTIFACT_TAG],
        )
    return json.loads(text)


# --- download, verify, load ------------------------------------------------------------------
def download_verified(tracking_uri: str, model_uri: str, dst_path: str | Path) -> VerifiedModel:
    """Download a registered model version into ``dst_path`` and verify every file.

    No file of the model is imported or executed.

    Parameters
    ----------
    tracking_uri : str
        The store holding the registry.
    model_uri : str
        ``models:/<name>/<version>`` or ``models:/<name>@<alias>``.
    dst_path : str or Path
        An empty or new folder; the model's files end up directly inside it.

    Returns
    -------
    VerifiedModel
        Name, resolved version, local folder and number of files checked.

    Raises
    ------
    ModelIntegrityError
        The version is unknown, carries no manifest, or a file differs, was added or is missing.
    ICPKitError
        ``dst_path`` is not empty.
    """
    mv = resolve_version(tracking_uri, model_uri)
    manifest = recorded_manifest(tracking_uri, mv)
    label = f"models:/{mv.name}/{mv.version}"
    dst = Path(dst_path)
    if dst.exists() and any(dst.iterdir()):
        raise ICPKitError(f"{dst} is not empty: pass a new or empty folder for the verified copy")
    dst.mkdir(parents=True, exist_ok=True)
    source = client_for(tracking_uri).get_model_version_download_uri(mv.name, mv.version)
    with tempfile.TemporaryDirectory(prefix="icpkit-download-", dir=dst.parent) as tmp:
        local = Path(
            mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=tmp, tracking_uri=tracking_uri)
        )
        n = check_files(local, manifest, label)
        for item in local.iterdir():
            shutil.move(str(item), dst / item.name)
    return VerifiedModel(mv.name, str(mv.version), dst, n)


def load_verified(tracking_uri: str, model_uri: str, dst_path: str | Path | None = None) -> Any:
    """Verify a registered model's files, then load the verified local copy with MLflow.

    Parameters
    ----------
    tracking_uri : str
        The store holding the registry.
    model_uri : str
        ``models:/icp-win@champion`` or ``models:/icp-win/3``.
    dst_path : str, Path or None
        Keep the verified copy there; default: a temporary folder, removed after loading unless
        the model's own ``icpkit`` code was imported from it (a process without icpkit).

    Returns
    -------
    mlflow.pyfunc.PyFuncModel
        The loaded model. Needs no pickles.

    Raises
    ------
    ModelIntegrityError
        Before any of the model's code runs, when a file differs, was added or is missing.
    """
    keep = dst_path is not None
    folder = Path(dst_path) if keep else Path(tempfile.mkdtemp(prefix="icpkit-model-"))
    try:
        verified = download_verified(tracking_uri, model_uri, folder)
        before = list(sys.path)
        model = mlflow.pyfunc.load_model(str(verified.path))
    except BaseException:
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    if not _uses_own_code(folder):
        # MLflow prepends the model's code/ folder to sys.path; the installed icpkit serves here.
        sys.path[:] = [p for p in sys.path if p in before or not p.startswith(str(folder))]
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)
    log.debug(
        "loaded %s (version %s) after verifying %d files", model_uri, verified.version, verified.n_files
    )
    return model


def _uses_own_code(folder: Path) -> bool:
    """Whether the ``icpkit`` package this process runs was imported from the model's folder."""
    module = sys.modules.get("icpkit")
    origin = getattr(module, "__file__", None) or ""
    return Path(origin).resolve().is_relative_to(folder.resolve())


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return mask_secrets(lines[0] if lines else type(exc).__name__)[:300]
