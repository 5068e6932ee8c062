"""Stacking the blended outcomes' rows for the ICP scorecards, with the fit-row cap."""

from __future__ import annotations

import numpy as np
import pandas as pd

from icpkit.data.crm import CRMData
from icpkit.features import OutcomeDataset
from icpkit.icp.derive import stack_rows
from icpkit.models.fitting import Split
from icpkit.training import OutcomeReport


def _report(n: int, outcome: str) -> OutcomeReport:
    """``n`` labelled rows on accounts a0..a9: first 60 % train, next 20 % validation, last 20 % test."""
    rng = np.random.default_rng(0)
    data = OutcomeDataset(
        outcome=outcome,
        ids=pd.Series([f"r{i}" for i in range(n)], dtype="str"),
        account_ids=pd.Series([f"a{i % 10}" for i in range(n)], dtype="str"),
        as_of=pd.Series(pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(n), unit="h")),
        X=pd.DataFrame({"noise": rng.normal(size=n)}),
        y=pd.Series(np.r_[np.zeros(n // 2, int), np.ones(n - n // 2, int)][rng.permutation(n)], dtype="Int8"),
    )
    part = np.repeat([0, 1, 2], [int(n * 0.6), int(n * 0.2), n - int(n * 0.6) - int(n * 0.2)])
    nat = pd.Timestamp("NaT")
    split = Split(part == 0, part == 1, part == 2, nat, nat, kind="random")
    return OutcomeReport(outcome, "trained", n_rows=n, n_labelled=n, dataset=data, split=split)


def test_stack_rows_caps_training_and_validation_rows_per_outcome_and_keeps_every_test_row():
    accounts = pd.DataFrame({"account_id": [f"a{i}" for i in range(10)], "seats": np.arange(10.0)})
    crm = CRMData({"accounts": accounts}, pd.Timestamp("2025-01-01"))
    reports = {"win": _report(1000, "win"), "renewal": _report(400, "renewal")}
    blend = {"win": 1.0, "renewal": 1.0}
    full = stack_rows(crm, reports, blend, {"seats": None}, [])
    capped = stack_rows(crm, reports, blend, {"seats": None}, [], max_fit_rows=200, seed=1)
    for stacked, expected in ((full, {"win": (600, 200, 200), "renewal": (240, 80, 80)}),
                              (capped, {"win": (150, 50, 200), "renewal": (150, 50, 80)})):  # fmt: skip
        for name, (n_train, n_valid, n_test) in expected.items():
            mine = stacked.outcome == name
            assert [int((stacked.part[mine] == p).sum()) for p in ("train", "validation", "test")] == [
                n_train, n_valid, n_test,
            ]  # fmt: skip
    # Each outcome still weighs the blend's share: the weights of its training rows sum alike.
    train = capped.part == "train"
    sums = [capped.weight[train & (capped.outcome == o)].sum() for o in blend]
    assert np.isclose(sums[0], sums[1])
    # Rows keep their account's attributes.
    assert (capped.raw["seats"].to_numpy() == capped.raw["account_id"].str[1:].astype(float).to_numpy()).all()
