"""An exact, readable points scorecard distilled from an additive LightGBM model.

LightGBM is trained with ``interaction_constraints=[[0], [1], ...]`` so every tree splits on a single
feature. The model is then additive, ``raw = base + sum_f g_f(x_f)``, and each ``g_f`` is a step
function whose steps are the split thresholds on ``f``. Reading the tree dump turns every ``g_f`` into
a small lookup table (bins for numeric features, codes for categorical ones), which reproduces the
booster's raw score exactly and needs no booster, no pickle and no LightGBM to score.

Points rescale the tables so a salesperson can read them: each feature's worst value gets 0 points
and the best possible account gets 100.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pyarrow as pa
from scipy.stats import spearmanr

__all__ = ["AdditiveScorecard", "FeatureTable", "take_text"]

_FORMAT = "icpkit.additive_scorecard"
_FORMAT_VERSION = 2
# LightGBM's kZeroThreshold (declared as the float literal 1e-35f, hence the float32 round trip):
# |x| <= this is read as 0.0 at prediction and counts as zero for missing_type "Zero".
_ZERO_THRESHOLD = float(np.float32(1e-35))
_EARLY_STOPPING_ROUNDS = 30
_MISSING_LABEL = "missing"
_OTHER_LABEL = "other/missing"


@dataclass
class FeatureTable:
    """The distilled per-feature function ``g_f`` as a lookup table.

    Numeric: ``thresholds`` sorted ascending; bin ``i`` is ``(thresholds[i-1], thresholds[i]]``
    (LightGBM sends ``x <= threshold`` left), so there are ``len(thresholds) + 1`` ``bin_values``.
    Categorical: ``category_values[i]`` is ``g_f(categories[i])``; NaN, negative and unseen codes all get
    ``missing_value`` (LightGBM sends them right at every categorical split).
    """

    feature: str
    categorical: bool
    thresholds: list[float] = field(default_factory=list)
    bin_values: list[float] = field(default_factory=list)
    categories: list[int] = field(default_factory=list)
    category_values: list[float] = field(default_factory=list)
    missing_value: float = 0.0
    zero_as_missing: bool = False

    def entries(self) -> list[float]:
        """Every value ``g_f`` can take."""
        values = self.category_values if self.categorical else self.bin_values
        return [*values, self.missing_value]

    def entry_index(self, values: np.ndarray) -> np.ndarray:
        """Index into :meth:`entries` of each raw value (the last index is missing / unseen)."""
        vals = np.asarray(values, dtype=float)
        if self.categorical:
            missing = len(self.categories)
            out = np.full(vals.shape, missing, dtype=np.int64)
            codes = _category_codes(vals)
            if self.categories:
                cats = np.asarray(self.categories, dtype=np.int64)
                order = np.argsort(cats)
                pos = np.clip(np.searchsorted(cats[order], codes), 0, len(cats) - 1)
                hit = (codes >= 0) & (cats[order][pos] == codes)
                out[hit] = order[pos[hit]]
            return out
        missing_mask = np.isnan(vals)
        if self.zero_as_missing:
            missing_mask |= np.abs(vals) <= _ZERO_THRESHOLD
        idx = np.searchsorted(np.asarray(self.thresholds, dtype=float), vals, side="left")
        return np.where(missing_mask, len(self.bin_values), idx).astype(np.int64)

    def lookup(self, values: np.ndarray) -> np.ndarray:
        """``g_f`` of raw column values (float array, NaN = missing)."""
        vals = np.asarray(values, dtype=float)
        if self.categorical:
            out = np.full(vals.shape, self.missing_value)
            codes = _category_codes(vals)
            if self.categories:
                cats = np.asarray(self.categories, dtype=np.int64)
                order = np.argsort(cats)
                pos = np.clip(np.searchsorted(cats[order], codes), 0, len(cats) - 1)
                hit = (codes >= 0) & (cats[order][pos] == codes)
                out[hit] = np.asarray(self.category_values)[order][pos[hit]]
            return out
        missing = np.isnan(vals)
        if self.zero_as_missing:
            missing |= np.abs(vals) <= _ZERO_THRESHOLD
        idx = np.searchsorted(np.asarray(self.thresholds, dtype=float), vals, side="left")
        out = np.asarray(self.bin_values, dtype=float)[np.where(missing, 0, idx)]
        return np.where(missing, self.missing_value, out)


def _join_choices(chosen: np.ndarray, texts: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """Per row, the texts of its chosen entries (``-1`` = none) joined with ``"; "``, in order (``str``)."""
    base = len(texts) + 1
    if base ** chosen.shape[1] < 2**62:
        key = np.zeros(len(chosen), dtype=np.int64)
        for k in range(chosen.shape[1]):
            key = key * base + (chosen[:, k] + 1)
        row_kind, kinds = pd.factorize(key)
        digits = np.empty((len(kinds), chosen.shape[1]), dtype=np.int64)
        rest = np.asarray(kinds, dtype=np.int64)
        for k in range(chosen.shape[1] - 1, -1, -1):
            rest, digits[:, k] = np.divmod(rest, base)
        distinct = digits - 1
    else:
        distinct, row_kind = np.unique(chosen, axis=0, return_inverse=True)
        row_kind = row_kind.reshape(-1)
    return take_text(["; ".join(texts[j] for j in choice if j >= 0) for choice in distinct.tolist()], row_kind)


def take_text(values: list[str], index: np.ndarray) -> Any:
    """``values[index]`` as a text column, taken in Arrow (no Python string per row).

    pandas >= 3: a ``str`` array, the same column pandas infers from the object array
    ``np.asarray(values, dtype=object)[index]``; older pandas: that object array.
    """
    taken = pa.array(values, type=pa.large_string()).take(pa.array(np.asarray(index, dtype=np.int64)))
    if int(pd.__version__.split(".")[0]) >= 3:
        return pd.array(taken, dtype="str")
    return taken.to_numpy(zero_copy_only=False).astype(object)


def _category_codes(values: np.ndarray) -> np.ndarray:
    """Integer codes as LightGBM reads them (truncation); NaN becomes -1, i.e. missing."""
    with np.errstate(invalid="ignore"):
        return np.where(np.isnan(values), -1, np.trunc(np.nan_to_num(values, nan=-1.0))).astype(np.int64)


def _split_features(node: dict[str, Any], found: set[int]) -> set[int]:
    if "split_feature" in node:
        found.add(int(node["split_feature"]))
        _split_features(node["left_child"], found)
        _split_features(node["right_child"], found)
    return found


def _eval_tree(node: dict[str, Any], values: np.ndarray) -> np.ndarray:
    """Leaf value reached by each value, mirroring LightGBM's Numerical/CategoricalDecision."""
    if "split_feature" not in node:
        return np.full(values.shape, float(node["leaf_value"]))
    if node["decision_type"] == "==":
        codes = _category_codes(values)
        cats = np.asarray([int(c) for c in str(node["threshold"]).split("||")], dtype=np.int64)
        go_left = (codes >= 0) & np.isin(codes, cats)
    else:
        missing_type = node["missing_type"]
        vals = values
        if missing_type != "NaN":
            # LightGBM reads NaN as 0.0 unless the feature had NaN in training.
            vals = np.where(np.isnan(vals), 0.0, vals)
        if missing_type == "Zero":
            missing = np.abs(vals) <= _ZERO_THRESHOLD
        elif missing_type == "NaN":
            missing = np.isnan(vals)
        else:
            missing = np.zeros(vals.shape, dtype=bool)
        with np.errstate(invalid="ignore"):
            go_left = np.where(missing, bool(node["default_left"]), vals <= float(node["threshold"]))
    return np.where(go_left, _eval_tree(node["left_child"], values), _eval_tree(node["right_child"], values))


