"""Chunked batch scoring of frames and Parquet / CSV files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from icpkit.scoring.batch import INPUT_ROW, iter_file_chunks, score_file, score_frame
from icpkit.scoring.inputs import REJECTED_REASON, InputSpec, ScoringInputError


class FakeScorer:
    """fit_score = 2 x employees (NaN -> -1); remembers the size of every chunk it saw."""

    def __init__(self) -> None:
        self.chunk_sizes: list[int] = []

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        self.chunk_sizes.append(len(frame))
        score = (frame["employees"] * 2).fillna(-1.0)
        return pd.DataFrame(
            {
                "fit_score": score,
                "tier": np.where(score >= 100, "Perfect", "Weak"),
                "industry_seen": frame["industry"],
            },
            index=frame.index,
        )


@pytest.fixture
def spec() -> InputSpec:
    train = pd.DataFrame(
        {"account_id": ["a", "b"], "employees": [1.0, 2.0], "industry": ["Banking", "Retail"]}
    )
    return InputSpec.from_frame(train, id_column="account_id")


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "account_id": [f"a{i}" for i in range(10)],
            "employees": [10.0, -3.0, 60.0, np.nan, 5.0, 70.0, np.inf, 1.0, 2.0, 3.0],
            "industry": [
                "Banking",
                "Retail",
                "Mining",
                "Banking",
                None,
                "Retail",
                "Banking",
                "Oil",
                "Banking",
                "Retail",
            ],
            "region": "EU",  # extra column, ignored
        }
    )


def test_score_frame_same_result_whatever_the_chunk_size(frame, spec):
    results = [score_frame(frame, FakeScorer(), spec, chunk_rows=n, keep=["account_id"]) for n in (1, 3, 100)]
    for res in results[1:]:
        pd.testing.assert_frame_equal(res.scores, results[0].scores)
        pd.testing.assert_frame_equal(res.rejected, results[0].rejected)
        assert res.unseen == results[0].unseen


def test_score_frame_chunks_bound_what_the_model_sees(frame, spec):
    model = FakeScorer()
    score_frame(frame, model, spec, chunk_rows=3)
    # rows 0-2, 3-5, 6-8, 9 minus the rejected ones (rows 1 and 6)
    assert model.chunk_sizes == [2, 3, 2, 1]


def test_score_frame_keeps_input_order_ids_and_collects_rejected(frame, spec):
    res = score_frame(frame, FakeScorer(), spec, chunk_rows=4, keep=["account_id", "region"])
    assert res.scores["account_id"].tolist() == ["a0", "a2", "a3", "a4", "a5", "a7", "a8", "a9"]
    assert res.scores["region"].tolist() == ["EU"] * 8
    assert res.scores["fit_score"].tolist() == [20.0, 120.0, -1.0, 10.0, 140.0, 2.0, 4.0, 6.0]
    assert list(res.scores.columns) == ["account_id", "region", "fit_score", "tier", "industry_seen"]
    assert res.rejected.to_dict("records") == [
        {INPUT_ROW: 1, "id": "a1", REJECTED_REASON: "employees = -3 is below 0"},
        {INPUT_ROW: 6, "id": "a6", REJECTED_REASON: "employees = inf is not finite"},
    ]
    assert res.n_rows == 10
    # unseen values reach the model as missing, and are counted
    assert res.scores["industry_seen"].isna().sum() == 3  # Mining, None, Oil
    assert res.unseen == {"industry": 2} and res.rows_with_unseen == 2


def test_score_frame_unseen_share_is_judged_on_the_whole_input(frame, spec):
    # The chunk holding rows 6-8 is half unseen (1 of its 2 accepted rows); the input is 2 in 8.
    assert score_frame(frame, FakeScorer(), spec, chunk_rows=3, max_unseen_share=0.25).rows_with_unseen == 2
    with pytest.raises(ScoringInputError, match=r"2 of 8 rows .* industry: 2 \(e.g. 'Mining', 'Oil'\)"):
        score_frame(frame, FakeScorer(), spec, chunk_rows=3, max_unseen_share=0.2, table="accounts")


def test_score_frame_empty_input_gives_output_columns(spec):
    res = score_frame(pd.DataFrame(), FakeScorer(), spec, chunk_rows=5, keep=["account_id"])
    assert len(res.scores) == 0
    assert list(res.scores.columns) == ["account_id", "fit_score", "tier", "industry_seen"]
    assert list(res.rejected.columns) == [INPUT_ROW, "id", REJECTED_REASON]


def test_score_frame_all_rejected_still_has_output_columns(spec):
    frame = pd.DataFrame({"account_id": ["a"], "employees": [-1.0], "industry": ["Banking"]})
    res = score_frame(frame, FakeScorer(), spec, chunk_rows=5, keep=["account_id"])
    assert len(res.scores) == 0 and "fit_score" in res.scores and len(res.rejected) == 1


def test_score_frame_missing_columns_fail_before_scoring(frame, spec):
    with pytest.raises(ScoringInputError, match="employees"):
        score_frame(frame.drop(columns=["employees"]), FakeScorer(), spec, chunk_rows=5)
    with pytest.raises(ScoringInputError, match="amount"):
        score_frame(frame, FakeScorer(), spec, chunk_rows=5, keep=["amount"])


def test_score_frame_scorer_losing_rows_is_an_error(frame, spec):
    class Lossy:
        def predict(self, frame):
            return pd.DataFrame({"fit_score": [1.0]})

    with pytest.raises(ValueError, match="row for row"):
        score_frame(frame, Lossy(), spec, chunk_rows=5)


def test_score_frame_with_progress_bar_gives_same_result(frame, spec):
    quiet = score_frame(frame, FakeScorer(), spec, chunk_rows=3, progress=False)
    shown = score_frame(frame, FakeScorer(), spec, chunk_rows=3, progress=True)
    pd.testing.assert_frame_equal(quiet.scores, shown.scores)


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_score_file_equals_score_frame(frame, spec, tmp_path, fmt):
    path = tmp_path / f"accounts.{fmt}"
    frame.to_parquet(path) if fmt == "parquet" else frame.to_csv(path, index=False)
    model = FakeScorer()
    from_file = score_file(path, model, spec, chunk_rows=3, keep=["account_id"])
    in_memory = score_frame(frame, FakeScorer(), spec, chunk_rows=3, keep=["account_id"])
    pd.testing.assert_frame_equal(from_file.scores, in_memory.scores)
    pd.testing.assert_frame_equal(from_file.rejected, in_memory.rejected)
    assert from_file.name == "accounts" and max(model.chunk_sizes) <= 3


def test_score_file_missing_column_named(frame, spec, tmp_path):
    path = tmp_path / "accounts.parquet"
    frame.drop(columns=["industry"]).to_parquet(path)
    with pytest.raises(ScoringInputError, match="industry"):
        score_file(path, FakeScorer(), spec, chunk_rows=3)


def test_iter_file_chunks_rechunks_csv_blocks_exactly(tmp_path):
    path = tmp_path / "big.csv"
    pd.DataFrame({"x": range(2500), "y": ["t"] * 2500}).to_csv(path, index=False)
    chunks = list(iter_file_chunks(path, 1000, ["x"]))
    assert [len(c) for c in chunks] == [1000, 1000, 500]
    assert chunks[1].index[0] == 1000 and list(chunks[0].columns) == ["x"]
    assert chunks[2]["x"].iloc[-1] == "2499"  # CSV cells arrive as text; the spec types them
