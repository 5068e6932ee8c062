"""Customer segments: K-means on mixed numeric / categorical attributes, profiled and named.

Encoding, chosen so that both kinds of attribute weigh alike in the Euclidean distance:

- numeric columns are median-imputed, then standardised (mean 0, sd 1);
- categorical columns (non-numeric, booleans included) are one-hot encoded over their 10 most
  frequent values plus ``"other"`` and ``"missing"``, and each indicator is scaled by 1/sqrt(2):
  a change of category flips two indicators, moving the point by sqrt(2) * 1/sqrt(2) = 1, the
  same distance as a 1 sd change of a numeric attribute.

The fitted model is plain lists and dicts (:meth:`SegmentModel.to_dict`), and :meth:`predict` is
numpy only, so it round-trips through JSON without pickles.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import chi2_contingency
from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score
from sklearn.preprocessing import StandardScaler
from statsmodels.stats.proportion import proportion_confint

from icpkit.icp.cohorts import MISSING, as_float, category_labels, is_numeric_attribute
from icpkit.models.preprocessing import is_heavy_tailed

logger = logging.getLogger(__name__)

MAX_LEVELS = 10
#: Weight of a one-hot indicator, so a category change moves a point by 1 (see module docstring).
CATEGORY_WEIGHT = 1.0 / math.sqrt(2.0)


@dataclass
class SegmentModel:
    """A fitted segmentation: the encoding, the K-means centres and the segment names.

    Attributes:
        columns: attribute columns, in the order they were fitted.
        categorical: the subset of ``columns`` that is one-hot encoded.
        medians: numeric column -> median used to impute missing values.
        means: numeric column -> mean used for standardisation (after imputation).
        scales: numeric column -> standard deviation used for standardisation (1 when constant).
        levels: categorical column -> kept values (most frequent first); others map to "other".
        k: number of segments.
        centers: ``k`` centres in the encoded space, segment 0 the largest.
        seed: random state of K-means and of the silhouette sample.
        silhouette_by_k: silhouette score of each ``k`` tried.
        names: readable name per segment (see :func:`profile_segments`).
    """

    columns: list[str]
    categorical: list[str]
    medians: dict[str, float]
    means: dict[str, float]
    scales: dict[str, float]
    levels: dict[str, list[str]]
    k: int = 0
    centers: list[list[float]] = field(default_factory=list)
    seed: int = 0
    silhouette_by_k: dict[int, float] = field(default_factory=dict)
    names: list[str] = field(default_factory=list)

    @property
    def numeric(self) -> list[str]:
        """Columns that are standardised rather than one-hot encoded."""
        return [c for c in self.columns if c not in self.categorical]

    # ------------------------------------------------------------------------------------ fitting

    @classmethod
    def fit(
        cls,
        X: pd.DataFrame,
        k_range: tuple[int, int] = (2, 8),
        seed: int = 0,
        sample_size: int = 5000,
    ) -> SegmentModel:
        """Encode ``X``, pick ``k`` in ``k_range`` (inclusive) by silhouette, and fit K-means.

        K-means (``n_init=10``, ``random_state=seed``) runs on all rows; the silhouette score of
        each ``k`` is computed on a seeded sample of at most ``sample_size`` rows, since it is
        quadratic in rows. Ties go to the smaller ``k``. Segments are numbered by size, largest
        first, so ids do not depend on K-means' arbitrary label order.
        """
        columns = [str(c) for c in X.columns]
        X = X.set_axis(columns, axis=1)
        categorical = [c for c in columns if not is_numeric_attribute(X[c])]
        numeric = [c for c in columns if c not in categorical]
        medians = {}
        for c in numeric:
            m = as_float(X[c]).median()
            medians[c] = 0.0 if pd.isna(m) else float(m)
        means: dict[str, float] = {}
        scales: dict[str, float] = {}
        if numeric:
            scaler = StandardScaler().fit(_impute(X, numeric, medians))
            means = {c: float(v) for c, v in zip(numeric, scaler.mean_, strict=True)}
            scales = {c: float(v) for c, v in zip(numeric, scaler.scale_, strict=True)}
        levels = {}
        for c in categorical:
            counts = category_labels(X[c]).value_counts()
            levels[c] = [str(v) for v in counts.index if v != MISSING][:MAX_LEVELS]
        model = cls(columns, categorical, medians, means, scales, levels, seed=seed)
        Z = model.transform(X)

        n = Z.shape[0]
        # More clusters than distinct points cannot be found (e.g. one categorical attribute).
        distinct = len(np.unique(Z, axis=0))
        k_min, k_max = k_range[0], min(k_range[1], n - 1, max(distinct, 2))
        if k_min < 2 or k_min > k_max:
            raise ValueError(f"cannot choose k in {k_range} with {n} rows (need 2 <= k < rows)")
        sample = min(n, sample_size) if n > sample_size else None
        fits: dict[int, KMeans] = {}
        for k in range(k_min, k_max + 1):
            km = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(Z)
            fits[k] = km
            if np.unique(km.labels_).size < 2:
                model.silhouette_by_k[k] = -1.0  # degenerate: duplicate points collapsed clusters
            else:
                model.silhouette_by_k[k] = float(
                    silhouette_score(Z, km.labels_, sample_size=sample, random_state=seed)
                )
        best = max(model.silhouette_by_k, key=lambda k: (model.silhouette_by_k[k], -k))
        km = fits[best]
        sizes = np.bincount(km.labels_, minlength=best)
        order = sorted(range(best), key=lambda j: (-sizes[j], tuple(km.cluster_centers_[j])))
        model.k = best
        model.centers = [[float(v) for v in km.cluster_centers_[j]] for j in order]
        labels = model.predict(X)
        model.names = profile_segments(X, labels)["name"].tolist()
        logger.info("segments: k=%d chosen by silhouette %s", best, model.silhouette_by_k)
        return model

    # ------------------------------------------------------------------------------------ applying

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        """Encode ``X`` as the model was fitted (imputed, standardised, weighted one-hot)."""
        X = X.set_axis([str(c) for c in X.columns], axis=1)
        missing = [c for c in self.columns if c not in X.columns]
        if missing:
            raise ValueError(f"segment model needs columns that are missing: {missing}")
        parts = []
        numeric = self.numeric
        if numeric:
            values = _impute(X, numeric, self.medians)
            means = np.array([self.means[c] for c in numeric])
            scales = np.array([self.scales[c] for c in numeric])
            parts.append((values - means) / scales)
        for c in self.categorical:
            labels = category_labels(X[c]).to_numpy()
            known = np.isin(labels, self.levels[c])
            onehot = [labels == v for v in self.levels[c]]
            onehot += [~known & (labels != MISSING), labels == MISSING]
            parts.append(np.column_stack(onehot).astype(float) * CATEGORY_WEIGHT)
        if not parts:
            return np.zeros((len(X), 0))
        return np.hstack(parts)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Segment id (index of the nearest centre) for each row."""
        if not self.centers:
            raise ValueError("segment model is not fitted")
        Z = self.transform(X)
        C = np.asarray(self.centers, dtype=float)
        # |z - c|^2 = |z|^2 - 2 z.c + |c|^2, without an (n, k, features) array.
        d = (Z**2).sum(axis=1, keepdims=True) - 2.0 * Z @ C.T + (C**2).sum(axis=1)
        return np.argmin(d, axis=1)

    # -------------------------------------------------------------------------------- persistence

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (``silhouette_by_k`` keys become strings, as JSON needs)."""
        d = asdict(self)
        d["silhouette_by_k"] = {str(k): float(v) for k, v in self.silhouette_by_k.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SegmentModel:
        """Inverse of :meth:`to_dict`."""
        d = dict(d)
        d["silhouette_by_k"] = {int(k): float(v) for k, v in d.get("silhouette_by_k", {}).items()}
        return cls(**d)

    def save(self, path: str | Path) -> None:
        """Write the model as JSON."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2))

    @classmethod
    def load(cls, path: str | Path) -> SegmentModel:
        """Read a model written by :meth:`save`."""
        return cls.from_dict(json.loads(Path(path).read_text()))


