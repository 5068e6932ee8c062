"""Train and profile: the one pure entry point from a loaded CRM to models and a fitted ICP.

The pipeline, the benchmarks, the notebooks and the tests all call :func:`train_and_profile`.
It logs nothing to MLflow and registers nothing: :func:`icpkit.registry.publish.publish` does that
at the edge, all at once, after a complete run — so a crash at any point changes nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from icpkit.config import Config
from icpkit.data.crm import CRMData
from icpkit.features import attribute_catalogue
from icpkit.icp.result import ICPResult, build_icp
from icpkit.secrets import mask_secrets
from icpkit.training import TrainingResult, train_outcomes

log = logging.getLogger(__name__)


@dataclass
class TrainedRun:
    """A complete training: the outcome models, the fitted ICP and what made them."""

    crm: CRMData
    config: Config
    training: TrainingResult
    icp: ICPResult | None
    dataset: str
    version: str
    started_at: dt.datetime
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def run_name(self) -> str:
        """What MLflow shows in its runs list: the dataset and the day."""
        return f"{self.dataset} · {self.started_at:%Y-%m-%d %H:%M}"


def dataset_name(cfg: Config) -> str:
    """A short human name for the data: the source folder or database name (credentials masked)."""
    if cfg.data.synthetic is not None:
        return "synthetic CRM"
    source = mask_secrets(cfg.data.source)
    return source.rstrip("/").rsplit("/", 1)[-1] or source


def config_hash(cfg: Config) -> str:
    """A short SHA-256 of the whole config (as JSON with sorted keys)."""
    return hashlib.sha256(json.dumps(cfg.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()[:16]


def run_version(crm: CRMData, cfg: Config) -> str:
    """A version that depends only on the data and the config: same inputs, same version."""
    payload = json.dumps({"data": crm.fingerprint(), "config": config_hash(cfg)}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def train_and_profile(
    crm: CRMData,
    cfg: Config,
    previous_profile: dict[str, Any] | None = None,
    on_progress: Callable[[str], None] | None = None,
    on_trial: Callable[[str, int, int], None] | None = None,
    keep_features: bool = True,
    on_trained: Callable[[TrainingResult], None] | None = None,
) -> TrainedRun:
    """Train every configured outcome, then derive and profile the ICP (when anything trained).

    Parameters
    ----------
    crm : CRMData
        The loaded, validated CRM.
    cfg : Config
        The run's configuration.
    previous_profile : dict, optional
        The previous version's ``icp_profile.json``, for "what changed".
    on_progress : callable, optional
        Called with a short message as each step starts (for a progress display): ``"training
        <outcome>"``, then ``"ICP: <step>"`` for each of :data:`icpkit.icp.derive.ICP_STEPS`.
    on_trial : callable, optional
        Called as ``on_trial(outcome, done, total)`` after each tuning trial (for a progress bar).
    keep_features : bool
        False drops each outcome's feature columns (``report.dataset.X``) once the ICP no longer
        needs them; the models, metrics, labels and specs stay. The training pipeline passes
        False: at a million accounts the features are ~1 GB of the run's memory.
    on_trained : callable, optional
        Called with the training result before the ICP stage starts (the training pipeline
        starts rendering the outcome plots there, to run beside the ICP stage).
    """
    say = on_progress or (lambda msg: log.info("%s", msg))
    started, timings = dt.datetime.now(dt.UTC), {}
    t = time.perf_counter()
    catalogue = attribute_catalogue(crm, cfg)
    training = train_outcomes(
        crm, cfg, catalogue, on_trial=on_trial,
        on_outcome=lambda name, state: say(f"training {name}") if state == "start" else None,
    )  # fmt: skip
    timings["train outcomes"] = time.perf_counter() - t
    if on_trained is not None:
        on_trained(training)
    dataset, version = dataset_name(cfg), run_version(crm, cfg)
    icp = None
    if training.trained:
        t = time.perf_counter()
        icp = build_icp(
            crm, training, cfg, version, dataset, previous_profile,
            on_step=lambda s: say(f"ICP: {s}"), release_features=not keep_features,
        )  # fmt: skip
        timings["ICP"] = time.perf_counter() - t
    return TrainedRun(crm, cfg, training, icp, dataset, version, started, timings)


def write_outputs(run: TrainedRun, root: Path, *, latest: bool = True) -> Path | None:
    """Write the ICP folder to ``root/<experiment>/<date>/icp``; ``latest`` moves ``<experiment>/latest``.

    The pipeline passes ``latest=False`` and calls :func:`point_latest` only after the run is
    published, so a crash while publishing leaves ``latest`` on the previous complete run.
    """
    if run.icp is None:
        return None
    folder = root / run.config.tracking.experiment / f"{run.started_at:%Y-%m-%d_%H%M%S}"
    run.icp.write(folder / "icp")
    if latest:
        point_latest(folder / "icp")
    return folder / "icp"


def point_latest(icp_folder: Path) -> None:
    """Point ``<experiment>/latest`` at the run folder holding ``icp_folder`` (atomically)."""
    folder = icp_folder.parent
    latest = folder.parent / "latest"
    tmp = folder.parent / f".latest-{time.time_ns()}"
    tmp.symlink_to(folder.name, target_is_directory=True)
    tmp.replace(latest)  # atomic: the pointer moves only once the new folder is complete
