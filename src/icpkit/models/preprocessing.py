"""One preprocessor for every model: a raw attribute frame in, codes or a design matrix out.

:class:`Preprocessor` is a scikit-learn transformer (``fit`` returns ``self``, learned attributes
end in ``_``, checked with ``sklearn.utils.estimator_checks``) saved as JSON, never pickled. One
``fit`` learns everything; ``output`` chooses what :meth:`~Preprocessor.transform` returns:

- ``"codes"``: the tree input (LightGBM, the additive scorecards). Numeric columns as float64;
  categorical columns as integer codes over the kept values (most frequent first), with values
  seen fewer than ``min_category_count`` times, beyond ``max_categories`` or never seen pooled
  into the last code, ``__other__``; missing stays NaN.
- ``"design"``: the linear and distance input (logistic regression, K-means). Numeric columns:
  heavy-tailed non-negative ones (skewness > 2: counts, money) as log1p, then median-imputed and
  standardised; categorical columns one-hot over the kept values plus ``__other__`` and
  ``__missing__``, each indicator times ``category_weight``.

Categorical are non-numeric columns, booleans (labelled ``yes`` / ``no``) and the columns listed
in ``categorical`` (numeric codes such as a region number). The design is a function of the codes
(:meth:`~Preprocessor.design_from_codes`), so a model can encode once and derive both.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from icpkit.errors import FeatureMismatchError

FORMAT = "icpkit.Preprocessor/1"
OTHER = "__other__"
MISSING = "__missing__"
#: Pooled (rare) training values remembered per column, so they are not counted as unseen.
MAX_POOLED = 1000
#: Skewness above which a non-negative numeric column enters the design as log1p.
HEAVY_TAIL_SKEW = 2.0


class Preprocessor(TransformerMixin, BaseEstimator):
    """Impute, scale and encode a raw attribute frame; saved as JSON.

    Parameters
    ----------
    output : {"codes", "design"}, default="codes"
        What :meth:`transform` returns (see the module docstring).
    categorical : sequence of str, optional
        Numeric columns to treat as categories (non-numeric and boolean columns always are).
    min_category_count : int, default=5
        Values with fewer training rows are pooled into ``__other__``.
    max_categories : int, optional
        Keep at most this many values per column (the most frequent); the rest are pooled.
    category_weight : float, default=1.0
        Scale of each one-hot indicator in the design. ``1 / sqrt(2)`` makes a change of
        category move a point by 1, as far as a 1 sd change of a numeric column (K-means).

    Attributes
    ----------
    n_features_in_ : int
        Number of input columns seen in ``fit``.
    feature_names_in_ : ndarray of str
        Input column names (only when ``fit`` got a frame with string column names).
    numeric_columns_ : list of str
        Columns kept as numbers.
    categories_ : dict of str to list of str
        Categorical column -> kept values, most frequent first, ``__other__`` last (the code of a
        value is its position).
    boolean_columns_ : list of str
        Categorical columns that were booleans (``yes`` / ``no``, also when read back as 1 / 0).
    pooled_ : dict of str to list of str
        Categorical column -> training values pooled into ``__other__`` (at most ``MAX_POOLED``).
    log_columns_ : list of str
        Numeric columns that enter the design as log1p.
    medians_, means_, scales_ : dict of str to float
        Numeric column -> median (imputation), mean and sd (standardisation) in design units.
    last_unseen_counts_ : dict of str to int
        Set by each transform: categorical column -> rows whose value was never seen in training.
    """

    def __init__(
        self,
        output: Literal["codes", "design"] = "codes",
        categorical: Sequence[str] | None = None,
        min_category_count: int = 5,
        max_categories: int | None = None,
        category_weight: float = 1.0,
    ) -> None:
        self.output = output
        self.categorical = categorical
        self.min_category_count = min_category_count
        self.max_categories = max_categories
        self.category_weight = category_weight

    # ------------------------------------------------------------------------------ fitted views

    @property
    def columns_(self) -> list[str]:
        """Columns of the codes output: numeric columns first, then categorical ones."""
        return [*self.numeric_columns_, *self.categories_]

    @property
    def categorical_columns_(self) -> list[str]:
        """Columns encoded as integer codes."""
        return list(self.categories_)

    # ------------------------------------------------------------------------------------ fitting

    def fit(self, X: Any, y: Any = None) -> Preprocessor:  # noqa: ARG002 - sklearn's fit(X, y=None) signature
        """Learn column kinds, kept values and the design's log / median / mean / sd.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)
            Raw attributes, one row per entity.
        y : ignored

        Returns
        -------
        Preprocessor
            ``self``.

        Raises
        ------
        ValueError
            On an invalid parameter, no rows or columns, or a ``categorical`` column not in ``X``.
        """
        self._check_params()
        frame = _as_frame(X, min_rows=1)
        self.n_features_in_ = frame.shape[1]
        if _has_str_names(X):
            self.feature_names_in_ = np.asarray(frame.columns, dtype=object)
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        declared = [str(c) for c in (self.categorical or [])]
        unknown = sorted(set(declared) - set(frame.columns))
        if unknown:
            raise ValueError(f"categorical columns not in the input: {unknown}")
        self.numeric_columns_, self.categories_, self.pooled_ = [], {}, {}
        self.boolean_columns_ = [c for c in frame.columns if _is_boolean(frame[c])]
        for col in frame.columns:
            s = frame[col]
            if col in declared or not _is_number(s):
                kept, pooled = self._levels(value_labels(s))
                self.categories_[col] = [*kept, OTHER]
                self.pooled_[col] = pooled
            else:
                self.numeric_columns_.append(col)
        self._fit_design(self.encode(frame))
        return self

    def _check_params(self) -> None:
        if self.output not in ("codes", "design"):
            raise ValueError(f"output must be 'codes' or 'design', got {self.output!r}")
        if not (isinstance(self.min_category_count, int | np.integer) and self.min_category_count >= 1):
            raise ValueError(f"min_category_count must be an integer >= 1, got {self.min_category_count!r}")
        if self.max_categories is not None and not self.max_categories >= 1:
            raise ValueError(f"max_categories must be None or >= 1, got {self.max_categories!r}")
        if not (isinstance(self.category_weight, int | float) and self.category_weight > 0):
            raise ValueError(f"category_weight must be a positive number, got {self.category_weight!r}")

    def _levels(self, labels: pd.Series) -> tuple[list[str], list[str]]:
        counts = labels.dropna().value_counts()
        # Order by frequency then name so codes are stable for the same data.
        counts = counts.sort_index().sort_values(ascending=False, kind="stable")
        kept = [str(v) for v, n in counts.items() if n >= self.min_category_count]
        if self.max_categories is not None:
            kept = kept[: self.max_categories]
        chosen = set(kept)
        pooled = [str(v) for v in counts.index if v not in chosen][:MAX_POOLED]
        return kept, pooled

    def _fit_design(self, codes: pd.DataFrame) -> None:
        num = codes[self.numeric_columns_].to_numpy(dtype=float)
        self.log_columns_ = [c for j, c in enumerate(self.numeric_columns_) if is_heavy_tailed(num[:, j])]
        num = self._numeric_design_units(num)
        self.medians_, self.means_, self.scales_ = {}, {}, {}
        for j, col in enumerate(self.numeric_columns_):
            x = num[:, j]
            finite = x[np.isfinite(x)]
            median = float(np.median(finite)) if len(finite) else 0.0
            filled = np.where(np.isfinite(x), x, median)
            sd = float(filled.std())
            self.medians_[col] = median
            self.means_[col] = float(filled.mean())
            self.scales_[col] = sd if sd > 0 else 1.0

    def _numeric_design_units(self, num: np.ndarray) -> np.ndarray:
        """log1p of the heavy-tailed columns (negative values clipped to 0); others unchanged."""
        out = num.copy()
        logged = set(self.log_columns_)
        for j, col in enumerate(self.numeric_columns_):
            if col in logged:
                out[:, j] = np.log1p(np.clip(out[:, j], 0, None))
        return out

    # --------------------------------------------------------------------------------- transforms

    def transform(self, X: Any) -> pd.DataFrame:
        """Codes or design of ``X``, per ``output``; counts unseen values in ``last_unseen_counts_``.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)
            Frames are read by column name (extra columns are ignored); arrays by position.

        Returns
        -------
        DataFrame
            Columns :meth:`get_feature_names_out`, same index as ``X``, float64.

        Raises
        ------
        FeatureMismatchError
            When fitted columns are missing from ``X`` (or an array has the wrong width).
        """
        codes = self.encode(X)
        return codes if self.output == "codes" else self.design_from_codes(codes)

    def encode(self, X: Any) -> pd.DataFrame:
        """The codes of ``X`` whatever ``output`` is (see :meth:`transform`)."""
        check_is_fitted(self, "categories_")
        frame = self._input_frame(X)
        out: dict[str, np.ndarray] = {}
        for col in self.numeric_columns_:
            out[col] = pd.to_numeric(frame[col], errors="coerce").astype("float64").to_numpy()
        unseen: dict[str, int] = {}
        for col, cats in self.categories_.items():
            s = frame[col]
            # A flag may come back as 1.0 / 0.0 or "True" (a served frame): still yes / no.
            out[col], unseen[col] = category_codes(s, cats, self.pooled_[col], col in self.boolean_columns_)
        self.last_unseen_counts_ = unseen
        return pd.DataFrame(out, columns=self.columns_, index=frame.index)

    def design_from_codes(self, codes: pd.DataFrame) -> pd.DataFrame:
        """The design of an already encoded frame (the output of :meth:`encode`)."""
        check_is_fitted(self, "categories_")
        return pd.DataFrame(self.design_array(codes), columns=self._design_names(), index=codes.index)

    def design_array(self, codes: pd.DataFrame, dtype: type = np.float64) -> np.ndarray:
        """:meth:`design_from_codes` as a bare array (the logistic model's hot path).

        ``dtype`` float32 halves the array (the segments' K-means on a million accounts).
        """
        n_num = len(self.numeric_columns_)
        width = n_num + sum(len(cats) + 1 for cats in self.categories_.values())
        # One preallocated block: no per-part arrays to stack (memory stays ~1x the output).
        out = np.zeros((len(codes), width), dtype=dtype)
        for j, col in enumerate(self.numeric_columns_):
            x = codes[col].to_numpy(dtype=float)
            if col in self.log_columns_:
                x = np.log1p(np.clip(x, 0, None))
            x = np.where(np.isfinite(x), x, self.medians_[col])
            out[:, j] = (x - self.means_[col]) / self.scales_[col]
        start, rows = n_num, np.arange(len(codes))
        for col, cats in self.categories_.items():
            c = codes[col].to_numpy(dtype=float)
            idx = np.where(np.isnan(c), len(cats), c).astype(np.int64)
            out[rows, start + idx] = self.category_weight
            start += len(cats) + 1
        return out

    def _design_names(self) -> list[str]:
        names = list(self.numeric_columns_)
        for col, cats in self.categories_.items():
            names += [f"{col}={v}" for v in cats] + [f"{col}={MISSING}"]
        return names

    def design_sources(self) -> list[str]:
        """The input column of each design column (to sum contributions back per attribute)."""
        check_is_fitted(self, "categories_")
        sources = list(self.numeric_columns_)
        for col, cats in self.categories_.items():
            sources += [col] * (len(cats) + 1)
        return sources

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Output column names of :meth:`transform`.

        Parameters
        ----------
        input_features : array-like of str, optional
            Must equal the fitted input names when given (scikit-learn convention).

        Returns
        -------
        ndarray of str
        """
        check_is_fitted(self, "categories_")
        if input_features is not None and list(input_features) != self._input_names():
            raise ValueError(f"input_features {list(input_features)} differ from the fitted columns")
        names = self.columns_ if self.output == "codes" else self._design_names()
        return np.asarray(names, dtype=object)

    def _input_names(self) -> list[str]:
        if hasattr(self, "feature_names_in_"):
            return [str(c) for c in self.feature_names_in_]
        return [f"x{i}" for i in range(self.n_features_in_)]

    def _input_frame(self, X: Any) -> pd.DataFrame:
        names = self._input_names()
        if isinstance(X, pd.DataFrame) and hasattr(self, "feature_names_in_"):
            frame = _as_frame(X)
            missing = [c for c in names if c not in frame.columns]
            if missing:
                raise FeatureMismatchError(
                    f"feature columns missing from the input: {missing} (the model was fitted on {names})"
                )
            return frame
        frame = _as_frame(X)
        if frame.shape[1] != self.n_features_in_:
            raise FeatureMismatchError(
                f"X has {frame.shape[1]} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input."
            )
        return frame.set_axis(names, axis=1)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.input_tags.string = True
        tags.input_tags.categorical = True
        return tags

    # -------------------------------------------------------------------------------- persistence

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe parameters and fitted state (floats round-trip exactly through JSON)."""
        check_is_fitted(self, "categories_")
        return {
            "format": FORMAT,
            "params": {
                "output": self.output,
                "categorical": None if self.categorical is None else [str(c) for c in self.categorical],
                "min_category_count": int(self.min_category_count),
                "max_categories": None if self.max_categories is None else int(self.max_categories),
                "category_weight": float(self.category_weight),
            },
            "input_columns": self._input_names(),
            "named_input": hasattr(self, "feature_names_in_"),
            "numeric_columns": list(self.numeric_columns_),
            "boolean_columns": list(self.boolean_columns_),
            "categories": {k: list(v) for k, v in self.categories_.items()},
            "pooled": {k: list(v) for k, v in self.pooled_.items()},
            "log_columns": list(self.log_columns_),
            "medians": dict(self.medians_),
            "means": dict(self.means_),
            "scales": dict(self.scales_),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preprocessor:
        """Inverse of :meth:`to_dict`.

        Raises
        ------
        ValueError
            When ``d`` was written by another format version.
        """
        if d.get("format") != FORMAT:
            raise ValueError(f"not a saved preprocessor of format {FORMAT!r}: {d.get('format')!r}")
        pre = cls(**d["params"])
        pre.n_features_in_ = len(d["input_columns"])
        if d["named_input"]:
            pre.feature_names_in_ = np.asarray(d["input_columns"], dtype=object)
        pre.numeric_columns_ = list(d["numeric_columns"])
        pre.boolean_columns_ = list(d["boolean_columns"])
        pre.categories_ = {k: list(v) for k, v in d["categories"].items()}
        pre.pooled_ = {k: list(v) for k, v in d["pooled"].items()}
        pre.log_columns_ = list(d["log_columns"])
        pre.medians_ = {k: float(v) for k, v in d["medians"].items()}
        pre.means_ = {k: float(v) for k, v in d["means"].items()}
        pre.scales_ = {k: float(v) for k, v in d["scales"].items()}
        return pre


# ---------------------------------------------------------------------------------------- helpers


def is_heavy_tailed(x: np.ndarray) -> bool:
    """Non-negative, non-constant values with skewness above 2 (counts, money): model them in log."""
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    if len(x) < 3 or x.min() < 0 or x.std() == 0:
        return False
    return float(((x - x.mean()) ** 3).mean() / x.std() ** 3) > HEAVY_TAIL_SKEW


def per_distinct_value(
    s: pd.Series, label: Callable[[pd.Series], pd.Series], missing: Any = np.nan
) -> np.ndarray | None:
    """``label(s)`` computed once per distinct value of ``s`` and spread back (``missing`` where NA).

    Element-wise text conversion of a million accounts' column costs seconds in Python; the
    column has a handful of distinct values. None for an ``object`` column, whose distinct
    values hashing would merge (``1 == 1.0 == True``): label that one element by element.
    """
    if s.dtype == object:
        return None
    codes, uniques = pd.factorize(s)
    few = np.asarray(label(pd.Series(uniques)), dtype=object)
    return np.append(few, missing)[codes]


def value_labels(s: pd.Series) -> pd.Series:
    """String label of each value, missing kept as NaN.

    Booleans read ``yes`` / ``no``; integer-valued numbers read without a decimal point (``3``,
    whether stored as 3 or 3.0), so a numeric code labels alike in an int or a float column.
    """
    spread = per_distinct_value(s, _value_labels)
    return _value_labels(s) if spread is None else pd.Series(spread, index=s.index, dtype=object)


def _value_labels(s: pd.Series) -> pd.Series:
    missing = s.isna().to_numpy()
    if _is_boolean(s):
        out = np.where(s.fillna(False).astype(bool).to_numpy(), "yes", "no").astype(object)
    elif pd.api.types.is_numeric_dtype(s):
        v = s.astype("float64").to_numpy()
        whole = np.isfinite(v) & (v == np.round(v)) & (np.abs(v) < 2**53)
        out = s.astype(str).to_numpy(dtype=object)
        out[whole] = v[whole].astype(np.int64).astype(str)
    else:
        out = s.astype(str).to_numpy(dtype=object)
    out[missing] = np.nan
    return pd.Series(out, index=s.index, dtype=object)


def yes_no_labels(s: pd.Series) -> pd.Series:
    """``yes`` / ``no`` for a flag however it is stored: booleans, 1 / 0, "True" / "false"."""
    labels = value_labels(s)
    lower = labels.str.lower()
    number = pd.to_numeric(s, errors="coerce") if not _is_boolean(s) else pd.Series(np.nan, index=s.index)
    labels = labels.mask(lower.isin(["true", "yes"]) | (number == 1), "yes")
    return labels.mask(lower.isin(["false", "no"]) | (number == 0), "no")


def category_codes(s: pd.Series, cats: list[str], pooled: list[str], boolean: bool) -> tuple[np.ndarray, int]:
    """Codes (float, NaN = missing) of a raw column over ``cats`` and how many rows were never seen.

    The labels are a function of each value alone (given the column's dtype), so for columns whose
    distinct values hash as they label (text, numbers, booleans) the column is factorised once and
    only its distinct values are labelled and looked up: the same codes as labelling every row
    (:func:`_codes`), in a fraction of the time. Object columns (where ``1``, ``1.0`` and ``True``
    are one hash key but three labels) take the row-by-row path.
    """
    if not _factorisable(s) or len(set(cats)) != len(cats):
        return _codes(yes_no_labels(s) if boolean else value_labels(s), cats, pooled)
    rows, uniques = pd.factorize(s)
    distinct = pd.Series(uniques, dtype=s.dtype)
    labels = yes_no_labels(distinct) if boolean else value_labels(distinct)
    lookup = pd.Index(cats, dtype=object)
    code = lookup.get_indexer(labels.to_numpy(dtype=object)).astype("float64")
    outside = code < 0
    code[outside] = cats.index(OTHER)
    unseen = outside & ~labels.isin(pooled).to_numpy() if outside.any() else outside
    present = rows >= 0
    codes = np.full(len(s), np.nan)
    codes[present] = code[rows[present]]
    n_unseen = int(np.bincount(rows[present], minlength=len(code))[unseen].sum()) if unseen.any() else 0
    return codes, n_unseen


def _factorisable(s: pd.Series) -> bool:
    """Whether equal hash keys of ``s`` always get equal labels (see :func:`category_codes`)."""
    dtype = s.dtype
    if isinstance(dtype, pd.StringDtype) or pd.api.types.is_bool_dtype(dtype):
        return True
    if pd.api.types.is_object_dtype(dtype) or isinstance(dtype, pd.CategoricalDtype):
        return False
    return bool(pd.api.types.is_numeric_dtype(dtype))


def _codes(labels: pd.Series, cats: list[str], pooled: list[str]) -> tuple[np.ndarray, int]:
    lookup = {v: i for i, v in enumerate(cats)}
    missing = labels.isna().to_numpy()
    codes = labels.map(lookup).astype("float64").to_numpy(copy=True)
    outside = np.isnan(codes) & ~missing
    codes[outside] = lookup[OTHER]
    codes[missing] = np.nan
    # Values pooled in training are known, only rare; the rest were never seen.
    n_unseen = int((outside & ~labels.isin(pooled).to_numpy()).sum()) if outside.any() else 0
    return codes, n_unseen


def _is_boolean(s: pd.Series) -> bool:
    if pd.api.types.is_bool_dtype(s):
        return True
    return s.dtype == object and pd.api.types.infer_dtype(s, skipna=True) == "boolean"


def _is_number(s: pd.Series) -> bool:
    return bool(pd.api.types.is_numeric_dtype(s) and not _is_boolean(s))


def _has_str_names(X: Any) -> bool:
    return isinstance(X, pd.DataFrame) and all(isinstance(c, str) for c in X.columns)


def _as_frame(X: Any, min_rows: int = 0) -> pd.DataFrame:
    """``X`` as a frame with string column names, after scikit-learn's input rules."""
    if sp.issparse(X):
        raise TypeError("sparse input is not supported: pass a dense frame or array")
    if isinstance(X, pd.DataFrame):
        frame = X if _has_str_names(X) else X.set_axis([f"x{i}" for i in range(X.shape[1])], axis=1)
    else:
        arr = np.asarray(X)
        if arr.ndim != 2:
            raise ValueError(
                f"Expected 2D array, got {arr.ndim}D array instead. Reshape your data with "
                "array.reshape(-1, 1) for a single feature or array.reshape(1, -1) for a single sample."
            )
        frame = pd.DataFrame(arr, columns=[f"x{i}" for i in range(arr.shape[1])])
    if any(pd.api.types.is_complex_dtype(t) for t in frame.dtypes):
        raise ValueError("Complex data not supported")
    # Messages as scikit-learn words them (its estimator checks match on them).
    n, m = frame.shape
    if n < min_rows:
        raise ValueError(
            f"Found array with {n} sample(s) (shape={frame.shape}) while a minimum of {min_rows} is required."
        )
    if m < 1:
        raise ValueError(
            f"Found array with 0 feature(s) (shape={frame.shape}) while a minimum of 1 is required."
        )
    return frame
