"""Feature encoding that survives MLflow: numbers as float64, categoricals as integer codes.

pandas ``category`` columns do not survive MLflow signatures and pandas 3 text columns (``str``)
are rejected by LightGBM, so categoricals are encoded here as integer codes with a JSON mapping
stored next to the model. Fitted on training rows only: no test row shapes an encoding.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

OTHER = "__other__"


@dataclass
class FeatureEncoder:
    """Maps a raw feature frame to a float64 frame (categoricals as codes, missing as NaN)."""

    #: Categories with fewer training rows than this are pooled into ``__other__``.
    min_category_count: int = 5
    numeric_columns_: list[str] = field(default_factory=list)
    categories_: dict[str, list[str]] = field(default_factory=dict)

    @property
    def columns_(self) -> list[str]:
        return [*self.numeric_columns_, *self.categories_]

    @property
    def categorical_columns_(self) -> list[str]:
        return list(self.categories_)

    def fit(self, X: pd.DataFrame) -> FeatureEncoder:
        self.numeric_columns_ = []
        self.categories_ = {}
        for col in X.columns:
            s = X[col]
            if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
                self.numeric_columns_.append(col)
            else:
                counts = s.dropna().astype(str).value_counts()
                # Order by frequency then name so codes are stable for the same data.
                counts = counts.sort_index().sort_values(ascending=False, kind="stable")
                kept = [str(v) for v, n in counts.items() if n >= self.min_category_count]
                self.categories_[col] = [*kept, OTHER]
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        missing = [c for c in self.columns_ if c not in X.columns]
        if missing:
            raise ValueError(f"feature columns missing from the input: {missing}")
        out = {}
        for col in self.numeric_columns_:
            out[col] = pd.to_numeric(X[col], errors="coerce").astype("float64").to_numpy()
        for col, cats in self.categories_.items():
            lookup = {v: i for i, v in enumerate(cats)}
            other = lookup[OTHER]
            codes = _vector_codes(X[col], lookup, other)
            out[col] = codes
        return pd.DataFrame(out, columns=self.columns_, index=X.index)

    def fit_transform(self, X: pd.DataFrame) -> pd.DataFrame:
        return self.fit(X).transform(X)

    def decode(self, column: str, code: float) -> str | None:
        """The category a code stands for (``None`` for missing)."""
        if np.isnan(code):
            return None
        return self.categories_[column][int(code)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": "icpkit.FeatureEncoder/1",
            "min_category_count": self.min_category_count,
            "numeric_columns": self.numeric_columns_,
            "categories": self.categories_,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureEncoder:
        enc = cls(min_category_count=d["min_category_count"])
        enc.numeric_columns_ = list(d["numeric_columns"])
        enc.categories_ = {k: list(v) for k, v in d["categories"].items()}
        return enc


def _vector_codes(s: pd.Series, lookup: dict[str, int], other: int) -> np.ndarray:
    values = s.astype("str")
    mapped = values.map(lookup)
    codes = mapped.astype("float64").to_numpy(copy=True)
    codes[np.isnan(codes)] = other
    codes[s.isna().to_numpy()] = np.nan
    return codes
