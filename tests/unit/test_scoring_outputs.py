"""Run outputs: stamped tables, atomic dated folders (killed mid-write), byte-identical reruns, SQL swap."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from icpkit.scoring.history import history_rows
from icpkit.scoring.outputs import (
    FolderDestination,
    RunOutput,
    SQLDestination,
    _sweep_leftovers,
    open_destination,
    stamp,
    version_label,
)

DAY = dt.date(2025, 6, 30)
VERSIONS = {"icp-scorer": "3", "icp-win": "12"}


def _accounts(n: int = 4, tier: str = "Strong") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "account_id": [f"a{i}" for i in range(n)],
            "fit_score": np.linspace(10, 90, n),
            "tier": tier,
            "reasons_up": [["industry = Banking (+17)", "employees = 50-200 (+9)"]] * n,
        }
    )


def _run(day: dt.date = DAY, tier: str = "Strong", n: int = 4) -> RunOutput:
    accounts = _accounts(n, tier)
    tables = {
        "accounts": stamp(accounts, day, VERSIONS),
        "rejected": stamp(
            pd.DataFrame(
                {
                    "table": ["accounts"],
                    "input_row": [7],
                    "id": ["a7"],
                    "rejected_reason": ["x = inf is not finite"],
                }
            ),
            day,
            VERSIONS,
        ),
    }
    return RunOutput(day, tables, history_rows(accounts, day, version_label({"icp-scorer": "3"})))


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_stamp_adds_date_and_versions_and_flattens_lists():
    out = stamp(_accounts(2), DAY, VERSIONS)
    assert list(out.columns)[-2:] == ["scoring_date", "model_versions"]
    assert out["scoring_date"].tolist() == ["2025-06-30"] * 2
    assert out["model_versions"].iloc[0] == "icp-scorer=3, icp-win=12"
    assert out["reasons_up"].iloc[0] == "industry = Banking (+17); employees = 50-200 (+9)"


def test_folder_write_parquet_and_csv_per_table(tmp_path):
    dest = FolderDestination(tmp_path / "scores")
    folder = Path(dest.write(_run()))
    assert folder == tmp_path / "scores" / "2025-06-30"
    assert sorted(p.name for p in folder.iterdir()) == [
        "accounts.csv", "accounts.parquet", "rejected.csv", "rejected.parquet",
    ]  # fmt: skip
    pd.testing.assert_frame_equal(
        pd.read_parquet(folder / "accounts.parquet"), pd.read_csv(folder / "accounts.csv"), check_dtype=False
    )
    assert (tmp_path / "scores" / "history.parquet").is_file()


def test_folder_write_twice_is_byte_identical(tmp_path):
    first = _snapshot(Path(FolderDestination(tmp_path / "one").write(_run())))
    again = FolderDestination(tmp_path / "one")
    second = _snapshot(Path(again.write(_run())))
    elsewhere = _snapshot(Path(FolderDestination(tmp_path / "two").write(_run())))
    assert first == second == elsewhere
    hist = [(tmp_path / d / "history.parquet").read_bytes() for d in ("one", "two")]
    assert hist[0] == hist[1]  # a rerun of the same date replaces its rows, it does not append


def test_folder_write_failure_leaves_previous_output(tmp_path):
    dest = FolderDestination(tmp_path)
    folder = Path(dest.write(_run(tier="Strong")))
    before = _snapshot(folder)

    def fail(name: str) -> None:
        raise RuntimeError(f"disk full after {name}")

    with pytest.raises(RuntimeError, match="disk full"):
        dest.write(_run(tier="Weak"), on_written=fail)
    assert _snapshot(folder) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


_KILLED_WRITER = textwrap.dedent(
    """
    import datetime as dt, sys, time
    from pathlib import Path
    import numpy as np, pandas as pd
    from icpkit.scoring.history import history_rows
    from icpkit.scoring.outputs import FolderDestination, RunOutput

    root, marker = Path(sys.argv[1]), Path(sys.argv[2])
    n = 300_000
    ids = [f"a{i}" for i in range(n)]
    big = pd.DataFrame({"account_id": ids, "fit_score": np.arange(n) / 7, "tier": "Weak"})
    day = dt.date(2025, 6, 30)

    def pause(name):
        # The first file of the new run is on disk; the test kills us here, mid-write.
        marker.write_text(name)
        time.sleep(600)

    run = RunOutput(day, {"accounts": big, "open_leads": big}, history_rows(big, day, "icp-scorer=4"))
    FolderDestination(root).write(run, on_written=pause)
    """
)


def test_folder_write_killed_midway_leaves_previous_output_and_no_partial_file(tmp_path):
    root = tmp_path / "scores"
    dest = FolderDestination(root)
    folder = Path(dest.write(_run()))
    before, history_before = _snapshot(folder), (root / "history.parquet").read_bytes()
    script, marker = tmp_path / "writer.py", tmp_path / "marker"
    script.write_text(_KILLED_WRITER)
    proc = subprocess.Popen([sys.executable, str(script), str(root), str(marker)])
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert proc.poll() is None, "the writer exited before reaching the pause"
            assert time.monotonic() < deadline, "the writer never reached the pause"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert _snapshot(folder) == before  # the previous run, byte for byte, and nothing else
    assert (root / "history.parquet").read_bytes() == history_before
    leftovers = [p for p in root.iterdir() if p.name.startswith(".")]
    assert leftovers and all(p.is_dir() for p in leftovers)  # the half-written temporary sibling
    # The next run sweeps the leftover away.
    dest.write(_run(tier="Weak"))
    assert sorted(p.name for p in root.iterdir()) == ["2025-06-30", "history.parquet"]


def test_folder_write_restores_a_folder_moved_aside_by_a_killed_swap(tmp_path):
    dest = FolderDestination(tmp_path)
    folder = Path(dest.write(_run()))
    before = _snapshot(folder)
    folder.rename(tmp_path / ".2025-06-30.old-12345")  # as if killed between the swap's two renames
    (tmp_path / ".2025-06-30.abc123").mkdir()  # and a half-filled temporary folder
    _sweep_leftovers(folder)  # what the next write does first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["2025-06-30", "history.parquet"]
    assert _snapshot(folder) == before


def test_folder_previous_scores_from_history(tmp_path):
    dest = FolderDestination(tmp_path)
    dest.write(_run(day=dt.date(2025, 6, 1), tier="Weak"))
    prev = dest.previous_scores(DAY)
    assert prev["scoring_date"].unique().tolist() == ["2025-06-01"] and set(prev["tier"]) == {"Weak"}


def test_open_destination_picks_sql_for_urls(tmp_path):
    assert isinstance(open_destination(f"sqlite:///{tmp_path}/crm.db"), SQLDestination)
    assert isinstance(open_destination(tmp_path), FolderDestination)


def _read(url: str, table: str) -> pd.DataFrame:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return pd.read_sql_table(table, conn)
    finally:
        engine.dispose()


def test_sql_write_tables_history_and_rerun(tmp_path):
    url = f"sqlite:///{tmp_path}/crm.db"
    dest = SQLDestination(url, "icp_")
    dest.write(_run(day=dt.date(2025, 6, 1), tier="Weak"))
    dest.write(_run(tier="Strong"))
    dest.write(_run(tier="Strong"))  # rerun of the same date
    accounts = _read(url, "icp_accounts")
    assert accounts["tier"].unique().tolist() == ["Strong"] and len(accounts) == 4
    history = _read(url, "icp_score_history")
    assert history.groupby("scoring_date").size().to_dict() == {"2025-06-01": 4, "2025-06-30": 4}
    assert set(dest.previous_scores(DAY)["tier"]) == {"Weak"}
    names = set(sa.inspect(sa.create_engine(url)).get_table_names())
    assert not any(n.endswith("__staging") for n in names)


def test_sql_swap_is_all_or_nothing(tmp_path):
    url = f"sqlite:///{tmp_path}/crm.db"
    dest = SQLDestination(url)
    dest.write(_run(tier="Weak", n=3))
    swapped: list[str] = []

    def fail_after_first(table: str) -> None:
        swapped.append(table)
        raise RuntimeError("connection lost")

    with pytest.raises(RuntimeError, match="connection lost"):
        dest.write(_run(tier="Perfect", n=5), on_written=fail_after_first)
    assert swapped == ["icp_accounts"]  # the first table was swapped inside the transaction...
    accounts = _read(url, "icp_accounts")  # ...and rolled back with it
    assert len(accounts) == 3 and set(accounts["tier"]) == {"Weak"}
    assert len(_read(url, "icp_rejected")) == 1
    assert len(_read(url, "icp_score_history")) == 3


def test_sql_prefix_must_be_an_identifier():
    with pytest.raises(ValueError, match="identifier"):
        SQLDestination("sqlite://", 'x"; drop table y; --')