def _collect_splits(node: dict[str, Any], thresholds: set[float], types: set[str]) -> None:
    if "split_feature" in node:
        thresholds.add(float(node["threshold"]))
        types.add(str(node["missing_type"]))
        _collect_splits(node["left_child"], thresholds, types)
        _collect_splits(node["right_child"], thresholds, types)


def _distill_numeric(name: str, trees: list[dict[str, Any]]) -> FeatureTable:
    thresholds: set[float] = set()
    types: set[str] = set()
    for tree in trees:
        _collect_splits(tree, thresholds, types)
    cuts = sorted(thresholds)
    # Each bin is right-closed, so its upper threshold is a point inside it; the last bin is open.
    reps = [*cuts, cuts[-1] + max(1.0, abs(cuts[-1]))] if cuts else [0.0]
    grid = np.asarray([*reps, np.nan], dtype=float)
    total = np.zeros(grid.shape)
    for tree in trees:
        total += _eval_tree(tree, grid)
    bins = total[:-1].tolist()
    # Drop thresholds with equal values either side: fewer rows in the table, same function.
    kept_cuts, kept_bins = [], [bins[0]]
    for cut, value in zip(cuts, bins[1:], strict=True):
        if value != kept_bins[-1]:
            kept_cuts.append(cut)
            kept_bins.append(value)
    return FeatureTable(
        feature=name,
        categorical=False,
        thresholds=kept_cuts,
        bin_values=kept_bins,
        missing_value=float(total[-1]),
        zero_as_missing="Zero" in types,
    )


