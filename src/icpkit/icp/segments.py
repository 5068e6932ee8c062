"""Customer segments: K-means on mixed attributes, k chosen against a null, or no segmentation.

Encoding: the shared :class:`~icpkit.models.preprocessing.Preprocessor` in design mode. Numeric
columns are log1p'd when heavy-tailed, median-imputed and standardised; categorical columns
(non-numeric, booleans, and numeric columns with at most two values: a 0/1 flag has values, not
a scale) are one-hot over their 10 most frequent values plus ``__other__`` and ``__missing__``,
each indicator times 1/sqrt(2): a change of category flips two indicators and moves a point by
1, as far as a 1 sd change of a numeric attribute.

Choosing k (:func:`fit_segments`). The plain silhouette runs to the top of the range on data
with discrete attributes: every split along a yes/no flag separates well, segments or not. So a
k must beat a *null reference*, the same rows with each attribute permuted independently across
rows. The null keeps every attribute's distribution (a lone flag splits it just as well) but
destroys the joint structure that real segments have. On a seeded search sample of at most
``sample_size`` rows, for each k in ``k_range``:

- ``gain`` = silhouette of K-means on the sample minus silhouette of K-means on its null (both
  on the same bounded subsample of ``SILHOUETTE_ROWS`` rows);
- ``stability`` = adjusted Rand index between the partitions of the sample found by K-means
  fitted on its two seeded halves.

A k qualifies when ``gain >= MIN_GAIN`` and ``stability >= MIN_STABILITY``; the chosen k is the
qualifying k with the largest gain (ties go to the smaller k). When no k qualifies, the result
is **no segmentation**: one segment is as good as any split, and the caller says so. The chosen
k is refitted once on all rows, starting from the search sample's centres, and the silhouette
of that final partition on a bounded seeded sample is stored on the model
(:attr:`SegmentModel.silhouette`) so the registry gate reuses it.

The fitted model is plain lists and dicts (:meth:`SegmentModel.to_dict`), and
:meth:`SegmentModel.predict` is numpy only, so it round-trips through JSON without pickles.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import chi2_contingency
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, silhouette_score
from statsmodels.stats.proportion import proportion_confint

from icpkit.icp.cohorts import MISSING, as_float
from icpkit.models.preprocessing import Preprocessor, value_labels

log = logging.getLogger(__name__)

MAX_LEVELS = 10
#: Weight of a one-hot indicator, so a category change moves a point by 1 (see module docstring).
CATEGORY_WEIGHT = 1.0 / math.sqrt(2.0)
#: K-means initialisations per fit in the search (the final refit starts from the found centres).
N_INIT = 3
#: Rows the silhouette is computed on: it is quadratic in rows.
SILHOUETTE_ROWS = 2000
#: Smallest silhouette gain over the null for a k to count (noise gives about +-0.015).
MIN_GAIN = 0.05
#: Smallest agreement (ARI) between the two half-sample partitions for a k to count.
MIN_STABILITY = 0.8


@dataclass
class SegmentModel:
    """A fitted segmentation: the encoding, the K-means centres and the segment names.

    Attributes
    ----------
    preprocessor : Preprocessor
        The fitted design encoding (numeric standardised, categories one-hot).
    k : int
        Number of segments.
    centers : list of list of float
        ``k`` centres in the design space, segment 0 the largest.
    seed : int
        Random state of K-means and of the silhouette sample.
    silhouette : float
        Silhouette of the fitted partition on a seeded sample (:meth:`separation`).
    names : list of str
        Readable name per segment (see :func:`profile_segments`).
    """

    preprocessor: Preprocessor
    k: int
    centers: list[list[float]]
    seed: int = 0
    silhouette: float = math.nan
    names: list[str] = field(default_factory=list)

    @property
    def columns(self) -> list[str]:
        """Attribute columns the model reads, in the order they were fitted."""
        return [str(c) for c in self.preprocessor.feature_names_in_]

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        """Encode ``X`` as the model was fitted (imputed, standardised, weighted one-hot)."""
        return self.preprocessor.transform(X).to_numpy(dtype=float)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Segment id (index of the nearest centre) for each row."""
        return _nearest(self.transform(X), np.asarray(self.centers, dtype=float))


    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict."""
        d = asdict(self)
        d["preprocessor"] = self.preprocessor.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SegmentModel:
        """Inverse of :meth:`to_dict`."""
        d = dict(d)
        d["preprocessor"] = Preprocessor.from_dict(d["preprocessor"])
        return cls(**d)


@dataclass
class KDiagnostics:
    """How one k fared in the search (see the module docstring)."""

    k: int
    silhouette: float
    null_silhouette: float
    gain: float
    stability: float
    qualifies: bool


@dataclass
class SegmentResult:
    """What :func:`fit_segments` found: a model, or ``None`` when no segmentation is better."""

    model: SegmentModel | None
    by_k: list[KDiagnostics]
    reason: str
    search_rows: int

    @property
    def k(self) -> int:
        """Number of segments (1 when there is no segmentation)."""
        return self.model.k if self.model is not None else 1

    def diagnostics(self) -> dict[str, Any]:
        """JSON-safe summary of the choice, for the profile."""
        return {
            "k": self.k,
            "segmented": self.model is not None,
            "reason": self.reason,
            "rule": (
                f"k with the largest silhouette gain over a column-permuted null, among k with gain >= "
                f"{MIN_GAIN} and half-sample stability (ARI) >= {MIN_STABILITY}; none: no segmentation"
            ),
            "search_rows": self.search_rows,
            "silhouette": None if self.model is None else _finite(self.model.silhouette),
            "by_k": [{k: _finite(v) for k, v in asdict(d).items()} for d in self.by_k],
        }


# ---------------------------------------------------------------------------------------- fitting


def fit_segments(
    X: pd.DataFrame,
    k_range: tuple[int, int] = (2, 8),
    seed: int = 0,
    sample_size: int = 5000,
) -> SegmentResult:
    """Encode ``X``, choose k in ``k_range`` (inclusive) against a null, and fit K-means.

    Parameters
    ----------
    X : DataFrame
        Attributes, one row per account.
    k_range : tuple of int
        Smallest and largest k tried.
    seed : int
        Seeds the search sample, the null permutation, the halves and K-means.
    sample_size : int
        Rows of the search sample (K-means per k runs on it, not on all rows).

    Returns
    -------
    SegmentResult
        The model (``None`` when no k beats the null) and the diagnostics of every k.

    Raises
    ------
    ValueError
        When ``k_range`` is not ``2 <= min <= max``.
    """
    k_min, k_max = k_range
    if not 2 <= k_min <= k_max:
        raise ValueError(f"k_range must satisfy 2 <= min <= max, got {k_range}")
    X = X.set_axis([str(c) for c in X.columns], axis=1).reset_index(drop=True)
    flags = [c for c in X.columns if _is_flag(X[c])]
    pre = Preprocessor(
        output="design", categorical=flags, max_categories=MAX_LEVELS, category_weight=CATEGORY_WEIGHT
    ).fit(X)
    # float32 for all rows: at a million accounts the design is ~0.25 GB instead of 0.5, and the
    # refit's K-means (its tolerance takes a variance, a copy of the array) costs half as much.
    # The search runs in float64 on its sample.
    Z = pre.design_array(pre.encode(X), dtype=np.float32)
    rng = np.random.default_rng(seed)
    S = Z[_sample(len(Z), sample_size, seed)].astype(np.float64)
    null = _permute_attributes(S, np.asarray(pre.design_sources()), rng)
    sil_rows = _sample(len(S), SILHOUETTE_ROWS, seed)
    halves = np.array_split(rng.permutation(len(S)), 2)
    # More clusters than distinct points (or than a half-sample holds) cannot be found.
    k_top = min(k_max, len(np.unique(S, axis=0)), len(halves[1]) - 1)
    by_k, fits = [], {}
    for k in range(k_min, k_top + 1):
        km = _kmeans(k, seed).fit(S)
        fits[k] = km
        sil = _silhouette(S[sil_rows], km.labels_[sil_rows], seed)
        null_sil = _silhouette(null[sil_rows], _kmeans(k, seed).fit(null).labels_[sil_rows], seed)
        a, b = (_kmeans(k, seed).fit(S[h]).predict(S) for h in halves)
        stability = float(adjusted_rand_score(a, b))
        gain = sil - null_sil
        ok = bool(gain >= MIN_GAIN and stability >= MIN_STABILITY)
        by_k.append(KDiagnostics(k, sil, null_sil, gain, stability, ok))
    passing = [d for d in by_k if d.qualifies]
    if not passing:
        reason = (
            f"no k in {k_min}..{k_max} beats the column-permuted null by {MIN_GAIN} in silhouette with "
            f"stability >= {MIN_STABILITY}: one segment is as good as any split"
        )
        log.info("segments: none (%s)", reason)
        return SegmentResult(None, by_k, reason, len(S))
    best = max(passing, key=lambda d: (d.gain, -d.k))
    model = _refit(X, Z, pre, fits[best.k].cluster_centers_, seed)
    reason = (
        f"k={best.k}: largest silhouette gain over the null ({best.gain:.3f}; silhouette "
        f"{best.silhouette:.3f} vs {best.null_silhouette:.3f}), stability {best.stability:.2f}"
    )
    log.info("segments: %s", reason)
    return SegmentResult(model, by_k, reason, len(S))


def _refit(X: pd.DataFrame, Z: np.ndarray, pre: Preprocessor, start: np.ndarray, seed: int) -> SegmentModel:
    """K-means on all rows from the search's centres; segments numbered by size, largest first."""
    k = len(start)
    # copy_x=False: K-means centres Z in place and restores it, instead of copying all rows.
    km = KMeans(n_clusters=k, init=start, n_init=1, random_state=seed, copy_x=False).fit(Z)
    sizes = np.bincount(km.labels_, minlength=k)
    order = sorted(range(k), key=lambda j: (-sizes[j], tuple(km.cluster_centers_[j])))
    centers = [[float(v) for v in km.cluster_centers_[j]] for j in order]
    model = SegmentModel(pre, k, centers, seed=seed)
    labels = _nearest(Z, np.asarray(centers, dtype=Z.dtype))
    rows = _sample(len(Z), SILHOUETTE_ROWS, seed)  # the rows separation() uses
    model.silhouette = _silhouette(Z[rows].astype(np.float64), labels[rows], seed)
    model.names = profile_segments(X, labels)["name"].tolist()
    return model


