"""Manual tier overrides: checked rows, applied after scoring, reported, never silent."""

from __future__ import annotations

import pandas as pd
import pytest

from icpkit.errors import DataContractError
from icpkit.scoring.overrides import apply_overrides, parse_overrides, read_overrides

HEADER = "account_id,forced_tier,reason,author,date\n"


@pytest.fixture
def accounts() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "account_id": ["A", "B", "C"],
            "fit_score": [85.0, 30.0, 55.0],
            "tier": ["Perfect", "Weak", "Moderate"],
        }
    )


def _write(tmp_path, body: str):
    path = tmp_path / "overrides.csv"
    path.write_text(HEADER + body)
    return path


def test_read_overrides_canonical_tier_and_date(tmp_path):
    path = _write(tmp_path, "B,perfect,strategic partner,ana,2025-06-01\n")
    (o,) = read_overrides(path)
    assert (o.row, o.account_id, o.forced_tier, o.author, o.date.isoformat()) == (
        1,
        "B",
        "Perfect",
        "ana",
        "2025-06-01",
    )


def test_read_overrides_invalid_tier_names_the_row(tmp_path):
    path = _write(tmp_path, "A,Strong,ok,ana,2025-06-01\nB,Gold,vip,bo,2025-06-02\n")
    with pytest.raises(
        DataContractError, match=r"row 2: 'Gold' is not a tier; tiers are Perfect, Strong, Moderate, Weak"
    ):
        read_overrides(path)


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ("A,Strong,,ana,2025-06-01\n", "row 1: reason is empty"),
        ("A,Strong,why,ana,June 1st\n", "row 1: 'June 1st' is not a YYYY-MM-DD date"),
        ("A,Strong,why,ana,2025-06-01\nA,Weak,why,bo,2025-06-02\n", r"overridden twice \(rows 1 and 2\)"),
    ],
)
def test_read_overrides_bad_rows_are_errors(tmp_path, body, match):
    with pytest.raises(DataContractError, match=match):
        read_overrides(_write(tmp_path, body))


def test_read_overrides_missing_column_and_file(tmp_path):
    path = tmp_path / "o.csv"
    path.write_text("account_id,forced_tier\nA,Strong\n")
    with pytest.raises(DataContractError, match="missing column"):
        read_overrides(path)
    with pytest.raises(DataContractError, match="file not found"):
        read_overrides(tmp_path / "nope.csv")


def test_apply_overrides_forces_tier_reports_rows_and_reason(accounts):
    overrides = parse_overrides(
        pd.DataFrame(
            {
                "account_id": ["B", "ZZ"],
                "forced_tier": ["Perfect", "Weak"],
                "reason": ["strategic partner", "gone"],
                "author": ["ana", "bo"],
                "date": ["2025-06-01", "2025-06-02"],
            }
        )
    )
    out, applied = apply_overrides(accounts, overrides)
    assert out["tier"].tolist() == ["Perfect", "Perfect", "Moderate"]
    assert out["model_tier"].tolist() == ["Perfect", "Weak", "Moderate"]
    assert (
        out.loc[1, "override_reason"]
        == "forced Perfect (model: Weak) by ana on 2025-06-01: strategic partner"
    )
    assert out["override_reason"].isna().tolist() == [True, False, True]
    assert [a.rows_touched for a in applied] == [1, 0]
    assert "not in the scored accounts" in applied[1].message and "0 rows" in applied[1].message
    assert accounts["tier"].tolist() == ["Perfect", "Weak", "Moderate"]  # the input is not modified


def test_apply_no_overrides_adds_empty_columns(accounts):
    out, applied = apply_overrides(accounts, [])
    assert applied == [] and out["override_reason"].isna().all() and out["tier"].equals(accounts["tier"])
