"""The one preprocessor: scikit-learn's estimator rules, codes, design, unseen counts, JSON."""

import json
import math

import numpy as np
import pandas as pd
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from icpkit.errors import FeatureMismatchError
from icpkit.icp.cohorts import _text_labels, category_labels
from icpkit.models.preprocessing import MISSING, OTHER, Preprocessor, _value_labels, is_heavy_tailed, value_labels

#: Checks that cannot apply to a frame-in, frame-out encoder, with the reason.
NOT_APPLICABLE = {
    "check_transformer_preserve_dtypes": (
        "transform returns a DataFrame (float64 columns, named), which has no single .dtype to compare"
    ),
}


@parametrize_with_checks(
    [Preprocessor(), Preprocessor(output="design", category_weight=0.5)],
    expected_failed_checks=lambda est: NOT_APPLICABLE,
)
def test_preprocessor_follows_sklearn_estimator_rules(estimator, check):
    check(estimator)


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "industry": pd.Series(["b"] * 6 + ["a"] * 7 + ["rare", None], dtype="str"),
            "employees": [10.0, 20, 30, np.nan, 50, 60, 70, 80, 90, 100, 110, 120, 130, 140, 150],
        }
    )


def test_codes_order_categories_by_frequency_and_pool_rare_and_unseen_values():
    pre = Preprocessor(min_category_count=5).fit(_frame())
    assert pre.categories_ == {"industry": ["a", "b", OTHER]}
    assert pre.columns_ == ["employees", "industry"] and pre.categorical_columns_ == ["industry"]
    industry = pd.Series(["b", "zzz", None, "rare"], dtype="str")
    new = pd.DataFrame({"industry": industry, "employees": [1, 2, 3, 4]})
    out = pre.transform(new)
    assert out["industry"].tolist()[:2] == [1.0, 2.0] and math.isnan(out["industry"][2])
    assert out["industry"][3] == 2.0
    assert out["employees"].tolist() == [1.0, 2.0, 3.0, 4.0]
    assert out.dtypes.eq("float64").all() and list(out.columns) == pre.columns_


def test_transform_counts_only_values_never_seen_in_training():
    pre = Preprocessor().fit(_frame())
    pre.transform(pd.DataFrame({"industry": ["rare", "zzz", "zzz", None, "a"], "employees": [1.0] * 5}))
    # "rare" was pooled in training (known, only rare); "zzz" was never seen.
    assert pre.last_unseen_counts_ == {"industry": 2}


def test_booleans_and_declared_numeric_codes_are_categorical():
    X = pd.DataFrame(
        {
            "soc2_required": [True, False] * 10,
            "region_code": [3, 4] * 10,
            "seats": np.arange(20, dtype=float),
        }
    )
    pre = Preprocessor(categorical=["region_code"]).fit(X)
    assert pre.numeric_columns_ == ["seats"]
    assert pre.categories_ == {"soc2_required": ["no", "yes", OTHER], "region_code": ["3", "4", OTHER]}
    # A code read as a float (3.0, e.g. a column with missing values) is the same category.
    new = pd.DataFrame({"soc2_required": [True, None], "region_code": [3.0, np.nan], "seats": [1.0, 2.0]})
    out = pre.transform(new)
    assert out["soc2_required"][0] == 1.0 and out["region_code"][0] == 0.0
    assert out[["soc2_required", "region_code"]].iloc[1].isna().all()
    assert pre.last_unseen_counts_ == {"soc2_required": 0, "region_code": 0}


def test_a_boolean_read_back_as_numbers_or_text_keeps_its_codes():
    pre = Preprocessor().fit(pd.DataFrame({"soc2_required": [True, False] * 10}))
    assert pre.boolean_columns_ == ["soc2_required"]
    # The MLflow input schema serves booleans as float64; a CSV may hold "True".
    for served in ([1.0, 0.0, np.nan], ["True", "false", None], [True, False, None]):
        out = pre.transform(pd.DataFrame({"soc2_required": pd.Series(served, dtype=object)}))
        assert out["soc2_required"].tolist()[:2] == [1.0, 0.0] and math.isnan(out["soc2_required"][2])
    assert pre.last_unseen_counts_ == {"soc2_required": 0}


def test_value_labels_read_booleans_as_yes_no_and_whole_numbers_without_decimals():
    assert value_labels(pd.Series([True, False, None], dtype=object)).tolist()[:2] == ["yes", "no"]
    assert value_labels(pd.Series([3.0, 2.5, np.nan])).tolist()[:2] == ["3", "2.5"]
    assert value_labels(pd.Series([3, 4], dtype="Int64")).tolist() == ["3", "4"]