def _kmeans(k: int, seed: int) -> KMeans:
    return KMeans(n_clusters=k, n_init=N_INIT, random_state=seed)


def _sample(n: int, size: int, seed: int) -> np.ndarray:
    """Sorted seeded row positions: all rows when ``n <= size``."""
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))


def _permute_attributes(Z: np.ndarray, sources: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each attribute's design columns permuted across rows, independently of the others.

    An attribute's one-hot block moves as one, so every null row is still a valid encoding.
    """
    out = np.empty_like(Z)
    for source in dict.fromkeys(sources.tolist()):
        cols = np.flatnonzero(sources == source)
        out[:, cols] = Z[rng.permutation(len(Z))][:, cols]
    return out


def _silhouette(Z: np.ndarray, labels: np.ndarray, seed: int) -> float:
    if not 2 <= len(np.unique(labels)) < len(labels):
        return -1.0  # duplicate points collapsed the clusters: no separation to speak of
    return float(silhouette_score(Z, labels, random_state=seed))


def _nearest(Z: np.ndarray, C: np.ndarray) -> np.ndarray:
    # |z - c|^2 = |z|^2 - 2 z.c + |c|^2, without an (n, k, features) array.
    d = np.einsum("ij,ij->i", Z, Z)[:, None] - 2.0 * Z @ C.T + (C**2).sum(axis=1)
    return np.argmin(d, axis=1)


def _is_flag(s: pd.Series) -> bool:
    """A numeric column with at most two values (0/1, 1/2): categorical for segments."""
    return bool(pd.api.types.is_numeric_dtype(s) and not _is_category(s) and s.dropna().nunique() <= 2)


def _is_category(s: pd.Series) -> bool:
    return not pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s)


def _is_scale(s: pd.Series) -> bool:
    """Numbers with more than two values: described as high / low rather than by value."""
    return not _is_category(s) and not _is_flag(s)


def _labels(s: pd.Series) -> pd.Series:
    return value_labels(s).fillna(MISSING).astype(str)


def _plain(v: Any) -> Any:
    """NumPy scalar -> Python scalar, for JSON."""
    return v.item() if isinstance(v, np.generic) else v


def _finite(v: Any) -> Any:
    if isinstance(v, float | np.floating):
        return float(v) if np.isfinite(v) else None
    return v.item() if isinstance(v, np.generic) else v


# ---------------------------------------------------------------------------------------- profiling


def _distinguishing(X: pd.DataFrame, in_segment: np.ndarray) -> list[tuple[float, str]]:
    """(score, phrase) per attribute: how far the segment sits from everyone, in sd units.

    Numeric with more than two values: standardised mean difference, phrased "high x" / "low x".
    Categorical (booleans and two-value columns included, "x = yes"): for the value
    whose share rises most, the share difference divided by the indicator's sd
    sqrt(p (1 - p)) — the standardised mean difference of the indicator, so both kinds compare.
    """
    found = []
    for c in X.columns:
        s = X[c]
        if _is_scale(s):
            v = as_float(s)
            sd = float(v.std(ddof=0))
            seg_mean = float(v[in_segment].mean())
            if not sd > 0 or math.isnan(seg_mean):
                continue
            d = (seg_mean - float(v.mean())) / sd
            found.append((abs(d), f"{'high' if d > 0 else 'low'} {c}"))
        else:
            labels = _labels(s)
            overall = labels.value_counts(normalize=True)
            seg = labels[in_segment].value_counts(normalize=True).reindex(overall.index, fill_value=0.0)
            p = overall[(overall > 0) & (overall < 1)]
            if p.empty:
                continue
            d = (seg[p.index] - p) / np.sqrt(p * (1 - p))
            value = d.idxmax()
            if d[value] > 0:
                found.append((float(d[value]), f"{c} = {value}"))
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
    distinguishing attributes joined with ", " (e.g. "high employees, industry = Healthcare").
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
            if _is_scale(X[c]):
                row[f"{c}_median"] = float(as_float(X[c][mask]).median())
            else:
                shares = _labels(X[c][mask]).value_counts(normalize=True)
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
            log.info("distinct_icps: %s cannot be tested across segments", outcome)
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


# ---------------------------------------------------------------------------------------------
# a registrable segment model (icp-segments)