def _plain(v: Any) -> Any:
    """numpy scalar -> Python scalar, for JSON."""
    return v.item() if isinstance(v, np.generic) else v


def _impute(X: pd.DataFrame, numeric: list[str], medians: dict[str, float]) -> np.ndarray:
    values = X[numeric].apply(lambda s: pd.to_numeric(s, errors="coerce")).astype(float)
    return values.fillna(medians).to_numpy(dtype=float)


# ---------------------------------------------------------------------------------------- profiling


def _distinguishing(X: pd.DataFrame, in_segment: np.ndarray) -> list[tuple[float, str]]:
    """(score, phrase) per attribute: how far the segment sits from everyone, in sd units.

    Numeric: standardised mean difference, phrased "high x" / "low x". Categorical: for the value
    whose share rises most, the share difference divided by the indicator's sd
    sqrt(p (1 - p)) — the standardised mean difference of the indicator, so both kinds compare.
    """
    found = []
    for c in X.columns:
        s = X[c]
        if is_numeric_attribute(s):
            v = as_float(s)
            sd = float(v.std(ddof=0))
            seg_mean = float(v[in_segment].mean())
            if not sd > 0 or math.isnan(seg_mean):
                continue
            d = (seg_mean - float(v.mean())) / sd
            found.append((abs(d), f"{'high' if d > 0 else 'low'} {c}"))
        else:
            labels = category_labels(s)
            overall = labels.value_counts(normalize=True)
            seg = labels[in_segment].value_counts(normalize=True).reindex(overall.index, fill_value=0.0)
            p = overall[(overall > 0) & (overall < 1)]
            if p.empty:
                continue
            d = (seg[p.index] - p) / np.sqrt(p * (1 - p))
            value = d.idxmax()
            if d[value] > 0:
                found.append((float(d[value]), f"{c}={value}"))
    return sorted(found, key=lambda t: -t[0])