def _distill_categorical(name: str, trees: list[dict[str, Any]], seen_codes: np.ndarray) -> FeatureTable:
    grid = np.asarray([*seen_codes.tolist(), np.nan], dtype=float)
    total = np.zeros(grid.shape)
    for tree in trees:
        total += _eval_tree(tree, grid)
    return FeatureTable(
        feature=name,
        categorical=True,
        categories=[int(c) for c in seen_codes],
        category_values=total[:-1].tolist(),
        missing_value=float(total[-1]),
    )


def format_number(value: float) -> str:
    """A threshold or value as a reader wants it: ``0`` (not ``1e-35``), ``12``, ``2.5``, ``12,346``."""
    v = float(value)
    if abs(v) < 1e-9:
        return "0"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if float(round(v, 2)).is_integer():
        return str(int(round(v)))
    return f"{v:.3g}"


def allot_points(spans: np.ndarray, total: int = 100) -> np.ndarray:
    """Integer maximum points per feature, proportional to its span, summing to ``total``.

    Largest remainders: the floor of each share, then one more point to the largest remainders,
    so the best possible account has exactly ``total`` points and every table is integer.
    """
    spans = np.asarray(spans, dtype=float)
    if spans.sum() <= 0:
        return np.zeros(len(spans), dtype=int)
    share = total * spans / spans.sum()
    out = np.floor(share).astype(int)
    extra = total - int(out.sum())
    out[np.argsort(-(share - out), kind="stable")[:extra]] += 1
    return out


def _range_labels(thresholds: list[float], integer_valued: bool) -> list[str]:
    """Labels of the bins ``(t[i-1], t[i]]``: ``"<= 5"``, ``"6-20"`` (integers) or ``"(5, 20]"``."""
    if not thresholds:
        return ["any value"]
    if integer_valued:
        edges = [int(np.floor(t + 1e-9)) for t in thresholds]
        labels = [f"<= {edges[0]}"]
        for lo, hi in zip(edges[:-1], edges[1:], strict=True):
            labels.append(f"{lo + 1}" if hi == lo + 1 else f"{lo + 1}-{hi}")
        labels.append(f">= {edges[-1] + 1}")
        return labels
    cuts = [format_number(t) for t in thresholds]
    return [f"<= {cuts[0]}", *(f"({a}, {b}]" for a, b in zip(cuts[:-1], cuts[1:], strict=True)), f"> {cuts[-1]}"]