def test_design_logs_heavy_tails_imputes_standardises_and_weights_one_hot():
    rng = np.random.default_rng(0)
    X = pd.DataFrame(
        {
            "employees": np.round(10 ** rng.normal(2.5, 0.8, 500)),
            "score": rng.normal(size=500),
            "industry": rng.choice(["a", "b"], 500, p=[0.7, 0.3]),
        }
    )
    X.loc[:9, "score"] = np.nan
    pre = Preprocessor(output="design", category_weight=0.5).fit(X)
    assert pre.log_columns_ == ["employees"]
    Z = pre.transform(X)
    assert list(Z.columns) == ["employees", "score", "industry=a", "industry=b", f"industry={OTHER}",
                               f"industry={MISSING}"]  # fmt: skip
    assert pre.design_sources() == ["employees", "score", *["industry"] * 4]
    # log1p then standardise: the giants no longer dominate.
    assert abs(Z["employees"].mean()) < 1e-9 and abs(Z["employees"].std(ddof=0) - 1) < 1e-9
    assert np.abs(Z["employees"]).max() < 5
    # Missing scores sit at the median.
    median_z = (pre.medians_["score"] - pre.means_["score"]) / pre.scales_["score"]
    np.testing.assert_allclose(Z["score"][:10], median_z)
    onehot = Z[[c for c in Z.columns if c.startswith("industry=")]]
    assert set(np.unique(onehot)) == {0.0, 0.5} and (onehot.sum(axis=1) == 0.5).all()
    np.testing.assert_array_equal(pre.design_from_codes(pre.encode(X)).to_numpy(), Z.to_numpy())


def test_design_puts_unseen_in_other_and_missing_in_missing():
    X = pd.DataFrame({"industry": ["a"] * 5 + ["b"] * 5, "n": np.arange(10.0)})
    pre = Preprocessor(output="design").fit(X)
    Z = pre.transform(pd.DataFrame({"industry": ["zzz", None], "n": [1.0, np.nan]}))
    assert Z.loc[0, f"industry={OTHER}"] == 1.0 and Z.loc[1, f"industry={MISSING}"] == 1.0
    assert Z.loc[1, "n"] == pytest.approx((4.5 - 4.5) / pre.scales_["n"])


@pytest.mark.parametrize("output", ["codes", "design"])
def test_json_round_trip_gives_bit_identical_transforms(output):
    rng = np.random.default_rng(1)
    X = pd.DataFrame(
        {
            "revenue": rng.lognormal(12, 2, 300),
            "industry": pd.Series(rng.choice(["x", "y", "z", "w"], 300), dtype="str"),
            "flag": rng.random(300) < 0.3,
            "code": rng.integers(1, 4, 300),
        }
    )
    X.loc[::7, "revenue"] = np.nan
    pre = Preprocessor(output=output, categorical=["code"], category_weight=1 / math.sqrt(2)).fit(X)
    restored = Preprocessor.from_dict(json.loads(json.dumps(pre.to_dict())))
    assert restored.get_params() == pre.get_params()
    np.testing.assert_array_equal(restored.transform(X).to_numpy(), pre.transform(X).to_numpy())
    assert list(restored.get_feature_names_out()) == list(pre.get_feature_names_out())


def test_from_dict_refuses_another_format():
    d = Preprocessor().fit(_frame()).to_dict()
    with pytest.raises(ValueError, match="icpkit.Preprocessor/1"):
        Preprocessor.from_dict({**d, "format": "icpkit.FeatureEncoder/1"})


def test_missing_column_is_a_clear_error_and_extra_columns_are_ignored():
    pre = Preprocessor().fit(_frame())
    with pytest.raises(FeatureMismatchError, match="'employees'"):
        pre.transform(pd.DataFrame({"industry": ["a"]}))
    out = pre.transform(pd.DataFrame({"account_id": ["A1"], "employees": [5.0], "industry": ["a"]}))
    assert list(out.columns) == ["employees", "industry"]


BAD_PARAMS = [{"output": "1hot"}, {"min_category_count": 0}, {"category_weight": -1}, {"categorical": ["z"]}]


@pytest.mark.parametrize("params", BAD_PARAMS)
def test_invalid_parameters_fail_at_fit(params):
    with pytest.raises(ValueError):
        Preprocessor(**params).fit(_frame())


def test_is_heavy_tailed_flags_counts_not_symmetric_or_negative_values():
    rng = np.random.default_rng(0)
    assert is_heavy_tailed(rng.lognormal(3, 1.5, 1000))
    assert not is_heavy_tailed(rng.normal(size=1000))
    assert not is_heavy_tailed(rng.lognormal(3, 1.5, 1000) - 5)


_LABEL_COLUMNS = {
    "text": pd.Series(["b", None, "a", "b"], dtype="str"),
    "float": pd.Series([1.5, np.nan, 3.0, 1.5]),
    "int": pd.Series([3, 1, 3, 2]),
    "bool": pd.Series([True, False, True, True]),
    "nullable boolean": pd.Series([True, None, False, True], dtype="boolean"),
    "Int64": pd.Series([4, None, 4, 0], dtype="Int64"),
    "category": pd.Series(["x", "y", None, "x"], dtype="category"),
    "dates": pd.Series(pd.to_datetime(["2024-01-01", None, "2024-02-01", "2024-01-01"])),
    "mixed object": pd.Series([1, True, "1", None], dtype=object),  # labelled element by element
}


@pytest.mark.parametrize("name", list(_LABEL_COLUMNS))
def test_labels_made_once_per_distinct_value_equal_the_element_wise_labels(name):
    s = _LABEL_COLUMNS[name]
    pd.testing.assert_series_equal(value_labels(s), _value_labels(s))
    pd.testing.assert_series_equal(category_labels(s), _text_labels(s))
    assert value_labels(s).isna().tolist() == s.isna().tolist()