def profile_segments(
    X: pd.DataFrame,
    segments: np.ndarray,
    outcomes: dict[str, pd.Series] | None = None,
    revenue: pd.Series | None = None,
) -> pd.DataFrame:
    """One row per segment: size, share, typical attribute values, outcome rates, revenue, name.

    Columns: ``segment``, ``size``, ``share``, ``<numeric>_median``, ``<categorical>_top`` and
    ``<categorical>_top_share`` (dominant value and its share in the segment), ``<outcome>_rate``
    (mean of the 0/1 labels, NA ignored), ``revenue`` (sum) and ``name``: the two most
    distinguishing attributes joined with ", " (e.g. "high employees, industry=Healthcare").
    ``segments``, ``outcomes`` and ``revenue`` are row-aligned with ``X``.
    """
    segments = np.asarray(segments)
    if len(segments) != len(X):
        raise ValueError(f"segments has {len(segments)} rows, X has {len(X)}")
    X = X.set_axis([str(c) for c in X.columns], axis=1)
    ys = {name: as_float(pd.Series(y)).to_numpy() for name, y in (outcomes or {}).items()}
    rev = None if revenue is None else as_float(pd.Series(revenue)).to_numpy()
    rows = []
    for s in np.unique(segments):
        mask = segments == s
        row: dict[str, Any] = {"segment": _plain(s), "size": int(mask.sum()), "share": float(mask.mean())}
        for c in X.columns:
            if is_numeric_attribute(X[c]):
                row[f"{c}_median"] = float(as_float(X[c][mask]).median())
            else:
                shares = category_labels(X[c][mask]).value_counts(normalize=True)
                row[f"{c}_top"] = str(shares.index[0])
                row[f"{c}_top_share"] = float(shares.iloc[0])
        for name, y in ys.items():
            row[f"{name}_rate"] = float(np.nanmean(y[mask])) if np.isfinite(y[mask]).any() else math.nan
        if rev is not None:
            row["revenue"] = float(np.nansum(rev[mask]))
        phrases = [phrase for _, phrase in _distinguishing(X, mask)[:2]]
        row["name"] = ", ".join(phrases) if phrases else f"segment {s}"
        rows.append(row)
    out = pd.DataFrame(rows)
    # Two segments can share a name; append the id so every name points to one segment.
    dup = out["name"].duplicated(keep=False)
    out.loc[dup, "name"] = out.loc[dup, "name"] + " (#" + out.loc[dup, "segment"].astype(str) + ")"
    return out