@dataclass
class AdditiveScorecard:
    """Points scorecard: one lookup table per feature, exact w.r.t. the additive LightGBM it came from.

    Every feature's values fall into *entries* (its numeric ranges, or its categories, plus one
    entry for missing / unseen). Each entry has a raw contribution (log-odds, exact) and integer
    points: 0 for the feature's worst entry up to the feature's maximum, maxima summing to 100.
    An account's fit points are the sum of its entries' points — the points table *is* the score,
    and the reasons quote the same numbers.

    Attributes
    ----------
    features : list of str
        Model features, in model order.
    categorical : list of str
        Features that hold integer category codes.
    tables : dict
        Feature -> distilled ``g_f`` (:class:`FeatureTable`).
    base : float
        Raw-score constant (trees without splits).
    max_points : dict
        Feature -> its integer maximum points (sum 100, or 0 for a scorecard with no splits).
    mean_points : dict
        Feature -> average points on the training rows; reasons are relative to it.
    category_labels : dict
        Categorical feature -> label by code.
    integer_valued : dict
        Numeric feature -> whether its training values are whole numbers (for range labels).
    """

    features: list[str]
    categorical: list[str]
    tables: dict[str, FeatureTable]
    base: float
    max_points: dict[str, int]
    mean_points: dict[str, float]
    category_labels: dict[str, list[str]] = field(default_factory=dict)
    integer_valued: dict[str, bool] = field(default_factory=dict)
    num_iterations: int = 0
    params: dict[str, Any] = field(default_factory=dict)
    # Kept only on a freshly fitted scorecard, to check the distillation; never serialised.
    _booster: lgb.Booster | None = field(default=None, repr=False, compare=False)

    @classmethod
    def fit(
        cls,
        X: pd.DataFrame,
        y: np.ndarray | pd.Series,
        categorical: list[str],
        seed: int,
        X_valid: pd.DataFrame | None = None,
        y_valid: np.ndarray | pd.Series | None = None,
        num_threads: int = 1,
        category_labels: dict[str, list[str]] | None = None,
        num_boost_round: int = 300,
        sample_weight: np.ndarray | None = None,
        max_bin: int = 15,
        init_score: np.ndarray | None = None,
        valid_init_score: np.ndarray | None = None,
    ) -> AdditiveScorecard:
        """Train an additive LightGBM on numeric/code columns and distill it into points tables.

        ``X`` holds numbers and integer category codes (``categorical`` lists the code columns;
        -1 or NaN is missing), ``y`` is 0/1. With ``X_valid``/``y_valid`` the rounds are chosen by
        early stopping (at most ``num_boost_round``). ``category_labels`` maps a code column to its
        labels by code; ``sample_weight`` weighs rows (e.g. stacked outcomes equally); ``max_bin``
        keeps a numeric attribute to a few readable ranges; ``init_score``/``valid_init_score`` are
        per-row log-odds offsets (each outcome's base rate when outcomes are stacked), not part of
        the scorecard, so the points carry the attributes' effects only.
        """
        features = [str(c) for c in X.columns]
        unknown = sorted(set(categorical) - set(features))
        if unknown:
            raise ValueError(f"categorical columns not in X: {unknown}")
        train = _as_matrix(X, features, categorical)
        label = np.asarray(y, dtype=float)
        if not np.isin(label, (0.0, 1.0)).all():
            raise ValueError("y must be binary 0/1")
        params = _params(seed, num_threads, max_bin, len(features))
        cat_features = [f for f in features if f in set(categorical)]
        params["monotone_constraints"] = _monotone_directions(train, label, features, set(cat_features))
        booster, n_iter = _train(
            params, train, label, features, cat_features, sample_weight, init_score,
            X_valid, y_valid, valid_init_score, num_boost_round, categorical,
        )  # fmt: skip
        base, tables = _distill(booster, n_iter, train, features, cat_features)
        spans = np.array([max(t.entries()) - min(t.entries()) for t in tables.values()])
        integer_valued = {
            f: bool(np.all(np.isnan(train[:, i]) | (train[:, i] == np.round(train[:, i]))))
            for i, f in enumerate(features)
            if f not in cat_features
        }
        scorecard = cls(
            features=features,
            categorical=cat_features,
            tables=tables,
            base=base,
            max_points={f: int(p) for f, p in zip(features, allot_points(spans), strict=True)},
            mean_points={},
            category_labels={k: [str(v) for v in vals] for k, vals in (category_labels or {}).items()},
            integer_valued=integer_valued,
            num_iterations=int(n_iter),
            params=params,
            _booster=booster,
        )
        train_points = scorecard.points(X)
        scorecard.mean_points = {f: float(train_points[f].mean()) for f in features}
        return scorecard

    # -- entries and points ------------------------------------------------------------------

    def entry_index(self, X: pd.DataFrame) -> np.ndarray:
        """(rows, features) index of each value's entry; the last entry of a feature is missing.

        :meth:`points_of_entries` and :meth:`reasons_of_entries` take it, so a caller that wants
        both scores and reasons reads the frame once.
        """
        matrix = _as_matrix(X, self.features, self.categorical)
        out = np.empty(matrix.shape, dtype=np.int64)
        for j, f in enumerate(self.features):
            out[:, j] = self.tables[f].entry_index(matrix[:, j])
        return out

    def entry_points(self, feature: str) -> np.ndarray:
        """Integer points of each entry of ``feature`` (ranges or categories, then missing)."""
        values = np.asarray(self.tables[feature].entries(), dtype=float)
        span = values.max() - values.min()
        if span <= 0:
            return np.zeros(len(values), dtype=np.int64)
        return np.round((values - values.min()) / span * self.max_points[feature]).astype(np.int64)

    def entry_labels(self, feature: str) -> list[str]:
        """Readable label of each entry of ``feature``, in entry order."""
        table = self.tables[feature]
        if table.categorical:
            return [*(self._category_label(feature, c) for c in table.categories), _OTHER_LABEL]
        return [*_range_labels(table.thresholds, self.integer_valued.get(feature, False)), _MISSING_LABEL]

    def points(self, X: pd.DataFrame) -> pd.DataFrame:
        """Integer points per row and feature; rows sum to :meth:`score`."""
        return pd.DataFrame(self.points_of_entries(self.entry_index(X)), columns=self.features, index=X.index)

    def points_of_entries(self, idx: np.ndarray) -> np.ndarray:
        """The (rows, features) integer points of an :meth:`entry_index` matrix."""
        if not self.features:
            return np.zeros((len(idx), 0), dtype=np.int64)
        return np.column_stack([self.entry_points(f)[idx[:, j]] for j, f in enumerate(self.features)])

    def score(self, X: pd.DataFrame) -> np.ndarray:
        """Fit points in [0, 100]: the sum of the points table's entries for each row."""
        return self.score_of_entries(self.entry_index(X))

    def score_of_entries(self, idx: np.ndarray) -> np.ndarray:
        """:meth:`score` of an :meth:`entry_index` matrix."""
        return self.points_of_entries(idx).sum(axis=1).astype(np.int64)

    def raw_score(self, X: pd.DataFrame) -> np.ndarray:
        """The model's raw (log-odds) score, from the lookup tables alone (exact)."""
        matrix = _as_matrix(X, self.features, self.categorical)
        contrib = [self.tables[f].lookup(matrix[:, i]) for i, f in enumerate(self.features)]
        return self.base + (np.column_stack(contrib).sum(axis=1) if contrib else np.zeros(len(X)))

    def reasons(self, X: pd.DataFrame, top_n: int = 3) -> pd.DataFrame:
        """Top reasons up and down per row, in the points table's own numbers.

        A reason reads ``"industry = Software (+18 of 20)"``: the row's points for the attribute
        and its maximum, exactly as in :meth:`points_table`. Reasons up are the attributes where the
        row earns most above the book's average points, reasons down most below; differences under
        half a point are left out. Vectorised: see :meth:`reasons_of_entries`.
        """
        up, down = self.reasons_of_entries(self.entry_index(X), top_n)
        return pd.DataFrame({"reasons_up": up, "reasons_down": down}, index=X.index)

    def reasons_of_entries(self, idx: np.ndarray, top_n: int = 3, points: np.ndarray | None = None) -> tuple[Any, Any]:
        """``(reasons_up, reasons_down)`` text arrays (pandas ``str``) of an :meth:`entry_index` matrix.

        A row's reasons are fixed by the entries it chose (at most ``top_n`` per side) and there are
        few distinct choices: each row's choice is packed into one integer, the distinct choices
        are joined into text once, and the rows take their text by lookup (no per-row formatting).
        ``points`` is :meth:`points_of_entries` of ``idx`` when the caller has it already.
        """
        n = len(idx)
        if not self.features or not n:
            return np.full(n, "", dtype=object), np.full(n, "", dtype=object)
        texts, offsets = self._reason_texts()
        pts = self.points_of_entries(idx) if points is None else points
        delta = pts - np.array([self.mean_points.get(f, 0.0) for f in self.features])
        flat = offsets[None, :] + idx
        rows = np.arange(n)[:, None]
        out = []
        for sign in (1.0, -1.0):
            order = np.argsort(-sign * delta, axis=1, kind="stable")[:, :top_n]
            # Sorted by the delta, so the kept reasons are a prefix of each row's order.
            kept = (sign * delta[rows, order] >= 0.5).sum(axis=1)
            chosen = np.where(np.arange(order.shape[1])[None, :] < kept[:, None], flat[rows, order], -1)
            out.append(_join_choices(chosen, texts))
        return out[0], out[1]

    def _reason_texts(self) -> tuple[np.ndarray, np.ndarray]:
        texts: list[str] = []
        offsets = []
        for f in self.features:
            offsets.append(len(texts))
            points = self.entry_points(f)
            for label, p in zip(self.entry_labels(f), points, strict=True):
                value = f"= {label}" if self.tables[f].categorical or label == _MISSING_LABEL else label
                texts.append(f"{f} {value} (+{int(p)} of {self.max_points[f]})")
        return np.asarray(texts, dtype=object), np.asarray(offsets, dtype=np.int64)

    def _category_label(self, feature: str, code: int) -> str:
        if code < 0:
            return _MISSING_LABEL
        labels = self.category_labels.get(feature, [])
        return labels[code] if code < len(labels) else str(code)

    def points_table(self) -> pd.DataFrame:
        """The readable scorecard: feature, value_or_range, points, max_points; by feature, points desc."""
        rows = []
        for f in self.features:
            for label, p in zip(self.entry_labels(f), self.entry_points(f), strict=True):
                rows.append((f, label, int(p), self.max_points[f]))
        out = pd.DataFrame(rows, columns=["feature", "value_or_range", "points", "max_points"])
        return out.sort_values(["feature", "points"], ascending=[True, False], kind="stable").reset_index(drop=True)

    # -- persistence ---------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict; the booster is not needed after distillation and is not included."""
        return {
            "format": _FORMAT,
            "format_version": _FORMAT_VERSION,
            "features": list(self.features),
            "categorical": list(self.categorical),
            "tables": [asdict(self.tables[f]) for f in self.features],
            "base": float(self.base),
            "max_points": {f: int(v) for f, v in self.max_points.items()},
            "mean_points": {f: float(v) for f, v in self.mean_points.items()},
            "category_labels": {k: list(v) for k, v in self.category_labels.items()},
            "integer_valued": dict(self.integer_valued),
            "num_iterations": int(self.num_iterations),
            "params": self.params,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AdditiveScorecard:
        """Inverse of :meth:`to_dict`."""
        if data.get("format") != _FORMAT:
            raise ValueError(f"not an additive scorecard: format={data.get('format')!r}")
        if data.get("format_version") != _FORMAT_VERSION:
            raise ValueError(f"unsupported scorecard format_version {data.get('format_version')!r}")
        return cls(
            features=list(data["features"]),
            categorical=list(data["categorical"]),
            tables={t["feature"]: FeatureTable(**t) for t in data["tables"]},
            base=float(data["base"]),
            max_points={k: int(v) for k, v in data["max_points"].items()},
            mean_points={k: float(v) for k, v in data["mean_points"].items()},
            category_labels={k: list(v) for k, v in data["category_labels"].items()},
            integer_valued={k: bool(v) for k, v in data.get("integer_valued", {}).items()},
            num_iterations=int(data["num_iterations"]),
            params=dict(data["params"]),
        )

    def save(self, path: str | Path) -> None:
        """Write the scorecard as JSON."""
        # allow_nan=False: the file must be strict JSON that any consumer can parse.
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, allow_nan=False), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> AdditiveScorecard:
        """Read a scorecard written by :meth:`save`."""
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def _distill(
    booster: lgb.Booster, n_iter: int, train: np.ndarray, features: list[str], cat_features: list[str]
) -> tuple[float, dict[str, FeatureTable]]:
    """The booster's constant and one exact lookup table per feature."""
    base, by_feature = _trees_by_feature(booster.dump_model(num_iteration=n_iter), len(features))
    tables: dict[str, FeatureTable] = {}
    for i, name in enumerate(features):
        if name in cat_features:
            codes = _category_codes(train[:, i])
            tables[name] = _distill_categorical(name, by_feature[i], np.unique(codes[codes >= 0]))
        else:
            tables[name] = _distill_numeric(name, by_feature[i])
    return base, tables


