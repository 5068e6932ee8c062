"""The vectorised scoring paths give exactly what the row-by-row code gave (issue 9, throughput).

Each fast path is checked against a plain per-row reference written out here, on hand-made
frames with known answers: reasons joined once per distinct choice, categorical codes over
distinct values, and a batch scored in forked worker processes.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

import icpkit.scoring.served as served
from icpkit.icp.scorecard import AdditiveScorecard, FeatureTable, take_text
from icpkit.models.preprocessing import _codes, category_codes, value_labels, yes_no_labels
from icpkit.scoring.inputs import InputSpec, ScoringInputError


def _card() -> AdditiveScorecard:
    """Two features by hand: employees (3 ranges + missing) and industry (3 codes + other)."""
    tables = {
        "employees": FeatureTable("employees", False, thresholds=[10.0, 100.0], bin_values=[0.0, 1.0, 2.0],
                                  missing_value=0.5),
        "industry": FeatureTable("industry", True, categories=[0, 1, 2], category_values=[0.0, 3.0, 1.0],
                                 missing_value=0.0),
    }  # fmt: skip
    return AdditiveScorecard(
        features=["employees", "industry"], categorical=["industry"], tables=tables, base=0.0,
        max_points={"employees": 40, "industry": 60}, mean_points={"employees": 20.0, "industry": 20.0},
        category_labels={"industry": ["Retail", "Banking", "Software"]}, integer_valued={"employees": True},
    )  # fmt: skip


def _reference_reasons(card: AdditiveScorecard, X: pd.DataFrame, top_n: int) -> tuple[list[str], list[str]]:
    """The reasons as the row-by-row code wrote them: sort each row's deltas, format, join."""
    pts = card.points(X)
    out: tuple[list[str], list[str]] = ([], [])
    for r in range(len(X)):
        for side, sign in enumerate((1.0, -1.0)):
            delta = [sign * (pts.iloc[r][f] - card.mean_points[f]) for f in card.features]
            order = sorted(range(len(delta)), key=lambda j: -delta[j])[:top_n]
            texts = []
            for j in order:
                if delta[j] < 0.5:
                    break
                f = card.features[j]
                e = int(card.entry_index(X.iloc[[r]])[0, j])
                label = card.entry_labels(f)[e]
                value = f"= {label}" if card.tables[f].categorical or label == "missing" else label
                texts.append(f"{f} {value} ({'+'}{int(card.entry_points(f)[e])} of {card.max_points[f]})")
            out[side].append("; ".join(texts))
    return out


def test_reasons_name_each_rows_entries_with_their_points() -> None:
    card = _card()
    X = pd.DataFrame({"employees": [500.0, 5.0, np.nan, 50.0], "industry": [1.0, 0.0, 7.0, 2.0]})
    got = card.reasons(X, top_n=3)
    # employees: 0 / 20 / 40 points (missing 10); industry: Retail 0, Banking 60, Software 20, other 0.
    assert got["reasons_up"].tolist() == [
        "industry = Banking (+60 of 60); employees >= 101 (+40 of 40)", "", "", ""
    ]  # fmt: skip
    assert got["reasons_down"].tolist() == [
        "", "employees <= 10 (+0 of 40); industry = Retail (+0 of 60)",
        "industry = other/missing (+0 of 60); employees = missing (+10 of 40)", "",
    ]  # fmt: skip


@pytest.mark.parametrize("top_n", [1, 2, 3])
def test_reasons_equal_the_row_by_row_formatting(top_n: int) -> None:
    card = _card()
    rng = np.random.default_rng(3)
    employees = rng.choice([np.nan, 0.0, 10.0, 11.0, 100.0, 101.0, 1e4], size=300)
    industry = rng.choice([np.nan, -1.0, 0.0, 1.0, 2.0, 9.0], size=300)
    X = pd.DataFrame({"employees": employees, "industry": industry})
    up, down = _reference_reasons(card, X, top_n)
    got = card.reasons(X, top_n=top_n)
    assert got["reasons_up"].tolist() == up
    assert got["reasons_down"].tolist() == down


def test_reasons_of_an_empty_frame_are_empty() -> None:
    got = _card().reasons(pd.DataFrame({"employees": [], "industry": []}, dtype=float))
    assert list(got.columns) == ["reasons_up", "reasons_down"] and len(got) == 0


def test_take_text_is_the_object_take() -> None:
    values = ["a; b", "", "industry = Banking (+60 of 60)"]
    idx = np.array([2, 0, 0, 1, 2])
    got = pd.Series(take_text(values, idx))
    assert got.tolist() == ["industry = Banking (+60 of 60)", "a; b", "a; b", "", "industry = Banking (+60 of 60)"]
    pd.testing.assert_series_equal(got, pd.Series(np.asarray(values, dtype=object)[idx]))


