"""The entry points answer ``--help`` and config errors fast, document exit codes, show progress.

``--help`` and config errors come without importing the heavy libraries.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("mlflow", "lightgbm", "optuna", "sklearn", "shap", "pyspark")


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120, env=dict(os.environ)
    )


def _heavy_after(call: str, module: str) -> str:
    """Python that runs ``call`` on ``pipelines.<module>`` and prints which heavy modules it imported."""
    return (
        "import sys\n"
        f"import pipelines.{module} as m\n"
        "from icpkit.errors import ICPKitError\n"
        f"try:\n    {call}\nexcept (SystemExit, ICPKitError) as e:\n    print('STOPPED', type(e).__name__, e)\n"
        f"print('HEAVY', sorted({{n.split('.')[0] for n in sys.modules}} & set({HEAVY!r})))\n"
    )


@pytest.mark.parametrize("module", ["train", "score", "generate"])
def test_help_imports_no_heavy_library_and_lists_the_exit_codes(module):
    proc = _run(_heavy_after("m.parse_args(['--help'])", module))
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY []" in proc.stdout, proc.stdout
    assert "STOPPED SystemExit 0" in proc.stdout
    codes = proc.stdout.split("exit codes:", 1)[1]
    for code in ("0", "1", "2"):
        assert f"\n  {code} " in codes, codes
    assert ("\n  3 " in codes) == (module == "train"), codes  # only training can have nothing trained


@pytest.mark.parametrize("module", ["train", "score"])
def test_a_config_error_answers_before_the_heavy_imports(module, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("data:\n  source: crm\ntraining:\n  n_trails: 5\n")
    proc = _run(_heavy_after(f"m.main(['--config', {str(bad)!r}])", module))
    assert proc.returncode == 0, proc.stderr
    assert "STOPPED ConfigError" in proc.stdout and "n_trails" in proc.stdout, proc.stdout
    assert "HEAVY []" in proc.stdout, proc.stdout


def test_a_config_error_exits_2_with_a_message_not_a_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("data:\n  source: crm\nbogus_key: 1\n")
    proc = subprocess.run(
        [sys.executable, "-m", "pipelines.train", "--config", str(bad)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, env=dict(os.environ),
    )  # fmt: skip
    assert proc.returncode == 2
    assert "bogus_key" in proc.stderr and "Traceback" not in proc.stderr


def test_generate_refuses_no_accounts():
    proc = _run(_heavy_after("m.parse_args(['--accounts', '0', '--out', 'x'])", "generate"))
    assert "STOPPED SystemExit 2" in proc.stdout and "--accounts must be at least 1" in proc.stderr


def test_training_progress_has_a_trial_bar_per_outcome_and_an_icp_bar():
    from rich.console import Console

    import pipelines.train as train
    from icpkit.icp.derive import ICP_STEPS

    progress = train.TrainingProgress(3, Console(file=io.StringIO()))
    with progress:
        progress.step("training win")
        for done in (1, 2, 3):
            progress.trial("win", done, 3)
        progress.step("training expansion")  # skipped: no trial, and no empty bar left behind
        progress.step("training renewal")
        progress.trial("renewal", 1, 4)
        for step in ICP_STEPS:
            progress.step(f"ICP: {step}")
        progress.step("writing the ICP")
    tasks = {t.description: t for t in progress._progress.tasks}
    assert "tuning expansion (trials)" not in tasks
    assert (tasks["tuning win (trials)"].completed, tasks["tuning win (trials)"].total) == (3, 3)
    assert (tasks["tuning renewal (trials)"].completed, tasks["tuning renewal (trials)"].total) == (1, 4)
    assert tasks["ICP stage"].completed == tasks["ICP stage"].total == len(ICP_STEPS)
