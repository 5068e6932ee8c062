"""Tests for icpkit.icp.weights: SHAP contributions -> attribute and dimension weights."""

from __future__ import annotations

import pandas as pd
import pytest

from icpkit.icp.weights import attribute_weights, blend_weights, dimension_weights

FEATURE_SOURCE = {"industry_software": "industry", "industry_retail": "industry"}
SOURCE_DIMENSION = {"industry": "firmographic", "employees": "firmographic", "web_visits": "behavioral"}


@pytest.fixture
def contributions() -> pd.DataFrame:
    # The two industry one-hots cancel exactly on every row: the attribute has no net effect,
    # although each column alone has |SHAP| = 3.
    return pd.DataFrame(
        {
            "industry_software": [3.0, -3.0, 3.0, -3.0],
            "industry_retail": [-3.0, 3.0, -3.0, 3.0],
            "employees": [1.0, -1.0, 2.0, -2.0],
            "web_visits": [0.5, 0.5, -0.5, -0.5],
        }
    )


def test_attribute_weights_sums_contributions_before_abs(contributions: pd.DataFrame) -> None:
    w = attribute_weights(contributions, FEATURE_SOURCE, SOURCE_DIMENSION).set_index("attribute")
    assert w.loc["industry", "mean_abs_shap"] == 0.0
    assert w.loc["employees", "mean_abs_shap"] == pytest.approx(1.5)
    assert w.loc["web_visits", "mean_abs_shap"] == pytest.approx(0.5)
    assert w.loc["employees", "weight"] == pytest.approx(75.0)
    assert w.loc["web_visits", "weight"] == pytest.approx(25.0)


def test_attribute_weights_sum_to_100_sorted_with_dimensions(contributions: pd.DataFrame) -> None:
    w = attribute_weights(contributions, FEATURE_SOURCE, {"industry": "firmographic"})
    assert list(w.columns) == ["attribute", "dimension", "role", "mean_abs_shap", "weight"]
    assert w["weight"].sum() == pytest.approx(100.0)
    assert list(w["attribute"]) == ["employees", "web_visits", "industry"]
    # Unmapped attributes fall into "other".
    assert dict(zip(w["attribute"], w["dimension"], strict=True))["employees"] == "other"


def test_attribute_weights_all_zero_gives_zero_not_nan() -> None:
    w = attribute_weights(pd.DataFrame({"a": [0.0, 0.0], "b": [0.0, 0.0]}), {}, {})
    assert w["weight"].tolist() == [0.0, 0.0]


def test_dimension_weights_roll_up(contributions: pd.DataFrame) -> None:
    d = dimension_weights(attribute_weights(contributions, FEATURE_SOURCE, SOURCE_DIMENSION))
    assert list(d.columns) == ["dimension", "weight", "n_attributes"]
    assert d["weight"].sum() == pytest.approx(100.0)
    rows = d.set_index("dimension")
    assert rows.loc["firmographic", "weight"] == pytest.approx(75.0)
    assert rows.loc["firmographic", "n_attributes"] == 2
    assert rows.loc["behavioral", "weight"] == pytest.approx(25.0)
    assert d["dimension"].iloc[0] == "firmographic"


def _weights(values: dict[str, float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "attribute": list(values),
            "dimension": [SOURCE_DIMENSION.get(a, "other") for a in values],
            "mean_abs_shap": list(values.values()),
            "weight": list(values.values()),
        }
    )


def test_blend_weights_averages_and_fills_missing_attribute_with_zero() -> None:
    per = {"win": _weights({"industry": 60.0, "employees": 40.0}), "renewal": _weights({"industry": 100.0})}
    out = blend_weights(per, {"win": 0.5, "renewal": 0.5}).set_index("attribute")
    assert out.loc["industry", "weight"] == pytest.approx(80.0)
    assert out.loc["employees", "weight"] == pytest.approx(20.0)
    assert out.loc["employees", "weight_renewal"] == 0.0
    assert out.loc["employees", "weight_win"] == pytest.approx(40.0)
    assert out["weight"].sum() == pytest.approx(100.0)


def test_blend_weights_renormalises_over_present_outcomes() -> None:
    per = {"win": _weights({"industry": 60.0, "employees": 40.0})}
    out = blend_weights(per, {"win": 0.2, "expansion": 0.8})
    assert "weight_expansion" not in out.columns
    assert dict(zip(out["attribute"], out["weight"], strict=True)) == pytest.approx(
        {"industry": 60.0, "employees": 40.0}
    )


def test_blend_weights_raises_when_no_outcome_present() -> None:
    with pytest.raises(ValueError, match="expansion"):
        blend_weights({"win": _weights({"industry": 100.0})}, {"expansion": 1.0})
