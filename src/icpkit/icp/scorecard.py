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
from scipy.stats import spearmanr

__all__ = ["AdditiveScorecard", "FeatureTable"]

_FORMAT = "icpkit.additive_scorecard"
_FORMAT_VERSION = 1
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


def _format_number(value: float) -> str:
    return f"{value:.6g}"


@dataclass
class AdditiveScorecard:
    """Points scorecard: one lookup table per feature, exact w.r.t. the additive LightGBM it came from.

    Build it with :meth:`AdditiveScorecard.fit`; load a saved one with :meth:`load`.

    Attributes:
        features: model features, in model order.
        categorical: features that hold integer category codes.
        tables: feature -> distilled ``g_f``.
        base: raw-score constant (trees without splits).
        scale: points per raw-score unit, so the best possible account totals 100 points.
        mean_points: average (unrounded) points per feature on the training rows; reasons are relative
            to it.
        category_labels: categorical feature -> label by code, for readable tables and reasons.
        num_iterations: boosting rounds kept.
        params: LightGBM parameters used.
    """

    features: list[str]
    categorical: list[str]
    tables: dict[str, FeatureTable]
    base: float
    scale: float
    mean_points: dict[str, float]
    category_labels: dict[str, list[str]] = field(default_factory=dict)
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
        num_threads: int = 2,
        category_labels: dict[str, list[str]] | None = None,
        num_boost_round: int = 300,
        sample_weight: np.ndarray | None = None,
        max_bin: int = 15,
        init_score: np.ndarray | None = None,
        valid_init_score: np.ndarray | None = None,
    ) -> AdditiveScorecard:
        """Train an additive LightGBM on numeric/code columns and distill it into points tables.

        Args:
            X: numeric columns; categorical columns hold integer codes (-1 or NaN = missing).
            y: binary label 0/1.
            categorical: columns of ``X`` that are category codes.
            seed: seed for LightGBM.
            X_valid, y_valid: optional validation set; if given, rounds are chosen by early stopping
                (at most ``num_boost_round``).
            num_threads: LightGBM threads.
            category_labels: categorical column -> labels by code, e.g. ``{"industry": ["Retail", ...]}``.
            num_boost_round: rounds without a validation set, or the cap with one.
            sample_weight: optional row weights (e.g. to let several outcomes count equally).
            max_bin: histogram bins per numeric feature; few bins keep the points table short
                enough for a salesperson to read (at most ``max_bin`` ranges per attribute).
            init_score, valid_init_score: optional per-row offsets (log-odds) the trees start
                from, e.g. each outcome's base rate when rows of several outcomes are stacked, so
                the points carry only the attributes' effects. Not part of the scorecard.
        """
        features = [str(c) for c in X.columns]
        unknown = sorted(set(categorical) - set(features))
        if unknown:
            raise ValueError(f"categorical columns not in X: {unknown}")
        train = _as_matrix(X, features, categorical)
        label = np.asarray(y, dtype=float)
        if not np.isin(label, (0.0, 1.0)).all():
            raise ValueError("y must be binary 0/1")
        params: dict[str, Any] = {
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
            "interaction_constraints": [[i] for i in range(len(features))],
        }
        cat_features = [f for f in features if f in set(categorical)]
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
        booster = lgb.train(
            params, dtrain, num_boost_round=num_boost_round, valid_sets=valid_sets, callbacks=callbacks
        )
        n_iter = booster.best_iteration if booster.best_iteration > 0 else booster.current_iteration()

        base, by_feature = _trees_by_feature(booster.dump_model(num_iteration=n_iter), len(features))
        tables: dict[str, FeatureTable] = {}
        for i, name in enumerate(features):
            if name in cat_features:
                codes = _category_codes(train[:, i])
                tables[name] = _distill_categorical(name, by_feature[i], np.unique(codes[codes >= 0]))
            else:
                tables[name] = _distill_numeric(name, by_feature[i])

        span = sum(max(t.entries()) - min(t.entries()) for t in tables.values())
        scorecard = cls(
            features=features,
            categorical=cat_features,
            tables=tables,
            base=base,
            # A model without splits has nothing to rank; every account then gets 0 points.
            scale=100.0 / span if span > 0 else 0.0,
            mean_points={},
            category_labels={k: [str(v) for v in vals] for k, vals in (category_labels or {}).items()},
            num_iterations=int(n_iter),
            params=params,
            _booster=booster,
        )
        train_points = scorecard.points(X)
        scorecard.mean_points = {f: float(train_points[f].mean()) for f in features}
        return scorecard

    # -- scoring -------------------------------------------------------------------------------

    def _contributions(self, X: pd.DataFrame) -> np.ndarray:
        matrix = _as_matrix(X, self.features, self.categorical)
        return np.column_stack([self.tables[f].lookup(matrix[:, i]) for i, f in enumerate(self.features)])

    def raw_score(self, X: pd.DataFrame) -> np.ndarray:
        """The model's raw (log-odds) score, from the lookup tables alone."""
        return self.base + self._contributions(X).sum(axis=1)

    def points(self, X: pd.DataFrame, rounded: bool = False) -> pd.DataFrame:
        """Points per row and feature; unrounded by default so rows sum to :meth:`score`."""
        offsets = np.array([min(self.tables[f].entries()) for f in self.features])
        pts = self.scale * (self._contributions(X) - offsets)
        if rounded:
            pts = np.round(pts)
        return pd.DataFrame(pts, columns=self.features, index=X.index)

    def score(self, X: pd.DataFrame) -> np.ndarray:
        """Scorecard total in [0, 100]; monotone in the raw score."""
        # Clip only guards float round-off at the ends (e.g. 100.00000000000001).
        return np.clip(self.points(X).to_numpy().sum(axis=1), 0.0, 100.0)

    def reasons(self, X: pd.DataFrame, top_n: int = 3) -> pd.DataFrame:
        """Top reasons up and down per row, relative to each feature's average training points.

        Returns:
            Columns reasons_up, reasons_down: "; "-joined strings like "industry = Software (+18)".
            Differences that round to 0 points are left out.
        """
        matrix = _as_matrix(X, self.features, self.categorical)
        delta = self.points(X).to_numpy() - np.array([self.mean_points[f] for f in self.features])
        rounded = np.round(delta).astype(int)
        order = np.argsort(-delta, axis=1, kind="stable")
        ups, downs = [], []
        for r in range(delta.shape[0]):
            row_up = [j for j in order[r] if rounded[r, j] > 0][:top_n]
            row_down = [j for j in order[r][::-1] if rounded[r, j] < 0][:top_n]
            ups.append("; ".join(self._reason(j, matrix[r, j], rounded[r, j]) for j in row_up))
            downs.append("; ".join(self._reason(j, matrix[r, j], rounded[r, j]) for j in row_down))
        return pd.DataFrame({"reasons_up": ups, "reasons_down": downs}, index=X.index)

    def _reason(self, j: int, value: float, pts: int) -> str:
        feature = self.features[j]
        return f"{feature} = {self._describe_value(feature, value)} ({pts:+d})"

    def _describe_value(self, feature: str, value: float) -> str:
        if np.isnan(value):
            return _MISSING_LABEL
        if feature in self.categorical:
            return self._category_label(feature, int(_category_codes(np.array([value]))[0]))
        return _format_number(value)

    def _category_label(self, feature: str, code: int) -> str:
        if code < 0:
            return _MISSING_LABEL
        labels = self.category_labels.get(feature, [])
        return labels[code] if code < len(labels) else str(code)

    def points_table(self) -> pd.DataFrame:
        """The readable scorecard: feature, value_or_range, points (rounded); by feature, points desc."""
        rows: list[tuple[str, str, float]] = []
        for f in self.features:
            table = self.tables[f]
            if table.categorical:
                for code, value in zip(table.categories, table.category_values, strict=True):
                    rows.append((f, self._category_label(f, code), value))
                rows.append((f, _OTHER_LABEL, table.missing_value))
                continue
            cuts = [_format_number(t) for t in table.thresholds]
            if not cuts:
                rows.append((f, "any", table.bin_values[0]))
                continue
            labels = [f"<= {cuts[0]}"]
            labels += [f"({lo}, {hi}]" for lo, hi in zip(cuts[:-1], cuts[1:], strict=True)]
            labels.append(f"> {cuts[-1]}")
            rows.extend((f, label, value) for label, value in zip(labels, table.bin_values, strict=True))
            rows.append((f, _MISSING_LABEL, table.missing_value))
        out = pd.DataFrame(rows, columns=["feature", "value_or_range", "raw"])
        offsets = out["feature"].map({f: min(self.tables[f].entries()) for f in self.features})
        out["points"] = np.round(self.scale * (out["raw"] - offsets)).astype(int)
        out = out.drop(columns="raw")
        return out.sort_values(["feature", "points"], ascending=[True, False], kind="stable").reset_index(
            drop=True
        )

    def rank_agreement(self, X: pd.DataFrame, reference_scores: np.ndarray) -> float:
        """Spearman correlation between :meth:`score` and reference scores (e.g. the full model's)."""
        result = spearmanr(self.score(X), np.asarray(reference_scores, dtype=float))
        return float(result.statistic)

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
            "scale": float(self.scale),
            "mean_points": {f: float(v) for f, v in self.mean_points.items()},
            "category_labels": {k: list(v) for k, v in self.category_labels.items()},
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
        tables = {t["feature"]: FeatureTable(**t) for t in data["tables"]}
        return cls(
            features=list(data["features"]),
            categorical=list(data["categorical"]),
            tables=tables,
            base=float(data["base"]),
            scale=float(data["scale"]),
            mean_points={k: float(v) for k, v in data["mean_points"].items()},
            category_labels={k: list(v) for k, v in data["category_labels"].items()},
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