def _monotone_directions(
    train: np.ndarray, label: np.ndarray, features: list[str], categorical: set[str]
) -> list[int]:
    """+1 / -1 for numeric features with a clear univariate trend (Spearman p < 0.001), else 0.

    A sales team reads a points table as "more employees, more points": where the data shows a
    clear direction the additive model is held to it, so a sparse corner (a few odd rows) cannot
    make a bigger account score lower. Features without a clear trend keep any shape.
    """
    out = []
    for j, f in enumerate(features):
        x = train[:, j]
        known = ~np.isnan(x)
        if f in categorical or known.sum() < 30 or np.unique(x[known]).size < 3:
            out.append(0)
            continue
        res = spearmanr(x[known], label[known])
        out.append(int(np.sign(res.statistic)) if res.pvalue < 1e-3 else 0)
    return out


def _params(seed: int, num_threads: int, max_bin: int, n_features: int) -> dict[str, Any]:
    return {
        "objective": "binary",
        "seed": int(seed),
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": int(num_threads),
        "verbose": -1,
        "learning_rate": 0.05,
        "num_leaves": 8,
        "min_data_in_leaf": 50,
        "max_bin": int(max_bin),
        # One feature per tree makes the model additive, hence exactly representable as tables.
        "interaction_constraints": [[i] for i in range(n_features)],
    }


