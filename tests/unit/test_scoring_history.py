"""Score history: rows per run, reruns replace their date, tier changes since the previous run."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from icpkit.scoring.history import (
    TIER_CHANGE_COLUMNS,
    history_rows,
    merge_history,
    previous_run,
    read_history_file,
    tier_changes,
    write_history_file,
)

D1, D2, D3 = dt.date(2025, 6, 1), dt.date(2025, 6, 8), dt.date(2025, 6, 15)


def _rows(date: dt.date, tiers: dict[str, str], version: str = "icp-scorer=1") -> pd.DataFrame:
    accounts = pd.DataFrame(
        {"account_id": list(tiers), "fit_score": [50.0] * len(tiers), "tier": list(tiers.values())}
    )
    return history_rows(accounts, date, version)


def test_history_rows_columns_and_types():
    rows = _rows(D1, {"A": "Strong"})
    assert rows.to_dict("records") == [
        {
            "account_id": "A",
            "scoring_date": "2025-06-01",
            "fit_score": 50.0,
            "tier": "Strong",
            "model_versions": "icp-scorer=1",
        }
    ]


def test_merge_history_rerun_replaces_its_date_and_keeps_dates_ordered():
    h = merge_history(_rows(D1, {"A": "Weak"}), _rows(D3, {"A": "Strong"}))
    h = merge_history(h, _rows(D2, {"A": "Moderate"}))  # back-filled date
    h = merge_history(h, _rows(D2, {"A": "Perfect"}))  # rerun of D2
    assert h["scoring_date"].tolist() == ["2025-06-01", "2025-06-08", "2025-06-15"]
    assert h["tier"].tolist() == ["Weak", "Perfect", "Strong"]


def test_previous_run_is_latest_strictly_before():
    h = merge_history(_rows(D1, {"A": "Weak"}), _rows(D2, {"A": "Strong"}))
    assert previous_run(h, D3)["scoring_date"].unique().tolist() == ["2025-06-08"]
    assert previous_run(h, D2)["scoring_date"].unique().tolist() == ["2025-06-01"]
    assert previous_run(h, D1).empty


def test_tier_changes_only_accounts_in_both_runs_with_a_new_tier():
    prev = _rows(D1, {"A": "Weak", "B": "Strong", "C": "Perfect"})
    cur = _rows(D2, {"C": "Strong", "A": "Weak", "B": "Perfect", "NEW": "Perfect"})
    changes = tier_changes(prev, cur)
    assert list(changes.columns) == TIER_CHANGE_COLUMNS
    assert changes[["account_id", "previous_tier", "tier"]].values.tolist() == [
        ["C", "Perfect", "Strong"],
        ["B", "Strong", "Perfect"],
    ]
    assert changes["previous_scoring_date"].unique().tolist() == ["2025-06-01"]


def test_tier_changes_first_run_is_empty():
    assert tier_changes(previous_run(_rows(D1, {"A": "Weak"}), D1), _rows(D1, {"A": "Weak"})).empty


def test_history_file_round_trip_and_missing_file_is_empty(tmp_path):
    path = tmp_path / "scores" / "history.parquet"
    assert read_history_file(path).empty
    h = merge_history(_rows(D1, {"A": "Weak"}), _rows(D2, {"A": "Strong"}))
    write_history_file(h, path)
    pd.testing.assert_frame_equal(read_history_file(path), h)
    assert [p.name for p in path.parent.iterdir()] == ["history.parquet"]  # no temporary left