CATS = ["Banking", "Retail", "3", "yes", "__other__"]
POOLED = ["Travel"]


@pytest.mark.parametrize(
    "values, expected, unseen",
    [
        (pd.Series(["Retail", None, "Banking", "Travel", "Mining", "Retail"], dtype="str"),
         [1, np.nan, 0, 4, 4, 1], 1),
        (pd.Series([3.0, np.nan, 3.5, -0.0, 3.0]), [2, np.nan, 4, 4, 2], 2),
        (pd.Series([3, 7, 3], dtype="int64"), [2, 4, 2], 1),
        (pd.Series([3, None, 4], dtype="Int64"), [2, np.nan, 4], 1),
        (pd.Series([True, False, True]), [3, 4, 3], 1),
        # Object columns label row by row: 3.0 reads "3.0" there, unlike in a float column.
        (pd.Series([1, "3", 3.0, True, None], dtype=object), [4, 2, 4, 4, np.nan], 3),
    ],
)  # fmt: skip
def test_category_codes_over_distinct_values_equal_row_by_row(values, expected, unseen) -> None:
    codes, n_unseen = category_codes(values, CATS, POOLED, boolean=False)
    np.testing.assert_array_equal(codes, np.asarray(expected, dtype=float))
    assert n_unseen == unseen
    ref_codes, ref_unseen = _codes(value_labels(values), CATS, POOLED)
    np.testing.assert_array_equal(codes, ref_codes)
    assert n_unseen == ref_unseen


def test_boolean_codes_over_distinct_values_equal_row_by_row() -> None:
    cats = ["yes", "no", "__other__"]
    for s in (pd.Series([1.0, 0.0, np.nan, 2.0]), pd.Series(["True", "false", None, "maybe"], dtype="str")):
        codes, n_unseen = category_codes(s, cats, [], boolean=True)
        np.testing.assert_array_equal(codes, [0.0, 1.0, np.nan, 2.0])
        assert n_unseen == 1
        ref = _codes(yes_no_labels(s), cats, [])
        np.testing.assert_array_equal(codes, ref[0])
        assert n_unseen == ref[1]


# -- a batch scored in worker processes ------------------------------------------------------


def _spec() -> InputSpec:
    train = pd.DataFrame({"account_id": ["a", "b", "c"], "employees": [1.0, 5.0, 9.0],
                          "industry": ["Banking", "Retail", "Banking"]})  # fmt: skip
    return InputSpec.from_frame(train, id_column="account_id")


def _batch(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    employees = rng.integers(0, 50, n).astype(float)
    employees[[3, 700]] = -1.0  # rejected: below 0, one in each half
    industry = np.where(rng.random(n) < 0.02, "Mining", rng.choice(["Banking", "Retail"], n))
    ids = [f"A{i}" for i in range(n)]
    return pd.DataFrame({"account_id": ids, "employees": employees, "industry": industry},
                        index=pd.RangeIndex(100, 100 + n))  # fmt: skip


def _score(rows: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {"points": rows["employees"] * 2, "label": "industry " + rows["industry"].fillna("?"),
         "segment": (rows["employees"] > 20).astype("int64")}, index=rows.index,
    )  # fmt: skip


EMPTY = pd.DataFrame(columns=["points", "label", "segment"])


def test_a_batch_scored_in_two_processes_equals_one_process(monkeypatch, caplog) -> None:
    monkeypatch.setattr(served, "MIN_ROWS_PER_WORKER", 100)
    frame = _batch(1000)
    with caplog.at_level(logging.WARNING):
        one = served.score_checked(_spec(), frame, _score, EMPTY, 0.5, "accounts", workers=1)
        one_log = caplog.messages[:]
        caplog.clear()
        two = served.score_checked(_spec(), frame, _score, EMPTY, 0.5, "accounts", workers=2)
    pd.testing.assert_frame_equal(one, two, check_exact=True)
    assert caplog.messages == one_log and "unseen industry" in one_log[0]
    assert two.loc[103, "rejected_reason"] == "employees = -1 is below 0"
    assert two["rejected_reason"].notna().sum() == 2


def test_the_unseen_share_is_enforced_over_the_whole_batch_in_processes(monkeypatch) -> None:
    monkeypatch.setattr(served, "MIN_ROWS_PER_WORKER", 100)
    frame = _batch(1000)
    messages = []
    for workers in (1, 2):
        with pytest.raises(ScoringInputError) as err:
            served.score_checked(_spec(), frame, _score, EMPTY, 0.001, "accounts", workers=workers)
        messages.append(str(err.value))
    assert messages[0] == messages[1] and "industry:" in messages[0] and "'Mining'" in messages[0]