def _train(
    params: dict[str, Any],
    train: np.ndarray,
    label: np.ndarray,
    features: list[str],
    cat_features: list[str],
    sample_weight: np.ndarray | None,
    init_score: np.ndarray | None,
    X_valid: pd.DataFrame | None,
    y_valid: np.ndarray | pd.Series | None,
    valid_init_score: np.ndarray | None,
    num_boost_round: int,
    categorical: list[str],
) -> tuple[lgb.Booster, int]:
    dtrain = lgb.Dataset(
        train,
        label=label,
        weight=None if sample_weight is None else np.asarray(sample_weight, dtype=float),
        init_score=None if init_score is None else np.asarray(init_score, dtype=float),
        feature_name=features,
        categorical_feature=cat_features,
        free_raw_data=True,
    )
    valid_sets, callbacks = [], []
    if X_valid is not None:
        if y_valid is None:
            raise ValueError("X_valid given without y_valid")
        dvalid = lgb.Dataset(
            _as_matrix(X_valid, features, categorical),
            label=np.asarray(y_valid, dtype=float),
            init_score=None if valid_init_score is None else np.asarray(valid_init_score, dtype=float),
            reference=dtrain,
        )
        valid_sets = [dvalid]
        callbacks = [lgb.early_stopping(_EARLY_STOPPING_ROUNDS, verbose=False)]
    booster = lgb.train(params, dtrain, num_boost_round=num_boost_round, valid_sets=valid_sets, callbacks=callbacks)
    n_iter = booster.best_iteration if booster.best_iteration > 0 else booster.current_iteration()
    return booster, int(n_iter)


