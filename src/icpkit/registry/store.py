"""Where MLflow lives: resolving the tracking URI, one explicit client, and a fast reachability check.

Every MLflow call in icpkit goes through ``MlflowClient(tracking_uri=uri, registry_uri=uri)``
built here, so two stores (or two tests) never share MLflow's process-wide globals. The default
store is a SQLite database under ``<project>/mlruns/`` with artifacts next to it (MLflow 3
refuses a bare ``./mlruns`` file store, and the file store loses data under concurrency).
"""

from __future__ import annotations

import logging
import sqlite3
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import unquote

import mlflow

from icpkit.registry.errors import TrackingUnavailableError
from icpkit.secrets import mask_secrets

log = logging.getLogger(__name__)

MLRUNS_DIR = "mlruns"
DB_FILE = "mlflow.db"


def default_tracking_uri(project_root: Path) -> str:
    """The default store of a project.

    Parameters
    ----------
    project_root : Path
        The project folder; ``mlruns/`` is created inside it.

    Returns
    -------
    str
        ``sqlite:///<absolute project_root>/mlruns/mlflow.db``.
    """
    mlruns = Path(project_root).expanduser().resolve() / MLRUNS_DIR
    mlruns.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(mlruns / DB_FILE).as_posix()}"


def resolve_tracking_uri(configured: str | None, environ: Mapping[str, str], project_root: Path) -> str:
    """The configured URI, else ``MLFLOW_TRACKING_URI`` from ``environ``, else the default store.

    Parameters
    ----------
    configured : str or None
        ``tracking.tracking_uri`` from the config.
    environ : Mapping[str, str]
        The environment, passed in by the command line (the library never reads it).
    project_root : Path
        Where the default store lives.

    Returns
    -------
    str
        The tracking URI to use.
    """
    if configured:
        return configured
    return environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri(project_root)


def sqlite_db_path(tracking_uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI, ``None`` for other stores."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    return Path(unquote(tracking_uri[len("sqlite:///") :]))


def client_for(tracking_uri: str) -> mlflow.MlflowClient:
    """An MLflow client bound to ``tracking_uri`` for both tracking and the model registry."""
    return mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def check_tracking(tracking_uri: str, timeout_seconds: float = 5.0) -> None:
    """Fail fast, with one message, when the tracking store cannot be used.

    MLflow's own client retries an unreachable server for minutes and logs a traceback per
    attempt; this check answers within ``timeout_seconds``.

    Parameters
    ----------
    tracking_uri : str
        The store to check.
    timeout_seconds : float
        Network timeout for HTTP stores.

    Raises
    ------
    TrackingUnavailableError
        The store is unreachable, not writable, or rejects a first request. The message shows
        the URI with credentials masked.
    """
    db = sqlite_db_path(tracking_uri)
    try:
        if db is not None:
            _check_sqlite(db)
        elif tracking_uri.startswith(("http://", "https://")):
            _check_http(tracking_uri, timeout_seconds)
            return  # the server answers; MLflow's first real request will tell the rest
        client_for(tracking_uri).search_experiments(max_results=1)
    except TrackingUnavailableError:
        raise
    except Exception as exc:  # noqa: BLE001 - drivers and stores raise many types
        raise _unavailable(tracking_uri, _first_line(exc)) from None


def _check_sqlite(db: Path) -> None:
    try:
        db.parent.mkdir(parents=True, exist_ok=True)
        # BEGIN IMMEDIATE takes the write lock: a read-only file or folder fails here, not later.
        conn = sqlite3.connect(db, timeout=5)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.rollback()
        finally:
            conn.close()
    except (OSError, sqlite3.Error) as exc:
        raise _unavailable(f"sqlite:///{db.as_posix()}", f"cannot write {db}: {exc}") from None


def _check_http(uri: str, timeout_seconds: float) -> None:
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout_seconds):  # noqa: S310
            pass
    except urllib.error.HTTPError:
        return  # any HTTP answer means a server is there (auth and paths are MLflow's business)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise _unavailable(uri, f"no answer within {timeout_seconds:g}s ({reason})") from None


def _unavailable(uri: str, reason: str) -> TrackingUnavailableError:
    return TrackingUnavailableError(
        mask_secrets(
            f"MLflow tracking store {uri} is unavailable: {reason}. Check tracking.tracking_uri "
            "(or MLFLOW_TRACKING_URI), that the server is running and that the path is writable."
        )
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]
