"""Shared command-line plumbing: logging to the terminal and errors as messages, not tracebacks."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.logging import RichHandler

from icpkit.errors import ConfigError, ICPKitError

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = PROJECT_ROOT / "pipelines" / "configs" / "default.yaml"
console = Console(stderr=True)
if not console.is_terminal:
    # Piped or logged output defaults to 80 columns, too narrow for the summary tables.
    console.width = 120


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        datefmt="[%X]",
        handlers=[RichHandler(console=console, show_path=False, rich_tracebacks=False)],
        force=True,
    )
    # MLflow's download progress bars interleave with ours; our status line says what is happening.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # Third-party chatter is not progress the user needs to read.
    for noisy in ("mlflow", "alembic", "urllib3", "git", "numba", "matplotlib", "PIL", "optuna"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def parse_overrides(pairs: list[str]) -> dict[str, object]:
    """``--set training.tuning.n_trials=5`` -> {"training.tuning.n_trials": 5} (YAML-typed value)."""
    import yaml

    out: dict[str, object] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"--set expects KEY=VALUE, got {pair!r}")
        key, value = pair.split("=", 1)
        out[key.strip()] = yaml.safe_load(value)
    return out


def add_common_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", type=Path, default=DEFAULT_CONFIG, help="YAML config (default: %(default)s)"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set training.tuning.n_trials=5 (repeatable)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def run_main(main: Callable[[], int | None]) -> None:
    """Run an entry point: a user-fixable error prints its message and exits 2, no traceback."""
    try:
        code = main()
    except ICPKitError as err:
        console.print(f"[bold red]error:[/] {err}", highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        sys.exit(130)
    sys.exit(code or 0)


def environ() -> dict[str, str]:
    """The environment, read once here at the edge and passed down explicitly."""
    return dict(os.environ)
