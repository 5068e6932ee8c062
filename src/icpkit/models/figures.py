"""An outcome's plots, rendered in a helper process while the main process logs the run.

Rendering a figure is Python under matplotlib, which holds the GIL: a thread gains nothing. The
five plots of each outcome (ROC, calibration, gains, SHAP beeswarm and waterfall) take 0.1-0.9 s
each, ~10 s of a 20k-account run. :class:`FigureRenderer` hands each outcome's plot inputs
(arrays, a few MB) to one helper process, which writes the PNGs to a temporary folder while the
main process goes on (the training pipeline submits them as soon as the outcomes are trained, so
they render beside the ICP stage); they are uploaded to the outcome runs before any model is
registered. Should the helper fail or be unavailable, the figures are rendered in the main
process instead.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    import shap

    from icpkit.training import OutcomeReport, TrainingResult

log = logging.getLogger(__name__)


class ArtifactLog(Protocol):
    """Where the PNGs go: :class:`icpkit.registry.tracking.Tracker` (this module knows no MLflow)."""

    def log_artifact(self, local_file: Path, path: str | None = None, run_id: str | None = None) -> None:
        """Upload ``local_file`` into the run ``run_id``'s folder ``path``."""


@dataclass(frozen=True)
class OutcomePlots:
    """What one outcome's plots are drawn from: its test period and its SHAP sample."""

    outcome: str
    title: str
    y_test: np.ndarray
    p_test: np.ndarray
    explanation: shap.Explanation | None

    @classmethod
    def of(cls, report: OutcomeReport) -> OutcomePlots:
        """A trained outcome's plot inputs (its test predictions are stored: nothing is rescored)."""
        p_test, y_test = report.test_predictions()
        title = f"{report.outcome} — {report.model.kind}, test period from {report.split.test_start.date()}"
        explanation = report.explanation
        if explanation is not None and not len(explanation.values):
            explanation = None
        return cls(report.outcome, title, np.asarray(y_test), np.asarray(p_test), explanation)


def render_outcome_plots(plots: OutcomePlots, folder: str | Path) -> list[str]:
    """Write ``plots``' PNGs under ``folder/plots/``; returns their paths relative to ``folder``.

    The artifact names are the ones an outcome run has always had: ``plots/roc.png``,
    ``plots/calibration.png``, ``plots/gains.png``, ``plots/shap_beeswarm.png`` and
    ``plots/shap_waterfall_example.png`` (the last two only with a SHAP sample).
    """
    from matplotlib.figure import Figure

    from icpkit.models import evaluation as ev
    from icpkit.models.explain import plot_beeswarm, plot_waterfall

    draw: dict[str, Any] = {
        "roc": lambda: ev.plot_roc(plots.y_test, plots.p_test, plots.title),
        "calibration": lambda: ev.plot_calibration(plots.y_test, plots.p_test, plots.title),
        "gains": lambda: ev.plot_gains(plots.y_test, plots.p_test, plots.title),
    }
    if plots.explanation is not None:
        e, o = plots.explanation, plots.outcome
        draw["shap_beeswarm"] = lambda: plot_beeswarm(e, f"{o}: SHAP (test sample)")
        draw["shap_waterfall_example"] = lambda: plot_waterfall(e, 0, f"{o}: why the first test row scores as it does")
    out = Path(folder) / "plots"
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, make in draw.items():
        fig: Figure = make()
        fig.savefig(out / f"{name}.png")  # MLflow's log_figure saves with the same defaults
        written.append(f"plots/{name}.png")
    return written


def serve(stats: str | None = None) -> None:
    """The helper process's loop: one job file path per stdin line, rendered in arrival order.

    Each job is a pickled ``(OutcomePlots, folder)`` written by :class:`FigureRenderer`; when its
    PNGs are written, ``folder/done.json`` lists them (written whole, then renamed into place).
    At the end (stdin closed) the process's peak memory goes to the JSON file ``stats``.
    """
    import matplotlib

    matplotlib.use("Agg")  # files only, whatever the user's default backend
    for line in sys.stdin:
        job = Path(line.strip())
        with job.open("rb") as fh:
            plots, folder = pickle.load(fh)  # noqa: S301 - written by our own parent process
        written = render_outcome_plots(plots, folder)
        _write_json(Path(folder) / "done.json", written)
    try:
        import resource  # POSIX only: elsewhere the peak is not reported
    except ImportError:
        return
    if stats is not None:  # ru_maxrss is in KiB on Linux
        _write_json(Path(stats), {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})


