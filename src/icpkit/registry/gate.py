"""Registering a whole training at once behind the champion gate, and recovering from a killed publish.

:func:`register_candidates` takes every model of one complete training (the outcomes,
``icp-segments``, ``icp-scorer``) and publishes them together:

1. every current ``@champion`` is loaded *verified* and scored on its candidate's holdout;
2. every alias is decided (champion when at least as good on the same rows, else challenger);
3. the previous aliases of every name are recorded on the run (tag ``icpkit.publish``);
4. every version is created (tagged with scores, gate reason, dataset key, fingerprint, config
   hash and the file manifest);
5. only then the aliases move; the record is marked ``done``.

An exception rolls the aliases back at once. A killed process cannot, so
:func:`recover_interrupted` — called when the next training starts — restores the aliases of any
publish whose process is gone and marks the runs of dead processes ``FAILED``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import re
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from mlflow.entities import RunStatus
from mlflow.exceptions import MlflowException

from icpkit.registry.errors import DatasetMismatchError, ModelIntegrityError
from icpkit.registry.packaging import FORMAT_TAG, LoggedModelRef
from icpkit.registry.store import client_for
from icpkit.registry.tracking import HOST_TAG, MAX_TAG_VAL_LENGTH, PID_TAG, param_value
from icpkit.registry.verification import (
    MANIFEST_ARTIFACT_TAG,
    MANIFEST_SHA_TAG,
    MANIFEST_TAG,
    load_verified,
    manifest_text,
)
from icpkit.secrets import mask_any, mask_secrets

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
ALIASES = (CHAMPION, CHALLENGER)
Alias = Literal["champion", "challenger"]

TAG_GATE = "icpkit.gate"
TAG_GATE_REASON = "icpkit.gate_reason"
TAG_METRIC = "icpkit.gate_metric"
TAG_CANDIDATE_SCORE = "icpkit.candidate_score"
TAG_CHAMPION_SCORE = "icpkit.champion_score"
TAG_CHAMPION_VERSION = "icpkit.champion_version_at_registration"
TAG_DATASET_KEY = "icpkit.dataset_key"
TAG_FINGERPRINT = "icpkit.data_fingerprint"
TAG_CONFIG_HASH = "icpkit.config_hash"
TAG_PUBLISH_RESULT = "icpkit.publish_result"
#: Run tags of a publish: the JSON record, and its state alone (searchable).
PUBLISH_TAG = "icpkit.publish"
PUBLISH_STATE_TAG = "icpkit.publish_state"
FAILURE_TAG = "icpkit.failure"


@dataclass(frozen=True)
class Candidate:
    """One model of a complete training, waiting to be registered.

    Attributes
    ----------
    name : str
        The registered model name (``icp-win``).
    model : LoggedModelRef
        The logged model (from :func:`icpkit.registry.packaging.log_model`).
    score : float
        The candidate's score on its holdout (higher is better; NaN never becomes champion).
    score_champion : Callable
        Takes a loaded champion (a pyfunc model) and returns its score on the *same* holdout.
        May raise (e.g. MLflow's ``Model is missing inputs``): the gate then says so in one line.
    description : str
        What the model predicts, in a sentence (shown on the registered model and the version).
    metric : str
        The name of the score (``test_roc_auc``), for the tags and the description.
    tags : Mapping[str, Any]
        Extra version tags (masked).
    """

    name: str
    model: LoggedModelRef
    score: float
    score_champion: Callable[[Any], float]
    description: str
    metric: str = "test_roc_auc"
    tags: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Registration:
    """The version a candidate became, its alias and why."""

    name: str
    version: str
    alias: Alias
    candidate_score: float
    champion_score: float | None
    reason: str
    metric: str = "test_roc_auc"
    #: The version that held ``@champion`` before this publish (``None``: none did).
    previous_champion_version: str | None = None

    @property
    def is_champion(self) -> bool:
        """Whether this version took ``@champion``."""
        return self.alias == CHAMPION

    @property
    def model_uri(self) -> str:
        """``models:/<name>/<version>``."""
        return f"models:/{self.name}/{self.version}"

    def to_dict(self) -> dict[str, Any]:
        """Plain fields, for summaries and JSON."""
        return asdict(self)


@dataclass(frozen=True)
class _Judgement:
    candidate: Candidate
    alias: Alias
    reason: str
    champion_version: str | None
    champion_score: float | None


# --- identities ---------------------------------------------------------------------------------
def dataset_key(source: str, tables: Mapping[str, str | None] | None = None) -> str:
    """A stable identity of a data source: the same CRM refreshed keeps its key.

    Parameters
    ----------
    source : str
        The data source (folder or SQL URL); credentials are masked first, so rotating a
        password keeps the key.
    tables : Mapping[str, str or None] or None
        Table name -> where it comes from (file name, SQL table or query).

    Returns
    -------
    str
        16 hex characters.
    """
    identity = {"source": mask_secrets(source), "tables": mask_any(dict(sorted((tables or {}).items())))}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def config_hash(config: Mapping[str, Any]) -> str:
    """16 hex characters identifying a (masked) configuration."""
    text = json.dumps(mask_any(dict(config)), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# --- champions ----------------------------------------------------------------------------------
def champion_version(tracking_uri: str, name: str, alias: str = CHAMPION) -> str | None:
    """The version holding ``@alias`` (``None`` if the model or the alias does not exist)."""
    mv = _alias_version(client_for(tracking_uri), name, alias)
    return None if mv is None else str(mv.version)


def load_champion(tracking_uri: str, name: str, alias: str = CHAMPION) -> Any | None:
    """The verified ``@alias`` version as a pyfunc model, or ``None`` when there is none."""
    version = champion_version(tracking_uri, name, alias)
    return None if version is None else load_verified(tracking_uri, f"models:/{name}/{version}")


def _alias_version(client: Any, name: str, alias: str) -> Any | None:
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def check_dataset(tracking_uri: str, names: Iterable[str], key: str, *, allow_change: bool = False) -> None:
    """Refuse to train when a current champion came from another dataset.

    Call it before training, with the registered names the run will publish.

    Parameters
    ----------
    tracking_uri : str
        The store.
    names : Iterable[str]
        Registered model names (``icp-win``, …).
    key : str
        This run's :func:`dataset_key`.
    allow_change : bool
        ``tracking.allow_dataset_change``: warn instead of raising.

    Raises
    ------
    DatasetMismatchError
        Naming the models, both keys, ``tracking.model_prefix`` and the override.
    """
    client = client_for(tracking_uri)
    other = {}
    for name in names:
        mv = _alias_version(client, name, CHAMPION)
        theirs = (mv.tags or {}).get(TAG_DATASET_KEY) if mv is not None else None
        if theirs and theirs != key:
            other[name] = f"v{mv.version} from dataset {theirs}"
    if not other:
        return
    listed = ", ".join(f"{n} @champion ({v})" for n, v in other.items())
    message = (
        f"{listed} was trained on another dataset than this run's (dataset key {key}). Give this "
        "dataset its own registry names with tracking.model_prefix (e.g. model_prefix: telco), or set "
        "tracking.allow_dataset_change: true to let this dataset compete with and replace them."
    )
    if not allow_change:
        raise DatasetMismatchError(message)
    log.warning("tracking.allow_dataset_change is true: %s", message.split(". Give")[0])


# --- the gate -----------------------------------------------------------------------------------
def gate_decision(
    candidate_score: float,
    champion_score: float | None,
    has_champion: bool,
    *,
    champion_unscored: Alias = CHALLENGER,
) -> tuple[Alias, str]:
    """The alias a candidate earns and why (higher scores are better; ties go to the newer model).

    Parameters
    ----------
    candidate_score : float
        The candidate on its holdout.
    champion_score : float or None
        The current champion on the same holdout (``None``: not scored).
    has_champion : bool
        Whether a champion exists.
    champion_unscored : {"champion", "challenger"}
        The alias when a champion exists but could not be scored.

    Returns
    -------
    tuple
        ``(alias, reason)``.
    """
    if not _finite(candidate_score):
        return CHALLENGER, "no evidence the candidate beats chance on its holdout (no score)"
    if not has_champion:
        return CHAMPION, "no champion yet"
    if not _finite(champion_score):
        return champion_unscored, "the current champion was not scored on this holdout"
    ok = candidate_score >= champion_score
    relation = ">=" if ok else "<"
    reason = f"candidate {candidate_score:.6g} {relation} champion {champion_score:.6g} on the same holdout"
    return (CHAMPION if ok else CHALLENGER), reason


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(float(x))


def _cannot_score_line(name: str, version: str, exc: BaseException) -> str:
    """One line saying why a champion could not score the new holdout."""
    text = str(exc)
    missing = re.search(r"missing (?:inputs|from the input):?\s*\[([^\]]*)\]", text)
    # The served models' own check (icpkit.scoring.inputs): "... missing required input column(s) a, b (the ...".
    served = re.search(r"missing required input columns? (.+?) \(the model was trained", text)
    if missing:
        cols = ", ".join(c.strip(" '\"") for c in missing.group(1).split(",") if c.strip())
        why = f"missing input {cols}"
    elif served:
        why = f"missing input {served.group(1)}"
    else:
        why = (text.strip().splitlines() or [type(exc).__name__])[0][:200]
    return mask_secrets(f"champion v{version} of {name} cannot score this holdout: {why}")


def _judge(tracking_uri: str, candidate: Candidate, promote_on_schema_change: bool) -> _Judgement:
    client = client_for(tracking_uri)
    current = _alias_version(client, candidate.name, CHAMPION)
    if current is None:
        alias, reason = gate_decision(candidate.score, None, False)
        return _Judgement(candidate, alias, reason, None, None)
    version = str(current.version)
    try:
        model = load_verified(tracking_uri, f"models:/{candidate.name}/{version}")
        champion_score = float(candidate.score_champion(model))
    except ModelIntegrityError as exc:
        if MANIFEST_TAG in (current.tags or {}) or MANIFEST_SHA_TAG in (current.tags or {}):
            raise  # a champion whose files changed: stop, a person must look
        line = _cannot_score_line(candidate.name, version, exc)  # registered before manifests existed
        return _unscored(candidate, version, line, promote_on_schema_change)
    except Exception as exc:  # noqa: BLE001 - schema errors come in many types
        return _unscored(
            candidate, version, _cannot_score_line(candidate.name, version, exc), promote_on_schema_change
        )
    alias, reason = gate_decision(candidate.score, champion_score, True)
    return _Judgement(candidate, alias, reason, version, champion_score)


def _unscored(candidate: Candidate, version: str, line: str, promote: bool) -> _Judgement:
    log.warning("%s", line)
    alias, _ = gate_decision(
        candidate.score, None, True, champion_unscored=CHAMPION if promote else CHALLENGER
    )
    if alias == CHAMPION:
        reason = f"{line}; promoted to champion because tracking.promote_on_schema_change is true"
    elif promote:
        reason = f"{line}; challenger: the candidate score is missing"
    else:
        reason = (
            f"{line}; registered as challenger (tracking.promote_on_schema_change: true would promote it)"
        )
    return _Judgement(candidate, alias, reason, version, None)


# --- publishing ---------------------------------------------------------------------------------
def register_candidates(
    tracking_uri: str,
    candidates: Sequence[Candidate],
    *,
    run_id: str,
    dataset_key: str,
    config_hash: str,
    fingerprint: Mapping[str, str] | str | None = None,
    dataset_label: str = "",
    promote_on_schema_change: bool = False,
) -> list[Registration]:
    """Register every model of one complete training, then move all aliases together.

    Parameters
    ----------
    tracking_uri : str
        The store.
    candidates : Sequence[Candidate]
        Every model of the training, one per registered name.
    run_id : str
        The training (parent) run; the publish record is written on it.
    dataset_key : str
        :func:`dataset_key` of the data source (tagged on every version).
    config_hash : str
        :func:`config_hash` of the configuration.
    fingerprint : Mapping[str, str], str or None
        The data content fingerprint (per table), tagged as JSON.
    dataset_label : str
        A readable name of the dataset for descriptions (masked), e.g. the source folder.
    promote_on_schema_change : bool
        ``tracking.promote_on_schema_change``: a candidate whose champion cannot score its
        holdout becomes champion instead of challenger.

    Returns
    -------
    list[Registration]
        In the order of ``candidates``.

    Raises
    ------
    ModelIntegrityError
        A current champion's files no longer match its manifest (nothing is registered).
    """
    names = [c.name for c in candidates]
    if len(set(names)) != len(names):
        raise ValueError(f"one candidate per registered name, got {names}")
    judgements = [_judge(tracking_uri, c, promote_on_schema_change) for c in candidates]
    client = client_for(tracking_uri)
    plan = {
        c.name: {"previous": _aliases(client, c.name), "alias": None, "version": None} for c in candidates
    }
    _record(client, run_id, "registering", plan)
    try:
        context = {
            TAG_DATASET_KEY: dataset_key,
            TAG_CONFIG_HASH: config_hash,
            TAG_FINGERPRINT: fingerprint if isinstance(fingerprint, str) else json.dumps(fingerprint or {}),
        }
        label = mask_secrets(dataset_label or f"dataset {dataset_key}")
        registrations = [_create_version(client, j, run_id, context, label) for j in judgements]
        for reg in registrations:
            plan[reg.name] |= {"alias": reg.alias, "version": reg.version}
        _record(client, run_id, "moving", plan)
        for reg in registrations:
            client.set_registered_model_alias(reg.name, reg.alias, reg.version)
        _record(client, run_id, "done", plan)
    except BaseException:
        # Best effort: if the store fails here too, the record stays "moving" and
        # recover_interrupted() restores the aliases when the next training starts.
        with contextlib.suppress(Exception):
            _roll_back(client, plan)
            _record(client, run_id, "rolled_back", plan)
        raise
    return registrations


def _aliases(client: Any, name: str) -> dict[str, str | None]:
    found = {alias: _alias_version(client, name, alias) for alias in ALIASES}
    return {alias: (None if mv is None else str(mv.version)) for alias, mv in found.items()}


def _record(client: Any, run_id: str, state: str, plan: Mapping[str, Any]) -> None:
    record = {"state": state, "pid": os.getpid(), "host": socket.gethostname(), "names": plan}
    client.set_tag(run_id, PUBLISH_TAG, json.dumps(record))
    client.set_tag(run_id, PUBLISH_STATE_TAG, state)


def _version_tags(j: _Judgement, context: Mapping[str, str]) -> dict[str, str]:
    c = j.candidate
    tags = {
        TAG_GATE: j.alias,
        TAG_GATE_REASON: j.reason,
        TAG_METRIC: c.metric,
        TAG_CANDIDATE_SCORE: repr(float(c.score)),
        TAG_CHAMPION_SCORE: "" if j.champion_score is None else repr(j.champion_score),
        TAG_CHAMPION_VERSION: j.champion_version or "",
        FORMAT_TAG: c.model.format,
        **context,
        **c.tags,
    }
    masked = {k: param_value(v, MAX_TAG_VAL_LENGTH) for k, v in tags.items()}
    # The manifest is hashes and relative paths: stored exactly, never masked or cut.
    if c.model.manifest_artifact is None:
        masked[MANIFEST_TAG] = manifest_text(c.model.manifest)
    else:
        masked[MANIFEST_SHA_TAG] = hashlib.sha256(manifest_text(c.model.manifest).encode()).hexdigest()
        masked[MANIFEST_ARTIFACT_TAG] = c.model.manifest_artifact
    return masked


def _create_version(
    client: Any, j: _Judgement, run_id: str, context: Mapping[str, str], label: str
) -> Registration:
    c = j.candidate
    description = mask_secrets(c.description)
    try:
        client.create_registered_model(c.name, description=description)
    except MlflowException:  # it exists: keep its description current
        client.update_registered_model(c.name, description=description)
    version_description = mask_secrets(
        f"{c.description}\nTrained on {label} (run {run_id}).\nGate on {c.metric}: {j.alias} — {j.reason}."
    )
    mv = client.create_model_version(
        name=c.name,
        source=c.model.artifact_location,
        run_id=c.model.run_id,
        tags=_version_tags(j, context),
        description=version_description,
        model_id=c.model.model_id,
    )
    return Registration(
        name=c.name,
        version=str(mv.version),
        alias=j.alias,
        candidate_score=float(c.score),
        champion_score=j.champion_score,
        reason=j.reason,
        metric=c.metric,
        previous_champion_version=j.champion_version,
    )


def _roll_back(client: Any, plan: Mapping[str, Any]) -> list[str]:
    """Put every alias of the plan back where it was; tag the plan's new versions."""
    done = []
    for name, entry in plan.items():
        for alias, version in entry["previous"].items():
            current = _alias_version(client, name, alias)
            now = None if current is None else str(current.version)
            if now == version:
                continue
            if version is None:
                client.delete_registered_model_alias(name, alias)
                done.append(f"{name} @{alias} removed")
            else:
                client.set_registered_model_alias(name, alias, version)
                done.append(f"{name} @{alias} back to v{version}")
        if entry.get("version"):
            client.set_model_version_tag(name, entry["version"], TAG_PUBLISH_RESULT, "rolled back")
    return done


# --- recovery -----------------------------------------------------------------------------------
def recover_interrupted(tracking_uri: str, experiment: str) -> list[str]:
    """Undo publishes of killed processes and fail their runs; call it when a training starts.

    Parameters
    ----------
    tracking_uri : str
        The store.
    experiment : str
        The experiment (``tracking.experiment``).

    Returns
    -------
    list[str]
        One line per repair, for the log (empty when nothing was interrupted).

    Notes
    -----
    A process counts as dead when it ran on this host and its pid no longer exists; runs of
    other hosts are left alone (their liveness cannot be checked from here).
    """
    client = client_for(tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    notes = []
    for state in ("registering", "moving"):
        for run in client.search_runs([exp.experiment_id], f"tags.`{PUBLISH_STATE_TAG}` = '{state}'"):
            record = json.loads(run.data.tags[PUBLISH_TAG])
            if _alive(record.get("pid"), record.get("host")):
                continue
            moved = _roll_back(client, record["names"])
            _record(client, run.info.run_id, "rolled_back", record["names"])
            notes.append(
                f"run {run.info.run_id}: its publish was interrupted; "
                + ("; ".join(moved) if moved else "no alias had moved")
            )
    for run in client.search_runs([exp.experiment_id], "attributes.status = 'RUNNING'"):
        pid, host = run.data.tags.get(PID_TAG), run.data.tags.get(HOST_TAG)
        if pid is None or _alive(pid, host):
            continue
        client.set_tag(run.info.run_id, FAILURE_TAG, f"process {pid} on {host} ended before the run finished")
        client.set_terminated(run.info.run_id, status=RunStatus.to_string(RunStatus.FAILED))
        notes.append(f"run {run.info.run_id} ({run.info.run_name}): process {pid} is gone; marked FAILED")
    for note in notes:
        log.warning("%s", note)
    return notes


def _alive(pid: Any, host: str | None) -> bool:
    if host != socket.gethostname():
        return True  # cannot tell from here: leave it alone
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, TypeError, ValueError):
        return True
    return True
