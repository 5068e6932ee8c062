"""Outcome plots drawn in a helper process: the same files, uploaded to the right run, and safe."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import shap

from icpkit.models.figures import FigureRenderer, OutcomePlots

PNGS = {"roc.png", "calibration.png", "gains.png", "shap_beeswarm.png", "shap_waterfall_example.png"}


class Uploads:
    """A stand-in tracker: what ``log_artifact`` received, with the file's bytes at that time."""

    def __init__(self) -> None:
        self.files: dict[tuple[str, str, str], bytes] = {}

    def log_artifact(self, local_file, path=None, run_id=None) -> None:  # noqa: ANN001
        self.files[(run_id, path, Path(local_file).name)] = Path(local_file).read_bytes()


def _plots(outcome: str, seed: int, shap_rows: int = 200) -> OutcomePlots:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 800)
    p = np.clip(0.3 * y + 0.7 * rng.random(800), 0, 1)
    names = ["industry", "employees", "hiring_growth_pct"]
    explanation = shap.Explanation(
        values=rng.normal(size=(shap_rows, 3)), base_values=np.zeros(shap_rows), data=rng.random((shap_rows, 3)),
        display_data=np.array([["SaaS", 120, 0.4]] * shap_rows, dtype=object), feature_names=names,
    )  # fmt: skip
    return OutcomePlots(outcome, f"{outcome} — lightgbm, test period from 2025-07-01", y, p, explanation)


def _render(processes: bool) -> Uploads:
    uploads = Uploads()
    with FigureRenderer(processes=processes) as figures:
        assert figures.helper_peak_rss_mb is None  # nothing has run yet
        figures.submit(_plots("win", seed=0))
        figures.submit(_plots("win", seed=99))  # a second submission of an outcome is ignored
        renewal = _plots("renewal", seed=1)
        figures.submit(OutcomePlots(renewal.outcome, renewal.title, renewal.y_test, renewal.p_test, None))
        figures.log("win", uploads, "run-win")
        figures.log("renewal", uploads, "run-renewal")
        # The helper reports its own peak memory when done (an interpreter with matplotlib: > 50 MB).
        peak = figures.helper_peak_rss_mb
        assert (peak is None) if not processes else (peak > 50)
    return uploads


def test_the_helper_process_writes_the_same_pngs_as_this_process_into_each_outcomes_run():
    helper, here = _render(True), _render(False)
    # Without a SHAP sample (renewal) only the test-period plots are drawn.
    expected = {("run-win", "plots", png) for png in PNGS} | {
        ("run-renewal", "plots", png) for png in ("roc.png", "calibration.png", "gains.png")
    }
    assert set(helper.files) == set(here.files) == expected
    assert helper.files == here.files  # byte for byte: the same plots from the same inputs
    # Each outcome's own data: the two outcomes' ROC curves differ.
    assert helper.files[("run-win", "plots", "roc.png")] != helper.files[("run-renewal", "plots", "roc.png")]


def test_a_dead_helper_leaves_the_figures_to_this_process(caplog):
    uploads = Uploads()
    with FigureRenderer() as figures, caplog.at_level(logging.WARNING, "icpkit.models.figures"):
        figures.submit(_plots("win", seed=0))
        figures._proc.kill()  # e.g. killed for memory before it wrote anything
        figures._proc.wait()
        figures.submit(_plots("renewal", seed=1))  # the pipe is closed now: no crash either
        figures.log("win", uploads, "a")
        figures.log("renewal", uploads, "b")
    assert {(run, name) for run, _, name in uploads.files} == {(r, png) for r in "ab" for png in PNGS}
    assert all(content.startswith(b"\x89PNG") for content in uploads.files.values())
    assert "figure helper process failed" in caplog.text


def test_a_script_without_a_main_guard_runs_once(tmp_path):
    # multiprocessing's spawn re-imports the caller's __main__: a script that trains at top
    # level would train again in the helper. The helper must never run the caller's code.
    script = tmp_path / "train_here.py"
    runs = tmp_path / "runs.txt"
    root = Path(__file__).resolve().parents[2]
    script.write_text(
        textwrap.dedent(
            f"""
            import sys
            sys.path[:0] = {[str(root / "src"), str(root)]!r}
            from pathlib import Path
            from tests.unit.test_figures import Uploads, _plots
            from icpkit.models.figures import FigureRenderer

            with open({str(runs)!r}, "a") as fh:
                fh.write("ran\\n")
            uploads = Uploads()
            with FigureRenderer() as figures:
                figures.submit(_plots("win", seed=0))
                figures.log("win", uploads, "r")
            print(len(uploads.files))
            """
        )
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, check=True)
    assert done.stdout.strip() == str(len(PNGS))
    assert runs.read_text() == "ran\n"
    assert "failed" not in done.stderr
