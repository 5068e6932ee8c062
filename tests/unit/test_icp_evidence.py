"""Out-of-sample evidence: permutation on encoded columns, batched, BH-corrected."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from icpkit.config import TrainingConfig
from icpkit.icp.evidence import _row_loss, attribute_evidence, permutation_rises
from icpkit.models.fitting import fit_lightgbm, tune_lightgbm
from icpkit.models.preprocessing import Preprocessor
from icpkit.models.trees import BoosterText


def _fit(X: pd.DataFrame, y: np.ndarray):
    enc = Preprocessor().fit(X)
    E = enc.transform(X)
    training = TrainingConfig(tuning={"n_trials": 1, "timeout_seconds": 600}, max_boost_rounds=80, num_threads=1)
    tuned = tune_lightgbm(E, y, E, y, enc.categorical_columns_, training, 0)
    return fit_lightgbm(E, y, enc.categorical_columns_, tuned, enc, "win")


def _world(n: int, seed: int, shuffle: bool = False) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {
            "signal": rng.normal(size=n),
            "industry": rng.choice(["a", "b", "c", "d"], n),
            **{f"noise_{i}": rng.normal(size=n) for i in range(6)},
        }
    )
    logit = 2 * X["signal"].to_numpy() + np.where(X["industry"] == "a", 1.0, 0.0)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return X, (rng.permutation(y) if shuffle else y)


@pytest.fixture(scope="module")
def model():
    return _fit(*_world(3000, 0))


def _naive_rises(model, X, y, n_repeats, seed):
    """The reference: shuffle the raw rows one repeat at a time and score them from scratch."""
    base = _row_loss(y, model.predict_proba(X))
    rng = np.random.default_rng(seed)
    out = {}
    for col in X.columns:
        rise = np.zeros(len(X))
        for _ in range(n_repeats):
            order = rng.permutation(len(X))
            shuffled = X.copy()
            shuffled[col] = X[col].to_numpy()[order]
            rise += (_row_loss(y, model.predict_proba(shuffled)) - base) / n_repeats
        out[col] = rise
    return out


def test_encoded_batched_permutation_equals_the_raw_reference(model):
    X, y = _world(400, 1)
    fast = permutation_rises(model, X, y, {}, n_repeats=4, seed=7)
    slow = _naive_rises(model, X, y, n_repeats=4, seed=7)
    assert list(fast) == list(slow)
    for col in slow:
        # Rescoring only the trees that split on the column sums the trees in another order:
        # equal to rounding (~1e-15), not bit for bit.
        np.testing.assert_allclose(fast[col], slow[col], rtol=1e-12, atol=1e-12)
    # A column no tree splits on cannot change a score: its rises are exactly 0 either way.
    used = {model.feature_names[f] for t in BoosterText.of(model.booster).features for f in t}
    for col in set(slow) - used:
        assert not fast[col].any() and not slow[col].any()


def test_evidence_finds_the_signal_and_not_the_noise(model):
    X, y = _world(2000, 2)
    ev = attribute_evidence(model, X, y, {}, seed=3).set_index("attribute")
    assert ev.loc["signal", "evidence"] and ev.loc["industry", "evidence"]
    assert not ev.loc[[f"noise_{i}" for i in range(6)], "evidence"].any()
    assert (ev["p_adjusted"] >= ev["p_value"] - 1e-15).all()


def test_on_shuffled_labels_no_attribute_has_evidence():
    X, y = _world(3000, 4, shuffle=True)
    noise_model = _fit(X, y)
    Xt, yt = _world(2000, 5, shuffle=True)
    assert not attribute_evidence(noise_model, Xt, yt, {}, seed=1)["evidence"].any()
