"""The profile names churn and loss drivers of the outcomes whose model beats chance, and only those."""

from types import SimpleNamespace

import pandas as pd

from icpkit.icp.profile import _of_outcomes_with_signal


def _drivers() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "outcome": ["churn", "churn", "loss", "churn"],
            "attribute": ["Contract", "SeniorCitizen", "industry", "gender"],
            "role": ["offer", "customer", "customer", "customer"],
            "significant": [True, True, True, False],
        }
    )


def _derivation(with_signal: list[str]) -> SimpleNamespace:
    return SimpleNamespace(evidence=SimpleNamespace(with_signal=with_signal))


def test_an_offer_only_signal_still_shows_its_churn_drivers():
    # Telco: renewal beats chance, no customer trait does; the contract's churn risk is still told.
    shown = _of_outcomes_with_signal(_derivation(["renewal"]), _drivers())
    assert shown["attribute"].tolist() == ["Contract", "SeniorCitizen"]


def test_drivers_of_an_outcome_without_signal_are_not_shown():
    assert _of_outcomes_with_signal(_derivation([]), _drivers()).empty
    shown = _of_outcomes_with_signal(_derivation(["win"]), _drivers())
    assert shown["attribute"].tolist() == ["industry"]


def test_no_drivers_is_no_drivers():
    empty = _drivers().iloc[:0]
    assert _of_outcomes_with_signal(_derivation(["renewal"]), empty).empty