def distinct_icps(
    profile: pd.DataFrame,
    outcomes: dict[str, pd.Series],
    segments: np.ndarray,
    alpha: float = 0.05,
) -> list[dict]:
    """Segments that each deserve their own ICP because an outcome is significantly better there.

    For each outcome, a chi-square test of the outcome rate across segments (labelled rows only);
    when ``p < alpha``, every segment whose rate is above the overall rate and whose Wilson lower
    bound (level ``1 - alpha``) is too is proposed. ``outcomes`` are row-aligned with ``segments``.
    Returns JSON-safe dicts: segment, name, outcome, rate, overall_rate, ci_low, ci_high, p_value.
    """
    segments = np.asarray(segments)
    names = dict(zip(profile["segment"].tolist(), profile["name"].astype(str), strict=True))
    found = []
    for outcome, y in outcomes.items():
        values = as_float(pd.Series(y)).to_numpy()
        if len(values) != len(segments):
            raise ValueError(f"outcome {outcome!r} has {len(values)} rows, segments has {len(segments)}")
        labelled = ~np.isnan(values)
        seg, lab = segments[labelled], values[labelled]
        ids = np.unique(seg)
        n = np.array([(seg == s).sum() for s in ids])
        pos = np.array([lab[seg == s].sum() for s in ids])
        if len(ids) < 2 or pos.sum() in (0, n.sum()):
            logger.info("distinct_icps: %s cannot be tested across segments", outcome)
            continue
        p_value = float(chi2_contingency(np.column_stack([pos, n - pos])).pvalue)
        if p_value >= alpha:
            continue
        overall = float(pos.sum() / n.sum())
        ci_low, ci_high = proportion_confint(pos, n, alpha=alpha, method="wilson")
        for j, s in enumerate(ids):
            rate = float(pos[j] / n[j])
            if rate > overall and ci_low[j] > overall:
                found.append(
                    {
                        "segment": _plain(s),
                        "name": names.get(_plain(s), f"segment {s}"),
                        "outcome": str(outcome),
                        "rate": rate,
                        "overall_rate": overall,
                        "ci_low": float(ci_low[j]),
                        "ci_high": float(ci_high[j]),
                        "p_value": p_value,
                    }
                )
    return found


SEGMENT_FORMAT = "icpkit.SegmentModel/1"


# ---------------------------------------------------------------------------------------------
# a registrable segment model (icp-segments)


def save_segment_model(model: SegmentModel, log_columns: list[str], directory: str | Path) -> Path:
    """Save as a registrable icpkit model folder (``model.json``, no pickles).

    ``log_columns`` are log1p-scaled before the model reads them (see :func:`segment_input`).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    spec = {"format": SEGMENT_FORMAT, "log_columns": log_columns, "model": model.to_dict()}
    (directory / "model.json").write_text(json.dumps(spec, indent=2))
    return directory


class SegmentScorer:
    """Scores accounts with their segment id and name (the ``icp-segments`` pyfunc output)."""

    def __init__(self, model: SegmentModel, log_columns: list[str]) -> None:
        self.model = model
        self.log_columns = log_columns

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        seg = self.model.predict(segment_input(frame[self.model.columns], self.log_columns))
        names = np.asarray(self.model.names or [f"segment {i}" for i in range(self.model.k)], dtype=object)
        return pd.DataFrame({"segment": seg.astype("int64"), "segment_name": names[seg]}, index=frame.index)


def load_segment_scorer(directory: Path) -> SegmentScorer:
    spec = json.loads((Path(directory) / "model.json").read_text())
    return SegmentScorer(SegmentModel.from_dict(spec["model"]), list(spec.get("log_columns", [])))


def segment_input(X: pd.DataFrame, log_columns: list[str]) -> pd.DataFrame:
    """``X`` with ``log_columns`` replaced by log1p of their value."""
    # Heavy-tailed counts (employees, revenue) would dominate K-means in raw units.
    X = X.copy()
    for c in log_columns:
        X[c] = np.log1p(pd.to_numeric(X[c], errors="coerce").clip(lower=0))
    return X


def skewed_columns(X: pd.DataFrame) -> list[str]:
    """Non-negative numeric columns with skewness above 2 (counts, money): log-scale them."""
    return [
        c
        for c in X.columns
        if is_numeric_attribute(X[c])
        and is_heavy_tailed(pd.to_numeric(X[c], errors="coerce").to_numpy(float))
    ]
