"""Scores of shuffled rows: a LightGBM model rescores only the trees that split on the columns."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from icpkit.models.fitting import fit_logistic, fit_platt
from icpkit.models.permutation import shuffled_scores
from icpkit.models.preprocessing import Preprocessor
from icpkit.models.propensity import PropensityModel
from icpkit.models.trees import BoosterText


def _world(n: int = 600, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {
            "employees": rng.lognormal(4, 1, n),
            "industry": pd.Series(rng.choice(["fintech", "retail", "media", "health"], n), dtype="str"),
            "intent": rng.normal(size=n),
            "constant": np.ones(n),  # no tree can split on it
        }
    )
    X.loc[::13, "employees"] = np.nan
    X.loc[::19, "industry"] = None
    logit = 1.5 * (X["industry"] == "fintech") + np.log(X["employees"].fillna(50)) - 4 + X["intent"]
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int).to_numpy()
    return X, y


def _model(kind: str) -> tuple[PropensityModel, pd.DataFrame]:
    X, y = _world()
    enc = Preprocessor().fit(X)
    E = enc.transform(X)
    if kind == "lightgbm":
        booster = lgb.train(
            {"objective": "binary", "verbosity": -1, "deterministic": True, "seed": 1, "num_threads": 1,
             "num_leaves": 7},
            lgb.Dataset(E, y, categorical_feature=enc.categorical_columns_),
            num_boost_round=40,
        )  # fmt: skip
        model = PropensityModel("win", "lightgbm", enc, booster=booster)
    else:
        model, _ = fit_logistic(E, y, E, y, enc, "win")
    model.calibration = fit_platt(model.raw_score(E, encoded=True), y)
    return model, enc.transform(_world(300, 1)[0])


def _reference(model: PropensityModel, codes: pd.DataFrame, columns: list[str], orders: list[np.ndarray]):
    """Shuffle a copy per order and score all of it."""
    out = []
    for order in orders:
        copy = codes.copy()
        for c in columns:
            copy[c] = codes[c].to_numpy()[order]
        out.append(model.raw_score(copy, encoded=True))
    return np.concatenate(out)


def test_a_subset_of_all_trees_is_the_booster_and_other_trees_ignore_the_feature():
    model, codes = _model("lightgbm")
    text = BoosterText.of(model.booster)
    values = codes[model.feature_names].to_numpy(dtype=float)
    everything = text.subset(list(range(len(text.trees))))
    whole = model.booster.predict(values, raw_score=True)
    np.testing.assert_allclose(everything.predict(values, raw_score=True), whole, rtol=0, atol=1e-12)
    j = model.feature_names.index("industry")
    using = text.trees_splitting_on([j])
    assert 0 < len(using) < len(text.trees)
    rest = text.subset([i for i in range(len(text.trees)) if i not in using])
    shuffled = values.copy()
    shuffled[:, j] = values[np.random.default_rng(0).permutation(len(values)), j]
    # The trees that do not split on industry score shuffled rows exactly as the intact ones.
    np.testing.assert_array_equal(rest.predict(shuffled, raw_score=True), rest.predict(values, raw_score=True))
    assert text.trees_splitting_on([model.feature_names.index("constant")]) == []
    assert text.subset([]) is None


@pytest.mark.parametrize("kind", ["lightgbm", "logistic"])
@pytest.mark.parametrize("columns", [["industry"], ["employees", "intent"], ["constant"]])
def test_shuffled_raw_scores_equal_scoring_shuffled_copies(kind, columns):
    model, codes = _model(kind)
    rng = np.random.default_rng(5)
    orders = [rng.permutation(len(codes)) for _ in range(3)]
    fast = model.shuffled_raw_scores(codes)(columns, orders)
    slow = _reference(model, codes, columns, orders)
    assert fast.shape == (3 * len(codes),)
    np.testing.assert_allclose(fast, slow, rtol=1e-12, atol=1e-12)
    if columns == ["constant"]:  # nothing reads it: every copy scores as the intact rows
        intact = np.tile(model.raw_score(codes, encoded=True), 3)
        np.testing.assert_allclose(fast, intact, rtol=0, atol=1e-12)


def test_the_generic_scorer_shuffles_the_named_columns_together_and_ignores_unknown_names():
    X = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [10.0, 20.0, 30.0], "c": [0.0, 0.0, 5.0]})
    score = shuffled_scores(lambda F: F["a"].to_numpy() * 100 + F["b"].to_numpy() + F["c"].to_numpy(), X)
    out = score(["a", "b", "unknown"], [np.array([2, 0, 1]), np.array([0, 1, 2])])
    # Order [2, 0, 1]: rows take a and b of rows 2, 0, 1 together; c stays in place.
    np.testing.assert_array_equal(out, [330.0, 110.0, 225.0, 110.0, 220.0, 335.0])
