"""Leakage report: which features look written after the outcome, with the evidence.

Such a feature (a stage, a close value of 0 on lost deals, notes typed in after the call) makes a
model look excellent and useless. Three views, each ranking every feature:

- **single-feature AUC** on the training rows (numbers ranked as they are, missing as its own
  lowest value; categories target-encoded out of fold with scikit-learn's ``TargetEncoder``, so
  an id-like column cannot memorise its way up);
- **missingness AUC**: the AUC of ``isna()`` alone — fields filled in only after contact;
- **permutation loss**, once a model is fitted: validation AUC lost when all columns of one
  source attribute are shuffled together.

A feature *far above the rest* is returned as a **suspected leak** (training goes on, the
summary and the profile name it). The rule, in :data:`SUSPECT_AUC` / :data:`SUSPECT_GAP` /
:data:`SUSPECT_MAX_GROUP` / :data:`PERMUTATION_MIN_LOSS` / :data:`PERMUTATION_DOMINANCE`:

- its single-feature AUC, or its missingness AUC, is at least 0.8 and at least 0.1 above the
  highest feature outside its group (a group of at most 3 features and at most half of them, so
  two leaks side by side are both caught, while a problem where every feature is strong is not a
  leak); or
- shuffling it costs the model at least 0.1 validation AUC and more than three times all other
  attributes' losses together. (The looser "more than all others together" flagged a genuine
  top driver in each of the four outcomes of the synthetic CRM, e.g. intent score for conversion
  at 0.165 against 0.085 for all others; a leak leaves the rest of the model with little to do.)

Only a single-feature AUC above ``leakage.max_single_feature_auc`` (0.95) stops training
(:class:`~icpkit.errors.LeakageError`, exit code 2).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import sklearn
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import TargetEncoder
from sklearn.utils.fixes import parse_version

from icpkit.errors import LeakageError
from icpkit.models.evaluation import roc_auc
from icpkit.models.permutation import ShuffledScores, shuffled_scores

log = logging.getLogger(__name__)

#: A feature is suspected when its AUC (single-feature or missingness) reaches this ...
SUSPECT_AUC = 0.8
#: ... and stands this far above the highest feature outside its group.
SUSPECT_GAP = 0.1
#: At most this many features (and at most half of them) can stand out together.
SUSPECT_MAX_GROUP = 3
#: A permutation loss must reach this (validation AUC) ...
PERMUTATION_MIN_LOSS = 0.1
#: ... and exceed this multiple of all other attributes' losses together.
PERMUTATION_DOMINANCE = 3.0
#: Shuffles per attribute; the loss is their mean.
PERMUTATION_REPEATS = 3

FEATURE_COLUMNS = (
    "feature",
    "source",
    "single_feature_auc",
    "missing_share",
    "missingness_auc",
    "permutation_auc_loss",
    "suspected",
)


# ------------------------------------------------------------------------------------ per feature


def _direction_free(auc: float) -> float:
    return 0.5 if not np.isfinite(auc) else float(max(auc, 1.0 - auc))


def single_feature_auc(x: pd.Series, y: np.ndarray, seed: int = 0) -> float:
    """ROC-AUC of one feature alone, direction-free (max of AUC and 1 - AUC).

    Numbers are ranked as they are (missing as its own lowest value); categories are
    target-encoded out of fold (``TargetEncoder(cv=5, shuffle=True, random_state=seed)``), so a
    high-cardinality id-like column is not flagged just because in-sample means memorise it.

    Parameters
    ----------
    x
        The feature's values on the training rows.
    y
        0/1 labels.
    seed
        Seed of the out-of-fold split.

    Returns
    -------
    float
        In [0.5, 1]; 0.5 when ``y`` has one class or ``x`` is empty.
    """
    return single_feature_aucs(x.to_frame(name="x"), y, seed)["x"]


def single_feature_aucs(X: pd.DataFrame, y: np.ndarray, seed: int = 0) -> dict[str, float]:
    """:func:`single_feature_auc` of every column of ``X``, the categories encoded in one pass.

    The out-of-fold split depends on the labels and the seed only, and each column is encoded
    from its own values, so one ``TargetEncoder`` over all text columns gives each column the
    values it gets alone, at one encoder's overhead instead of one per column.
    """
    y = np.asarray(y, dtype=int)
    if len(np.unique(y)) < 2:
        return {str(c): 0.5 for c in X.columns}
    out: dict[str, float] = {}
    text = []
    for col in X.columns:
        x = X[col]
        if not (pd.api.types.is_numeric_dtype(x) or pd.api.types.is_bool_dtype(x)):
            text.append(col)
            continue
        v = pd.to_numeric(x, errors="coerce").astype(float).to_numpy()
        known = ~np.isnan(v)
        # Missing ranks below every value (an export's -inf ties with it, which is harmless).
        out[str(col)] = _direction_free(roc_auc(y, np.where(known, v, -np.inf))) if known.any() else 0.5
    # TargetEncoder stratifies its folds; every class needs a member in each fold.
    folds = int(min(5, np.bincount(y).min()))
    if text and folds >= 2:
        s = pd.DataFrame({f"c{i}": X[c].astype("str").fillna("<missing>").to_numpy() for i, c in enumerate(text)})
        encoded = _target_encoder(folds, seed).fit_transform(s, y)
        out |= {str(c): _direction_free(roc_auc(y, encoded[:, i])) for i, c in enumerate(text)}
    out |= {str(c): 0.5 for c in text if str(c) not in out}
    return {str(c): out[str(c)] for c in X.columns}


def _target_encoder(folds: int, seed: int) -> TargetEncoder:
    """``TargetEncoder(cv=folds, shuffle=True, random_state=seed)``, spelled for any scikit-learn.

    scikit-learn 1.9 deprecates ``shuffle``/``random_state`` in favour of a splitter; for a
    binary target both spellings use the same seeded ``StratifiedKFold``.
    """
    if parse_version(sklearn.__version__) >= parse_version("1.9"):
        return TargetEncoder(target_type="binary", cv=StratifiedKFold(folds, shuffle=True, random_state=seed))
    return TargetEncoder(target_type="binary", cv=folds, shuffle=True, random_state=seed)


def missingness_auc(x: pd.Series, y: np.ndarray) -> float:
    """Direction-free ROC-AUC of ``x.isna()`` alone (0.5 when nothing or everything is missing)."""
    y = np.asarray(y, dtype=int)
    missing = x.isna().to_numpy()
    if not missing.any() or missing.all() or len(np.unique(y)) < 2:
        return 0.5
    return _direction_free(roc_auc(y, missing.astype(float)))


def permutation_auc_loss(
    score: Callable[[pd.DataFrame], np.ndarray],
    X: pd.DataFrame,
    y: np.ndarray,
    groups: Mapping[str, list[str]],
    seed: int = 0,
    n_repeats: int = PERMUTATION_REPEATS,
    shuffled: ShuffledScores | None = None,
    base_auc: float | None = None,
) -> dict[str, float]:
    """Validation AUC lost when all columns of a group are shuffled together (mean of repeats).

    Parameters
    ----------
    score
        Maps a frame like ``X`` to scores (e.g. ``lambda E: model.raw_score(E, encoded=True)``).
        ``X`` is shuffled already encoded, so nothing is re-encoded per shuffle.
    X, y
        Out-of-sample rows (the validation period) and their labels.
    groups
        Group name (source attribute) -> its columns in ``X``.
    seed
        Seed of the shuffles.
    n_repeats
        Shuffles per group.
    shuffled
        The same scores of shuffled copies of ``X``, faster (e.g. a LightGBM model's
        :meth:`~icpkit.models.propensity.PropensityModel.shuffled_raw_scores`); by default
        ``score`` of each shuffled copy.
    base_auc
        The AUC of ``score(X)``, when the caller has it already (else computed here).

    Returns
    -------
    dict
        Group -> AUC of the intact rows minus the mean AUC with the group shuffled.
    """
    y = np.asarray(y, dtype=int)
    base = roc_auc(y, score(X)) if base_auc is None else base_auc
    shuffled = shuffled or shuffled_scores(score, X)
    rng = np.random.default_rng(seed)
    n = len(X)
    losses: dict[str, float] = {}
    for name, cols in groups.items():
        present = [c for c in cols if c in X.columns]
        if not present:
            continue
        scores = shuffled(present, [rng.permutation(n) for _ in range(n_repeats)]).reshape(n_repeats, n)
        losses[name] = float(np.mean([base - roc_auc(y, s) for s in scores]))
    return losses


# ---------------------------------------------------------------------------------------- report


@dataclass(frozen=True)
class SuspectedLeak:
    """A feature (or source attribute) far above the rest, with why."""

    feature: str
    #: Which views flagged it: ``single_feature_auc``, ``missingness``, ``permutation``.
    rules: tuple[str, ...]
    evidence: str


@dataclass
class LeakageReport:
    """Every feature's leakage evidence, and the suspected leaks (see the module docstring)."""

    outcome: str
    #: One row per feature, columns :data:`FEATURE_COLUMNS`; ``permutation_auc_loss`` is the
    #: loss of the feature's source attribute (NaN until a model is fitted).
    features: pd.DataFrame
    hard_threshold: float
    suspected: list[SuspectedLeak] = field(default_factory=list)
    #: Validation AUC of the model the permutation losses were measured on.
    model_validation_auc: float = float("nan")

    @property
    def suspected_names(self) -> list[str]:
        """The features suspected of leaking."""
        return [s.feature for s in self.suspected]

    def single_feature_auc(self) -> dict[str, float]:
        """Feature -> the AUC of that feature alone."""
        return dict(
            zip(self.features["feature"], self.features["single_feature_auc"].astype(float), strict=True)
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: thresholds, the suspected leaks and the ranked feature table."""

        def clean(v: Any) -> Any:
            if isinstance(v, float | np.floating):
                return None if not math.isfinite(float(v)) else round(float(v), 6)
            if isinstance(v, np.bool_):
                return bool(v)
            return v

        table = self.features.sort_values("single_feature_auc", ascending=False, kind="stable")
        return {
            "outcome": self.outcome,
            "rules": {
                "suspect_auc": SUSPECT_AUC,
                "suspect_gap": SUSPECT_GAP,
                "suspect_max_group": SUSPECT_MAX_GROUP,
                "permutation_min_loss": PERMUTATION_MIN_LOSS,
                "permutation_dominance": PERMUTATION_DOMINANCE,
                "hard_threshold": self.hard_threshold,
            },
            "model_validation_auc": clean(self.model_validation_auc),
            "suspected": [
                {"feature": s.feature, "rules": list(s.rules), "evidence": s.evidence} for s in self.suspected
            ],
            "features": [{k: clean(v) for k, v in row.items()} for row in table.to_dict(orient="records")],
        }


def _far_above(values: Mapping[str, float]) -> dict[str, tuple[str | None, float]]:
    """Names standing out from the rest by the gap rule, each with the highest one outside the group."""
    ranked = sorted(values.items(), key=lambda kv: (-kv[1], kv[0]))
    limit = min(SUSPECT_MAX_GROUP, max(1, len(ranked) // 2))
    for size in range(1, min(limit, len(ranked)) + 1):
        lowest_in = ranked[size - 1][1]
        nxt_name, nxt = ranked[size] if size < len(ranked) else (None, 0.5)
        if lowest_in >= SUSPECT_AUC and lowest_in - nxt >= SUSPECT_GAP:
            return {name: (nxt_name, nxt) for name, _ in ranked[:size]}
    return {}


def _suspects(table: pd.DataFrame) -> list[SuspectedLeak]:
    rules: dict[str, list[str]] = {}
    evidence: dict[str, list[str]] = {}

    def add(name: str, rule: str, text: str) -> None:
        rules.setdefault(name, []).append(rule)
        evidence.setdefault(name, []).append(text)

    single = dict(zip(table["feature"], table["single_feature_auc"], strict=True))
    for name, (nxt_name, nxt) in _far_above(single).items():
        beside = f"next: '{nxt_name}' {nxt:.3f}" if nxt_name else "no other feature"
        add(name, "single_feature_auc", f"single-feature AUC {single[name]:.3f} ({beside})")
    missing = dict(zip(table["feature"], table["missingness_auc"], strict=True))
    share = dict(zip(table["feature"], table["missing_share"], strict=True))
    for name, (nxt_name, nxt) in _far_above(missing).items():
        beside = f"next: '{nxt_name}' {nxt:.3f}" if nxt_name else "no other feature"
        add(
            name,
            "missingness",
            f"empty in {share[name]:.0%} of rows and whether it is empty alone has AUC {missing[name]:.3f} "
            f"({beside}): typical of a field filled in after the outcome",
        )
    losses = table.drop_duplicates("source").set_index("source")["permutation_auc_loss"].dropna()
    if len(losses):
        positive = losses.clip(lower=0)
        for source, loss in losses.items():
            others = float(positive.sum() - max(loss, 0.0))
            if loss >= PERMUTATION_MIN_LOSS and loss > PERMUTATION_DOMINANCE * others:
                add(
                    str(source),
                    "permutation",
                    f"shuffling it costs the model {loss:.3f} validation AUC, more than "
                    f"{PERMUTATION_DOMINANCE:g}x all other attributes together ({others:.3f})",
                )
    order = list(table["feature"]) + [s for s in rules if s not in set(table["feature"])]
    return [
        SuspectedLeak(name, tuple(rules[name]), "; ".join(evidence[name])) for name in order if name in rules
    ]


def _with_suspects(report: LeakageReport) -> LeakageReport:
    suspected = _suspects(report.features)
    names = {s.feature for s in suspected}
    features = report.features.copy()
    features["suspected"] = features["feature"].isin(names) | features["source"].isin(names)
    return replace(report, features=features, suspected=suspected)


def screen_features(
    X: pd.DataFrame,
    y: np.ndarray,
    outcome: str,
    hard_threshold: float,
    feature_source: Mapping[str, str] | None = None,
    seed: int = 0,
) -> LeakageReport:
    """Single-feature and missingness AUC of every feature; stop above the hard threshold.

    Parameters
    ----------
    X, y
        Raw training features and 0/1 labels.
    outcome
        Outcome name (for messages).
    hard_threshold
        ``leakage.max_single_feature_auc``: a single-feature AUC above it stops training.
    feature_source
        Feature column -> source attribute (default: each column is its own source).
    seed
        The config's seed (out-of-fold target encoding).

    Returns
    -------
    LeakageReport
        Without permutation losses yet (see :func:`add_permutation`).

    Raises
    ------
    LeakageError
        If a feature's single-feature AUC exceeds ``hard_threshold``.
    """
    y = np.asarray(y, dtype=int)
    source = dict(feature_source or {})
    alone = single_feature_aucs(X, y, seed)
    rows = [
        {
            "feature": col,
            "source": source.get(col, col),
            "single_feature_auc": alone[str(col)],
            "missing_share": float(X[col].isna().mean()) if len(X) else 0.0,
            "missingness_auc": missingness_auc(X[col], y),
            "permutation_auc_loss": float("nan"),
            "suspected": False,
        }
        for col in X.columns
    ]
    table = pd.DataFrame(rows, columns=list(FEATURE_COLUMNS))
    leaks = table[table["single_feature_auc"] > hard_threshold].sort_values(
        "single_feature_auc", ascending=False
    )
    if len(leaks):
        listed = ", ".join(
            f"'{f}' (AUC {a:.3f})" for f, a in zip(leaks["feature"], leaks["single_feature_auc"], strict=True)
        )
        raise LeakageError(
            f"outcome '{outcome}': feature {listed} predicts the label almost perfectly on its own "
            f"(leakage.max_single_feature_auc={hard_threshold}). It is probably written after the "
            "outcome. Add it to leakage.deny_columns in the config (or fix the export), then train again."
        )
    return _with_suspects(LeakageReport(outcome, table, hard_threshold))


def add_permutation(
    report: LeakageReport,
    score: Callable[[pd.DataFrame], np.ndarray],
    X: pd.DataFrame,
    y: np.ndarray,
    seed: int = 0,
    shuffled: ShuffledScores | None = None,
) -> LeakageReport:
    """The report with each source attribute's permutation loss on ``(X, y)`` and updated suspects.

    Parameters
    ----------
    report
        From :func:`screen_features`.
    score
        The fitted model's score on encoded rows (out of sample: the validation period).
    X, y
        Encoded validation rows and labels; columns named like the report's features.
    seed
        The config's seed.
    shuffled
        Faster scores of shuffled copies of ``X`` (see :func:`permutation_auc_loss`).
    """
    table = report.features.copy()
    groups: dict[str, list[str]] = {}
    for feature, src in zip(table["feature"], table["source"], strict=True):
        groups.setdefault(str(src), []).append(str(feature))
    validation_auc = roc_auc(np.asarray(y, dtype=int), score(X))  # the intact rows, scored once
    losses = permutation_auc_loss(score, X, y, groups, seed=seed, shuffled=shuffled, base_auc=validation_auc)
    table["permutation_auc_loss"] = table["source"].map(losses).astype(float)
    return _with_suspects(replace(report, features=table, model_validation_auc=validation_auc))


