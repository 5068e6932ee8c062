"""Property-based tests of the preprocessor on random frames: NaN, inf, empty text and unicode.

Whatever the cells, a fitted encoder gives float64 codes in range (NaN only where missing), a
finite design (the logistic model and K-means take no NaN or inf), the same output after a JSON round trip, and counts
every value it never saw.
"""

import json

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from icpkit.models.preprocessing import Preprocessor

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

TEXT = st.one_of(
    st.none(),
    st.sampled_from(["", " ", "N/A", "nan", "inf", "Köln", "🙂", "__other__", "__missing__", "0", "1.5"]),
    st.text(max_size=4),
)
#: CRM magnitudes (revenue in cents stays far below 1e15), plus NaN and both infinities.
NUMBER = st.one_of(
    st.floats(min_value=-1e15, max_value=1e15),
    st.sampled_from([np.nan, np.inf, -np.inf, 0.0]),
)


@st.composite
def frames(draw) -> pd.DataFrame:
    n = draw(st.integers(min_value=1, max_value=12))
    cols = {}
    for i in range(draw(st.integers(min_value=1, max_value=4))):
        if draw(st.booleans()):
            cols[f"num{i}"] = pd.Series(draw(st.lists(NUMBER, min_size=n, max_size=n)), dtype="float64")
        else:
            cols[f"cat{i}"] = pd.Series(draw(st.lists(TEXT, min_size=n, max_size=n)), dtype="str")
    return pd.DataFrame(cols)


@SETTINGS
@given(frames(), frames(), st.integers(min_value=1, max_value=3))
def test_properties_codes_in_range_design_finite_and_json_round_trip(train, other, min_count):
    pre = Preprocessor(output="design", min_category_count=min_count).fit(train)
    codes = pre.encode(train)
    assert list(codes.columns) == pre.columns_ and (codes.dtypes == "float64").all()
    for col, cats in pre.categories_.items():
        missing = train[col].isna()  # missing stays NaN (LightGBM's missing); everything else is coded
        assert codes[col][missing].isna().all() and codes[col][~missing].between(0, len(cats) - 1).all()
    design = pre.transform(train)
    assert np.isfinite(design.to_numpy()).all(), design
    again = Preprocessor.from_dict(json.loads(json.dumps(pre.to_dict())))
    pd.testing.assert_frame_equal(again.transform(train), design)
    # A frame of other values (the same column names where they match) is encoded without error.
    served = other.reindex(columns=train.columns)
    for col in pre.categories_:
        served[col] = served[col].astype("str")
    assert np.isfinite(pre.transform(served).to_numpy()).all()
    assert set(pre.last_unseen_counts_) == set(pre.categories_)
    assert all(0 <= v <= len(served) for v in pre.last_unseen_counts_.values())
