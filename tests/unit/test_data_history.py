"""account_history: point-in-time account attributes, loaded and validated like every table."""

import pandas as pd
import pytest

from icpkit.config import DataConfig
from icpkit.data.loading import load_crm
from icpkit.data.validation import validate_crm
from icpkit.errors import DataContractError

T = pd.Timestamp
EXTRACT = T("2025-12-31")


def _tables(history: pd.DataFrame) -> dict[str, pd.DataFrame]:
    return {"accounts": pd.DataFrame({"account_id": ["A1", "A2"]}), "account_history": history}


def _history(**overrides) -> pd.DataFrame:
    cols = {
        "account_id": ["A1", "A1", "A2"],
        "valid_from": [T("2024-01-01"), T("2025-01-01"), T("2024-06-01")],
        "employees": [10.0, 25.0, 300.0],
    }
    return pd.DataFrame({**cols, **overrides})


def test_account_history_loads_with_typed_attributes(tmp_path):
    (tmp_path / "accounts.csv").write_text("account_id\nA1\nA2\n")
    (tmp_path / "account_history.csv").write_text(
        "account_id,valid_from,employees,plan\nA1,2024-01-01,10,basic\nA1,2025-01-01,25,pro\nA2,2024-06-01,300,pro\n"
    )
    hist = load_crm(DataConfig(source=str(tmp_path)), EXTRACT)["account_history"]
    assert list(hist.columns) == ["account_id", "valid_from", "employees", "plan"]
    assert hist["valid_from"].dtype == "datetime64[ns]" and hist["employees"].dtype == "float64"


def test_account_history_valid_passes():
    assert validate_crm(_tables(_history()), EXTRACT) is None


def test_account_history_duplicate_account_and_valid_from_is_an_error():
    hist = _history(valid_from=[T("2024-01-01"), T("2024-01-01"), T("2024-06-01")])
    with pytest.raises(DataContractError, match=r"\(account_id, valid_from\) must be unique") as info:
        validate_crm(_tables(hist), EXTRACT)
    assert info.value.table == "account_history" and info.value.n_rows == 2
    assert info.value.examples[0] == {"account_id": "A1", "valid_from": "2024-01-01"}


def test_account_history_valid_from_after_extract_is_an_error():
    hist = _history(valid_from=[T("2024-01-01"), T("2026-03-01"), T("2024-06-01")])
    with pytest.raises(DataContractError, match="after the extract date") as info:
        validate_crm(_tables(hist), EXTRACT)
    assert info.value.column == "valid_from" and info.value.n_rows == 1


def test_account_history_unknown_account_is_an_error():
    hist = _history(account_id=["A1", "A1", "A9"])
    with pytest.raises(DataContractError, match="every account_id must exist in accounts") as info:
        validate_crm(_tables(hist), EXTRACT)
    assert info.value.examples == [{"account_id": "A9", "valid_from": "2024-06-01"}]


def test_account_history_unparseable_valid_from_is_an_error(tmp_path):
    (tmp_path / "accounts.csv").write_text("account_id\nA1\n")
    (tmp_path / "account_history.csv").write_text("account_id,valid_from\nA1,2024-01-01\nA1,someday\n")
    with pytest.raises(DataContractError, match="dates must parse") as info:
        load_crm(DataConfig(source=str(tmp_path)), EXTRACT)
    assert (info.value.table, info.value.column, info.value.n_rows) == ("account_history", "valid_from", 1)


def test_account_history_missing_valid_from_is_an_error():
    with pytest.raises(DataContractError, match=r"missing required column\(s\) \['valid_from'\]"):
        validate_crm(_tables(_history().drop(columns=["valid_from"])), EXTRACT)