def _as_matrix(X: pd.DataFrame, features: list[str], categorical: list[str]) -> np.ndarray:
    """Float matrix in model column order; negative category codes become NaN (missing)."""
    missing = [f for f in features if f not in X.columns]
    if missing:
        raise ValueError(f"X is missing columns: {missing}")
    not_numeric = [f for f in features if not pd.api.types.is_numeric_dtype(X[f])]
    if not_numeric:
        raise ValueError(f"columns must be numeric (categoricals as integer codes): {not_numeric}")
    # Copy: pandas may hand back a read-only view (copy-on-write) and the codes are edited below.
    matrix = np.array(X[features].to_numpy(dtype=float, na_value=np.nan), dtype=float, copy=True)
    # LightGBM's predictor drops |x| <= kZeroThreshold as a zero entry, so such inputs score as 0.0.
    with np.errstate(invalid="ignore"):
        matrix[np.abs(matrix) <= _ZERO_THRESHOLD] = 0.0
    cat_set = set(categorical)
    for i, f in enumerate(features):
        if f in cat_set:
            with np.errstate(invalid="ignore"):
                matrix[matrix[:, i] < 0, i] = np.nan
    return matrix


def _trees_by_feature(dump: dict[str, Any], n_features: int) -> tuple[float, list[list[dict[str, Any]]]]:
    """Split a tree dump into a constant (split-less trees) and each feature's trees."""
    base = 0.0
    by_feature: list[list[dict[str, Any]]] = [[] for _ in range(n_features)]
    for info in dump["tree_info"]:
        tree = info["tree_structure"]
        used = _split_features(tree, set())
        if not used:
            base += float(tree["leaf_value"])
        elif len(used) == 1:
            by_feature[used.pop()].append(tree)
        else:
            # interaction_constraints guarantee this never happens; if it did, tables would be wrong.
            raise RuntimeError(f"tree {info['tree_index']} uses several features {sorted(used)}")
    return base, by_feature