def _write_json(path: Path, payload: Any) -> None:
    """Written whole, then renamed into place: a reader never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload))
    os.replace(tmp, path)


class FigureRenderer:
    """Render outcome plots in one helper process; upload each outcome's PNGs to its run.

    ``with FigureRenderer() as figures:`` — :meth:`submit` each outcome's :class:`OutcomePlots`
    (the helper starts on the first and renders in arrival order), keep working, then :meth:`log`
    uploads an outcome's PNGs to a run, waiting for the helper if it is not done.

    The helper is a fresh interpreter (``python -c "...serve()"``) fed job files: unlike a
    multiprocessing spawn it never re-imports the caller's ``__main__`` (a script without a
    ``__main__`` guard would run again), and unlike a fork it copies nothing and inherits no
    thread state. ``processes=False``, or a helper that cannot start or fails, renders in the
    calling process instead (with a warning for a failure): the same files either way.
    """

    def __init__(self, processes: bool = True) -> None:
        self._processes = processes
        self._tmp = tempfile.TemporaryDirectory(prefix="icpkit-figures-")
        self._proc: subprocess.Popen[bytes] | None = None
        self._waited = False
        self._plots: dict[str, OutcomePlots] = {}

    def __enter__(self) -> FigureRenderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the helper (if running) and remove the rendered files."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None
        self._tmp.cleanup()

    @property
    def _stats(self) -> Path:
        return Path(self._tmp.name) / "helper_stats.json"

    @property
    def helper_peak_rss_mb(self) -> float | None:
        """The helper's peak resident memory, once it has finished (``None`` before, or without one)."""
        if not self._stats.exists():
            return None
        return float(json.loads(self._stats.read_text())["peak_rss_mb"])

    def _folder(self, outcome: str) -> Path:
        return Path(self._tmp.name) / outcome

    def _start(self) -> subprocess.Popen[bytes] | None:
        # The helper sees this process's sys.path (as a multiprocessing spawn would): icpkit
        # imports the same from an -e install, a PYTHONPATH or a notebook's path edits.
        code = (
            "import json, sys; sys.path[:] = json.loads(sys.argv[1]); "
            "from icpkit.models.figures import serve; serve(sys.argv[2])"
        )
        log_file = (Path(self._tmp.name) / "helper.log").open("wb")
        try:
            return subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [sys.executable, "-c", code, json.dumps(sys.path), str(self._stats)],
                stdin=subprocess.PIPE, stdout=log_file, stderr=log_file,
            )  # fmt: skip
        except OSError as exc:
            log.warning("outcome figures render in this process: no helper process (%s)", exc)
            self._processes = False
            return None
        finally:
            log_file.close()

    def submit(self, plots: OutcomePlots) -> None:
        """Queue ``plots`` for rendering; an outcome already submitted is left as it is."""
        if plots.outcome in self._plots:
            return
        self._plots[plots.outcome] = plots
        if not self._processes:
            return
        if self._proc is None:
            self._proc = self._start()
        if self._proc is None or self._waited:  # no helper, or one already told it has all: log() draws
            return
        folder = self._folder(plots.outcome)
        folder.mkdir(parents=True)
        job = folder / "job.pickle"
        with job.open("wb") as fh:
            pickle.dump((plots, str(folder)), fh, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            assert self._proc.stdin is not None
            self._proc.stdin.write(f"{job}\n".encode())
            self._proc.stdin.flush()
        except OSError:  # the helper is gone: log() renders what it did not
            pass

    def submit_trained(self, training: TrainingResult) -> None:
        """Submit the plots of every trained outcome not submitted yet (see :meth:`submit`)."""
        for name, report in training.trained.items():
            if name not in self._plots:
                self.submit(OutcomePlots.of(report))

    def _wait(self) -> None:
        """Let the helper finish what it was given (once); warn if it failed."""
        if self._proc is None or self._waited:
            return
        self._waited = True
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.close()
        except OSError:
            pass
        if self._proc.wait() != 0:
            tail = (Path(self._tmp.name) / "helper.log").read_text(errors="replace").strip().splitlines()[-5:]
            log.warning(
                "the figure helper process failed (exit %s): the rest render here. Its last lines:\n%s",
                self._proc.returncode, "\n".join(tail),
            )  # fmt: skip

    def log(self, outcome: str, tracker: ArtifactLog, run_id: str) -> None:
        """Upload ``outcome``'s PNGs to ``run_id``, rendering them here if the helper did not."""
        plots = self._plots[outcome]
        folder = self._folder(outcome)
        self._wait()
        done = folder / "done.json"
        written = json.loads(done.read_text()) if done.exists() else render_outcome_plots(plots, folder)
        for path in written:
            tracker.log_artifact(folder / path, str(Path(path).parent), run_id=run_id)
