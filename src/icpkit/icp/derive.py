"""Derive the ICP from trained outcome models, as a chain of small pure steps.

:func:`derive_icp` reads like the method:

1. **evidence** — which outcome models beat chance on their test period, and which attributes
   help them out of sample (permutation test, Benjamini-Hochberg corrected);
2. **weights** — mean |SHAP| per attribute, split by role: customer traits (the ICP), offer
   levers, sales organisation, engagement;
3. **fit scorecard** — an additive points scorecard on the ICP attributes only, validated on each
   fit outcome's test period;
4. **engagement scorecard** — the same on behavioral attributes and activity counts;
5. **negative ICP** — churn and loss drivers, censoring artefacts set aside, consolidated into
   non-overlapping exclusion and penalty rules;
6. **segments** — K-means on the ICP attributes, or none when no split beats one segment;
7. **the fitted ICP** — one object that scores any account (:class:`~icpkit.icp.model.FittedICP`);
8. **scores and tiers** of the book, and the **tier table** on the test periods with a trend test;
9. **value cohorts** and their traits; 10. **what changed** since the previous profile.

Nothing here touches MLflow; the profile is a report about the fitted ICP (:mod:`icpkit.icp.profile`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from icpkit.attributes import AttributeSpec, prepare_attributes
from icpkit.config import Config
from icpkit.data.crm import CRMData
from icpkit.features import account_attributes_as_of, engagement_features
from icpkit.icp.censoring import censoring_check, unlabelled_note
from icpkit.icp.cohorts import cohort_traits, lifetime_value, value_cohorts, value_lift
from icpkit.icp.evidence import attribute_evidence
from icpkit.icp.model import FittedICP, Scorecard, Segmentation, row_slices
from icpkit.icp.negative import DriverRule, cap_share, consolidate_rules, count_matches, risk_drivers
from icpkit.icp.scorecard import AdditiveScorecard
from icpkit.icp.scores import PercentileReference, capacity_cutoff
from icpkit.icp.segments import SegmentResult, distinct_icps, fit_segments, profile_segments
from icpkit.icp.tier_table import check_monotone, tier_table, tier_trend
from icpkit.icp.weights import attribute_weights, blend_weights
from icpkit.memory import release_freed_memory
from icpkit.models import evaluation as ev
from icpkit.models.fitting import bounded_fit_rows
from icpkit.models.preprocessing import Preprocessor
from icpkit.threads import thread_limits

if TYPE_CHECKING:
    from icpkit.training import OutcomeReport, TrainingResult

log = logging.getLogger(__name__)

#: Bad-outcome rates are "drivers" of the negative ICP from these outcomes (1 - label).
NEGATIVE_OUTCOMES = {"renewal": "churn", "win": "loss"}
#: A driver is confirmed when the model's mean SHAP contribution for it is at most this (log-odds;
#: -0.2 = the model lowers the odds by at least 18 % for accounts with the value, others held).
CONFIRM_LOG_ODDS = -0.2
#: A confirmed driver becomes an exclusion at this lift (bad rate / baseline) or more.
EXCLUSION_MIN_LIFT = 1.5
#: Test rows used for each attribute's out-of-sample evidence (permutation is predict-only).
EVIDENCE_ROWS = 5000
#: Smallest effect size (rank-biserial r or Cramér's V) for a significant difference to be a trait.
MIN_TRAIT_EFFECT = 0.1
FIT_ROLES = ("customer",)


# ---------------------------------------------------------------------------------------------
# 1. evidence


@dataclass
class Evidence:
    """Which outcomes carry signal and which attributes help them out of sample."""

    verdicts: dict[str, dict[str, Any]]
    fit_outcomes: list[str]
    with_signal: list[str]
    note: str
    attributes: dict[str, pd.DataFrame] = field(default_factory=dict)
    weights: dict[str, pd.DataFrame] = field(default_factory=dict)


def _verdict(r: OutcomeReport, p_value: float | None, alpha: float) -> dict[str, Any]:
    if r.status != "trained" or r.test is None:
        return {"status": "skipped", "reason": r.reason}
    lo, hi = r.test.ci["roc_auc"]
    unseen = r.test_unseen
    return {
        "status": "signal" if p_value is not None and p_value < alpha else "no evidence",
        "p_value_holm": p_value,
        "unseen_accounts_auc": unseen.metrics["roc_auc"] if unseen is not None else None,
        "unseen_accounts_rows": r.n_test_unseen,
        "ece": r.test.metrics["ece"],
        "test_auc": r.test.metrics["roc_auc"],
        "auc_95ci": [lo, hi],
        "model": r.model.kind if r.model else None,
        "test_rows": r.test.n,
    }


def evidence_step(training: TrainingResult, cfg: Config) -> Evidence:
    """Verdict per outcome; the fit outcomes (the blend's trained ones, else whatever trained)."""
    p_values = training.signal_p_values()
    alpha = cfg.icp.significance_level
    verdicts = {name: _verdict(r, p_values.get(name), alpha) for name, r in training.reports.items()}
    trained = list(training.trained)
    fit = [o for o in cfg.icp.fit_blend if o in trained and cfg.icp.fit_blend[o] > 0]
    note = ""
    if not fit and trained:
        fit = trained
        note = (
            f"None of the fit outcomes ({', '.join(cfg.icp.fit_blend)}) was trained; the profile rests on "
            f"{', '.join(trained)}."
        )
    signal = [o for o in fit if verdicts[o]["status"] == "signal"]
    evidence = Evidence(verdicts, fit, signal, note)
    for name in training.trained:
        r = training.reports[name]
        evidence.attributes[name] = _attribute_evidence(r, cfg)
        evidence.weights[name] = attribute_weights(
            r.shap_values, r.dataset.feature_source, r.dataset.source_dimension,
            evidence=evidence.attributes[name], source_role=r.dataset.source_role,
        )  # fmt: skip
    return evidence


def _attribute_evidence(r: OutcomeReport, cfg: Config) -> pd.DataFrame:
    n_test = int(r.split.test.sum())
    n = min(n_test, EVIDENCE_ROWS)
    pick = np.sort(np.random.default_rng(cfg.seed).choice(n_test, size=n, replace=False))
    X_pick, y_pick = r.test_frame(pick)  # only the sampled rows' features are copied
    return attribute_evidence(
        r.model, X_pick, y_pick, r.dataset.feature_source,
        seed=cfg.seed, alpha=cfg.icp.significance_level,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# 2. weights


@dataclass
class Weights:
    """Attribute weights over the fit outcomes with signal, split by role."""

    blended: pd.DataFrame
    icp: pd.DataFrame
    offer: pd.DataFrame
    sales_org: pd.DataFrame
    engagement: pd.DataFrame

    @property
    def icp_attributes(self) -> list[str]:
        """The ICP attributes, largest weight first."""
        return self.icp["attribute"].tolist()


def _share(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame[frame["weight"] > 0].copy()
    total = out["weight"].sum()
    out["share_of_role"] = 100.0 * out["weight"] / total if total > 0 else 0.0
    return out.reset_index(drop=True)


def weights_step(evidence: Evidence, catalogue: dict[str, dict[str, AttributeSpec]], cfg: Config) -> Weights:
    """Blend the outcomes' weights and split them: the ICP is the customer traits with evidence."""
    present = {o: cfg.icp.fit_blend.get(o, 1.0) for o in evidence.with_signal if o in evidence.weights}
    if not present:
        empty = pd.DataFrame(columns=["attribute", "dimension", "role", "weight"])
        return Weights(empty, empty, empty, empty, empty)
    blended = blend_weights(evidence.weights, present)
    account_level = {*catalogue.get("accounts", {}), *catalogue.get("account_history", {})}
    is_icp = (
        blended["role"].isin(FIT_ROLES)
        & (blended["dimension"] != "behavioral")
        & blended["attribute"].isin(account_level)
    )
    engagement = blended["role"].eq("engagement") | (
        blended["role"].eq("customer") & blended["dimension"].eq("behavioral")
    )
    return Weights(
        blended=blended,
        icp=_share(blended[is_icp]),
        offer=_share(blended[blended["role"].eq("offer")]),
        sales_org=_share(blended[blended["role"].eq("sales_org")]),
        engagement=_share(blended[engagement]),
    )


# ---------------------------------------------------------------------------------------------
# 3./4. scorecards


@dataclass
class Stacked:
    """Rows of several outcomes stacked for one scorecard: raw inputs, labels, offsets, weights."""

    raw: pd.DataFrame
    as_of: pd.Series
    y: np.ndarray
    weight: np.ndarray
    offset: np.ndarray
    part: np.ndarray  # "train" / "validation" / "test" per row
    outcome: np.ndarray


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return float(np.log(p / (1 - p)))


def stack_rows(
    crm: CRMData,
    reports: dict[str, OutcomeReport],
    blend: dict[str, float],
    attributes: dict[str, AttributeSpec],
    extra_columns: list[str],
    max_fit_rows: int | None = None,
    seed: int = 0,
) -> Stacked | None:
    """The labelled rows of each blended outcome, with their account's raw attributes as of the row.

    Each outcome starts from its own training base rate (offset), and its training rows are
    weighted by the blend over its row count, so stacking learns attribute effects only. Per
    outcome, at most ``max_fit_rows`` training + validation rows are kept (a seeded sample, as
    the outcome models are fitted; see :func:`~icpkit.models.fitting.bounded_fit_rows`); every
    test row is kept.
    """
    parts = []
    for name, w in blend.items():
        r = reports.get(name)
        if w <= 0 or r is None or r.split is None:
            continue
        fit_train, fit_validation = bounded_fit_rows(r.split, max_fit_rows, seed)
        keep = fit_train | fit_validation | r.split.test
        lab = r.labelled_part(keep, columns=[c for c in extra_columns if c in r.dataset.X.columns])
        split_train, split_validation = fit_train[keep], fit_validation[keep]
        spec = lab.spec
        raw = account_attributes_as_of(
            crm, lab.account_ids, lab.as_of, list(attributes),
            spec.snapshot_max_age_days if spec else None, spec.snapshot_columns if spec else None,
        )  # fmt: skip
        for c in extra_columns:
            raw[c] = lab.X[c].to_numpy() if c in lab.X.columns else np.nan
        part = np.where(split_train, "train", np.where(split_validation, "validation", "test"))
        y = lab.y.to_numpy(dtype=int)
        n_train = max(int(split_train.sum()), 1)
        offset = np.full(len(y), _logit(y[split_train].mean()))
        parts.append((raw, lab.as_of, y, np.full(len(y), w / n_train), offset, part, name))
    if not parts:
        return None
    weight = np.concatenate([p[3] for p in parts])
    return Stacked(
        raw=pd.concat([p[0] for p in parts], ignore_index=True),
        as_of=pd.concat([p[1] for p in parts], ignore_index=True),
        y=np.concatenate([p[2] for p in parts]),
        weight=weight * len(weight) / weight.sum(),
        offset=np.concatenate([p[4] for p in parts]),
        part=np.concatenate([p[5] for p in parts]),
        outcome=np.concatenate([np.full(len(p[2]), p[6], dtype=object) for p in parts]),
    )


def fit_scorecard(
    stacked: Stacked, attributes: dict[str, AttributeSpec], extra_columns: list[str], book: pd.DataFrame,
    book_as_of: pd.Timestamp, cfg: Config,
) -> Scorecard | None:
    """An additive scorecard on the stacked training rows, early-stopped on the validation rows.

    The book's points are its percentile reference.
    """
    features = prepare_attributes(stacked.raw, attributes, stacked.as_of)
    for c in extra_columns:
        features[c] = pd.to_numeric(stacked.raw[c], errors="coerce").astype("float64")
    if features.shape[1] == 0:
        return None
    train, valid = stacked.part == "train", stacked.part == "validation"
    encoder = Preprocessor().fit(features[train])
    codes = encoder.encode(features)
    card = AdditiveScorecard.fit(
        codes[train], stacked.y[train], encoder.categorical_columns_, seed=cfg.seed,
        X_valid=codes[valid], y_valid=stacked.y[valid], num_threads=cfg.training.num_threads,
        category_labels=encoder.categories_, num_boost_round=500, sample_weight=stacked.weight[train],
        init_score=stacked.offset[train], valid_init_score=stacked.offset[valid],
    )  # fmt: skip
    partial = Scorecard(attributes, encoder, card, PercentileReference([0.0], [1]), extra_columns)
    # The book in slices: a million accounts' encoded features at once would be ~1 GB.
    points = np.concatenate(
        [card.score(partial.features(book.iloc[rows], book_as_of)) for rows in row_slices(len(book))]
    )
    partial.reference = PercentileReference.from_scores(points)
    return partial


def scorecard_validation(card: Scorecard, stacked: Stacked, cfg: Config) -> dict[str, dict[str, Any]]:
    """The scorecard's test-period AUC (bootstrap 95 % CI) per outcome, and whether it beats chance."""
    out = {}
    test = stacked.part == "test"
    points = card.card.score(card.features(stacked.raw[test], stacked.as_of[test])).astype(float)
    for name in pd.unique(stacked.outcome[test]):
        mask = stacked.outcome[test] == name
        y = stacked.y[test][mask]
        if len(np.unique(y)) < 2:
            out[str(name)] = {"test_rows": int(mask.sum()), "beats_chance": False, "note": "one class only"}
            continue
        evaluation = ev.evaluate(y, points[mask] / 100.0, n_boot=cfg.training.bootstrap_samples, seed=cfg.seed)
        lo, hi = evaluation.ci["roc_auc"]
        out[str(name)] = {
            "scorecard_test_auc": float(roc_auc_score(y, points[mask])),
            "auc_95ci": [lo, hi],
            "test_rows": int(mask.sum()),
            "beats_chance": bool(lo > 0.5),
        }
    return out


# ---------------------------------------------------------------------------------------------
# 5. negative ICP


@dataclass
class NegativeICP:
    """Drivers, the rules made of them, and what was set aside and why."""

    drivers: pd.DataFrame
    censoring: dict[str, pd.DataFrame]
    exclusions: list[DriverRule]
    penalty_rules: list[DriverRule]
    #: (rule, why) for every confirmed driver that is neither an exclusion nor in the penalty.
    set_aside: list[tuple[DriverRule, str]]
    unlabelled: list[str]
    offer_risks: pd.DataFrame


def _driver_columns(r: OutcomeReport) -> list[str]:
    """Feature columns of an outcome that are customer or offer attributes (no activity counts)."""
    ds = r.dataset
    return [c for c in ds.X.columns if ds.source_role.get(ds.feature_source.get(c, c)) in ("customer", "offer")]


def _confirm(drivers: pd.DataFrame, r: OutcomeReport) -> pd.Series:
    """Mean SHAP contribution of each driver's rows in the outcome model (negative lowers the outcome)."""
    shap, rows = r.shap_values, r.shap_rows
    out = []
    for d in drivers.to_dict(orient="records"):
        col = d["attribute"]
        if shap is None or rows is None or col not in shap.columns or col not in rows.columns:
            out.append(np.nan)
            continue
        mask = consolidate_rules(pd.DataFrame([d]))[0].matches(rows.reset_index(drop=True))
        out.append(float(shap[col].to_numpy()[mask].mean()) if mask.any() else np.nan)
    return pd.Series(out, index=drivers.index, dtype=float)


def outcome_drivers(r: OutcomeReport, kind: str, alpha: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Drivers of one outcome's bad result, model-confirmed and censoring-checked."""
    ds = r.dataset
    cols = _driver_columns(r)
    censoring = censoring_check(ds.X[cols], ds.labelled.to_numpy(), alpha)
    lab = r.labelled_part(columns=cols)
    drivers = risk_drivers(lab.X, 1 - lab.y.astype("Int8"), kind, alpha=alpha)
    drivers["role"] = drivers["attribute"].map(lambda c: ds.source_role.get(ds.feature_source.get(c, c), "customer"))
    drivers["model_contribution"] = _confirm(drivers, r) if len(drivers) else pd.Series(dtype=float)
    drivers["confirmed_by_model"] = drivers["model_contribution"].fillna(0.0) <= CONFIRM_LOG_ODDS
    flagged = set(censoring.loc[censoring["flagged"], "attribute"])
    drivers["censoring_suspect"] = drivers["attribute"].isin(flagged)
    return drivers, censoring


def _contradicts_score(rule: DriverRule, fit: Scorecard | None, points: pd.DataFrame | None,
                       book_fit: pd.DataFrame | None) -> bool:  # fmt: skip
    """True when the fit scorecard gives the rule's accounts at least average points for the attribute.

    The bad rate then comes with other traits, and flagging them would contradict the score.
    ``points`` and ``book_fit`` are the book's fit points and prepared fit attributes (computed
    once for all rules: at a million accounts each costs seconds).
    """
    if fit is None or points is None or book_fit is None or rule.attribute not in fit.attributes:
        return False
    column = fit.attributes[rule.attribute].feature
    if column not in points.columns:
        return False
    hit = rule.matches(book_fit)
    return bool(hit.any() and points[column][hit].mean() >= points[column].mean())


def _rules(
    usable: pd.DataFrame, book_rules: pd.DataFrame, fit: Scorecard | None, book: pd.DataFrame,
    extract: pd.Timestamp, cfg: Config,
) -> tuple[list[DriverRule], list[DriverRule], list[tuple[DriverRule, str]]]:
    aside: list[tuple[DriverRule, str]] = []
    candidates = count_matches(consolidate_rules(usable[usable["lift"] >= EXCLUSION_MIN_LIFT]), book_rules)
    agreeing = []
    points = book_fit = None
    if fit is not None and candidates:
        points = fit.card.points(fit.features(book, extract))
        book_fit = prepare_attributes(book, fit.attributes, extract)
    for rule in candidates:
        if _contradicts_score(rule, fit, points, book_fit):
            aside.append((rule, "not an exclusion: the fit scorecard rates these accounts average or better on it"))
        else:
            agreeing.append(rule)
    exclusions, broad = cap_share(agreeing, book_rules, cfg.icp.max_exclusion_share)
    aside += [
        (r, "not an exclusion: together with stronger ones it would flag more than icp.max_exclusion_share of the book")
        for r in broad
    ]
    penalty = count_matches(consolidate_rules(usable[usable["outcome"] == "churn"]), book_rules)
    for rule in penalty:
        rule.points = float(min(cfg.icp.max_penalty_points, 10.0 * (rule.lift - 1.0)))
    penalty, dropped = cap_share(penalty, book_rules, cfg.icp.max_penalty_share)
    aside += [
        (r, "left out of the penalty: it would push the penalised share above icp.max_penalty_share") for r in dropped
    ]
    return exclusions, penalty, aside


def negative_step(
    reports: dict[str, OutcomeReport], book: pd.DataFrame, rule_specs: dict[str, AttributeSpec],
    fit: Scorecard | None, extract: pd.Timestamp, cfg: Config,
) -> NegativeICP:
    """Churn and loss drivers; exclusions and the fit penalty from the confirmed customer ones."""
    frames, censoring, unlabelled = [], {}, []
    for name, kind in NEGATIVE_OUTCOMES.items():
        r = reports.get(name)
        if r is None or r.dataset is None:
            continue
        drivers, censoring[name] = outcome_drivers(r, kind, cfg.icp.significance_level)
        frames.append(drivers)
        unlabelled.append(unlabelled_note(name, r.n_rows, r.n_labelled))
    drivers = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["outcome", "attribute", "significant", "confirmed_by_model", "censoring_suspect", "role", "lift"]
    )
    usable = drivers[
        drivers["significant"].astype(bool) & drivers["confirmed_by_model"].astype(bool)
        & ~drivers["censoring_suspect"].astype(bool) & drivers["role"].eq("customer")
        & drivers["attribute"].isin(set(rule_specs))
    ]  # fmt: skip
    book_rules = prepare_attributes(book, rule_specs, extract)
    exclusions, penalty, aside = _rules(usable, book_rules, fit, book, extract, cfg)
    offer = drivers[drivers["significant"].astype(bool) & drivers["role"].eq("offer")]
    return NegativeICP(drivers, censoring, exclusions, penalty, aside, unlabelled, offer.reset_index(drop=True))


# ---------------------------------------------------------------------------------------------
# 6. segments


@dataclass
class Segments:
    """The proposed segmentation (``None`` when no split beats one segment), its profile and why."""

    segmentation: Segmentation | None
    profile: pd.DataFrame | None
    note: str
    diagnostics: dict[str, Any] = field(default_factory=dict)


def segments_step(
    book: pd.DataFrame, attributes: dict[str, AttributeSpec], extract: pd.Timestamp, cfg: Config
) -> Segments:
    """K-means on the ICP attributes of the book, or none when no split beats one segment."""
    if not attributes:
        return Segments(None, None, "no attribute shows out-of-sample evidence: no segmentation proposed")
    X = prepare_attributes(book, attributes, extract).reset_index(drop=True)
    if len(X) < 50:
        return Segments(None, None, f"{len(X)} accounts: too few to segment")
    k_range = (min(cfg.icp.segments_k_range), max(cfg.icp.segments_k_range))
    result: SegmentResult = fit_segments(X, k_range=k_range, seed=cfg.seed)
    if result.model is None:
        return Segments(None, None, f"no segmentation: {result.reason}", result.diagnostics())
    profile = profile_segments(X, result.model.predict(X))
    result.model.names = [str(n) for n in profile.sort_values("segment")["name"]]
    return Segments(Segmentation(attributes, result.model), profile, result.reason, result.diagnostics())


def segment_outcomes(
    segments: Segments, book: pd.DataFrame, reports: dict[str, OutcomeReport], extract: pd.Timestamp, alpha: float
) -> list[dict[str, Any]]:
    """Each outcome's rate per segment (all labelled rows) and the segments proposed as their own ICP."""
    if segments.segmentation is None or segments.profile is None:
        return []
    seg, _ = segments.segmentation.assign(book, extract)
    of_account = pd.Series(seg, index=book["account_id"].to_numpy())
    proposals = []
    for name, r in reports.items():
        lab = r.labelled_part(columns=[])
        rows = of_account.reindex(lab.account_ids.to_numpy()).to_numpy()
        y = pd.Series(lab.y.to_numpy(dtype=float))
        known = ~pd.isna(rows)
        rates = y[known].groupby(rows[known].astype(int)).mean()
        segments.profile[f"{name}_rate"] = segments.profile["segment"].map(rates)
        outcome_y = {name: y[known].reset_index(drop=True)}
        proposals += distinct_icps(segments.profile, outcome_y, rows[known].astype(int), alpha)
    return proposals


# ---------------------------------------------------------------------------------------------
# 8. tiers on the test periods


@dataclass
class TierTable:
    """Each outcome's rate per tier on its test period, whether the tiers order it, and warnings."""

    table: pd.DataFrame
    trends: dict[str, dict[str, Any]]
    warnings: list[str]


def tier_step(
    fitted: FittedICP, crm: CRMData, reports: dict[str, OutcomeReport], book_scores: pd.DataFrame, alpha: float
) -> TierTable:
    """Each outcome's rate per tier on its test period, tiers computed as of each row's time."""
    book_tiers = book_scores.set_index("account_id")["tier"]
    table = tier_table(book_tiers, {}, None)[["tier", "accounts"]]
    trends, rate_cols = {}, []
    for name, r in reports.items():
        if r.split is None or fitted.fit is None:
            continue
        test = r.labelled_part(r.split.test, columns=[])
        spec = test.spec
        raw = account_attributes_as_of(
            crm, test.account_ids, test.as_of, fitted.input_columns()[1:],
            spec.snapshot_max_age_days if spec else None, spec.snapshot_columns if spec else None,
        )  # fmt: skip
        tiers = fitted.score(raw, test.as_of)["tier"].to_numpy()
        y = test.y.to_numpy(dtype=float)
        t = tier_table(pd.Series(tiers), {name: pd.Series(y)}, None)
        table[f"{name}_rate"], table[f"{name}_n"] = t[f"{name}_rate"].to_numpy(), t[f"{name}_n"].to_numpy()
        trends[name] = tier_trend(tiers, y)
        rate_cols.append(f"{name}_rate")
    return TierTable(table, trends, check_monotone(table, rate_cols, alpha=alpha))


# ---------------------------------------------------------------------------------------------
# winning values


def winning_values(
    crm: CRMData, reports: dict[str, OutcomeReport], outcomes: list[str], attributes: dict[str, AttributeSpec],
    top: list[str],
) -> dict[str, Any]:
    """Rate and lift per value or range of the top ICP attributes, on the first fit outcome's test period."""
    name = next((o for o in outcomes if o in reports), None)
    if name is None or not top:
        return {}
    r = reports[name]
    test = r.labelled_part(r.split.test, columns=[])
    specs = {a: attributes[a] for a in top if a in attributes}
    raw = account_attributes_as_of(crm, test.account_ids, test.as_of, list(specs))
    X = prepare_attributes(raw, specs, test.as_of)
    y = pd.Series(test.y.to_numpy(dtype=float))
    by = {a: value_lift(X[specs[a].feature].reset_index(drop=True), y) for a in specs if specs[a].feature in X}
    return {"outcome": name, "period": "its test period", "by_attribute": by}


# ---------------------------------------------------------------------------------------------
# 9. value cohorts


def _lifetime_value(crm: CRMData) -> pd.Series | None:
    if crm.has("subscriptions") and len(crm["subscriptions"]):
        return lifetime_value(crm["subscriptions"], pd.Timestamp(crm.extract_date))
    if crm.has("opportunities") and "won" in crm["opportunities"].columns and "amount" in crm["opportunities"]:
        o = crm["opportunities"]
        won = o[o["won"] == 1]
        if len(won):
            return pd.to_numeric(won["amount"], errors="coerce").fillna(0).groupby(won["account_id"]).sum()
    return None


def cohorts_step(
    crm: CRMData, book: pd.DataFrame, attributes: dict[str, AttributeSpec], fit: Scorecard | None, alpha: float
) -> dict[str, Any]:
    """Top / middle / bottom customers by lifetime value and the attributes that set them apart."""
    ltv = _lifetime_value(crm)
    if ltv is None or len(ltv) < 20 or not attributes:
        return {"note": "no subscriptions or won deals to value customers by, or no ICP attribute"}
    extract = pd.Timestamp(crm.extract_date)
    cohorts = value_cohorts(ltv)
    X = prepare_attributes(book, attributes, extract)
    X.index = book["account_id"].to_numpy()
    traits = cohort_traits(X.reindex(cohorts.index), cohorts, alpha=alpha)
    traits["trait"] = traits["significant"] & (traits["effect_size"].abs() >= MIN_TRAIT_EFFECT)
    points = fit.card.points(fit.features(book, extract)) if fit is not None else None
    traits["agrees_with_scorecard"] = [_direction(t, X, points) for t in traits.to_dict(orient="records")]
    return {"traits": traits, "sizes": cohorts.value_counts().to_dict(), "tested": int(traits["p_value"].notna().sum())}


def _direction(trait: dict[str, Any], X: pd.DataFrame, points: pd.DataFrame | None) -> str:
    """For a numeric trait, whether the fit scorecard points the same way (more points for higher values)."""
    a = trait["attribute"]
    if points is None or trait["kind"] != "numeric" or a not in points.columns or not trait["trait"]:
        return ""
    rho = pd.Series(X[a].to_numpy(dtype=float)).corr(
        pd.Series(points[a].to_numpy(dtype=float)), method="spearman"
    )
    higher_top = str(trait["winning_value"]).startswith("higher")
    if not np.isfinite(rho) or abs(rho) < 0.1:
        return "the scorecard gives this attribute no clear direction"
    if (rho > 0) == higher_top:
        return "agrees with the scorecard"
    return "contradicts the scorecard (value cohorts rank revenue; the scorecard ranks propensity)"


# ---------------------------------------------------------------------------------------------
# the composer


@dataclass
class ICPDerivation:
    """Everything the derivation produced: the fitted ICP and the results the profile reports."""

    fitted: FittedICP
    scores: pd.DataFrame
    evidence: Evidence
    weights: Weights
    fit_validation: dict[str, dict[str, Any]]
    engagement_validation: dict[str, dict[str, Any]]
    negative: NegativeICP
    segments: Segments
    tiers: TierTable
    cohorts: dict[str, Any]
    catalogue: dict[str, dict[str, AttributeSpec]]
    refused: dict[str, str]
    #: Every account's raw attributes and engagement at the extract date (what was scored).
    book: pd.DataFrame
    #: Segments proposed as separate ICPs (an outcome significantly better there).
    distinct_icps: list[dict[str, Any]] = field(default_factory=list)
    #: Rate and lift per value of the top ICP attributes (see :func:`winning_values`).
    winning: dict[str, Any] = field(default_factory=dict)


#: The steps :func:`derive_icp` announces through ``on_step``, in order (for progress displays;
#: a test keeps this list equal to the calls).
ICP_STEPS = (
    "evidence", "fit scorecard", "engagement scorecard", "negative ICP", "segments", "scores and tiers",
    "value cohorts",
)  # fmt: skip


def derive_icp(
    crm: CRMData, training: TrainingResult, cfg: Config, version: str, dataset: str,
    on_step: Callable[[str], None] | None = None, release_features: bool = False,
) -> ICPDerivation:
    """Derive the fitted ICP and everything the profile reports (see the module docstring).

    ``release_features`` drops the outcomes' feature columns once the negative ICP has read
    them (the steps after it work from the accounts, not the features): the training
    pipeline does, so at a million accounts the segments, tiers and publishing run ~1 GB lower.
    """
    # The thread policy of the fits (training.num_threads for BLAS and OpenMP): measured alone,
    # the evidence step's LightGBM predicts at 2 OpenMP threads took as long and 50 % more CPU,
    # and beside the figure helper process they would spin-wait for a busy core.
    with thread_limits(cfg.training.num_threads):
        return _derive_icp(crm, training, cfg, version, dataset, on_step, release_features)


def _derive_icp(
    crm: CRMData, training: TrainingResult, cfg: Config, version: str, dataset: str,
    on_step: Callable[[str], None] | None, release_features: bool,
) -> ICPDerivation:
    announce = on_step or (lambda s: log.info("ICP: %s", s))

    def step(name: str) -> None:
        release_freed_memory()  # what the previous step built and dropped (a million accounts' frames)
        announce(name)

    extract = pd.Timestamp(crm.extract_date)
    reports, catalogue = training.trained, training.catalogue
    step("evidence")
    evidence = evidence_step(training, cfg)
    weights = weights_step(evidence, catalogue, cfg)
    account_specs = {**catalogue.get("accounts", {}), **catalogue.get("account_history", {})}
    icp_specs = {a: account_specs[a] for a in weights.icp_attributes if a in account_specs}
    book = account_attributes_as_of(crm, crm["accounts"]["account_id"], extract, list(account_specs))
    step("fit scorecard")
    fit, fit_validation = _scorecard_for(
        crm, reports, evidence.with_signal, cfg.icp.fit_blend, icp_specs, [], book, extract, cfg
    )
    step("engagement scorecard")
    engagement, engagement_validation, book = _engagement_for(crm, reports, account_specs, book, extract, cfg)
    step("negative ICP")
    rule_specs = {n: s for n, s in account_specs.items() if s.role == "customer"}
    negative = negative_step(reports, book, rule_specs, fit, extract, cfg)
    if not icp_specs:  # no ICP: no exclusion or penalty is applied to anyone on its account
        negative.exclusions, negative.penalty_rules = [], []
    if release_features:
        training.release_features()
    step("segments")
    segments = segments_step(book, icp_specs, extract, cfg)
    fitted = _assemble(version, dataset, extract, fit, engagement, negative, rule_specs, segments, crm, cfg)
    step("scores and tiers")
    scores = fitted.score(book, extract)
    tiers = tier_step(fitted, crm, reports, scores, cfg.icp.significance_level)
    fitted.validation = _validation(fit_validation, tiers, evidence)
    step("value cohorts")
    cohorts = cohorts_step(crm, book, icp_specs, fit, cfg.icp.significance_level)
    proposals = segment_outcomes(segments, book, reports, extract, cfg.icp.significance_level)
    winning = winning_values(crm, reports, evidence.with_signal, icp_specs, weights.icp_attributes[:6])
    refused = {k: v for r in training.reports.values() if r.dataset is not None for k, v in r.dataset.refused.items()}
    return ICPDerivation(
        fitted, scores, evidence, weights, fit_validation, engagement_validation, negative, segments, tiers,
        cohorts, catalogue, refused, book, proposals, winning,
    )  # fmt: skip


def _scorecard_for(
    crm: CRMData, reports: dict[str, OutcomeReport], outcomes: list[str], blend: dict[str, float],
    specs: dict[str, AttributeSpec], extra: list[str], book: pd.DataFrame, extract: pd.Timestamp, cfg: Config,
) -> tuple[Scorecard | None, dict[str, dict[str, Any]]]:
    weights = {o: blend.get(o, 1.0) for o in outcomes}
    stacked = None
    if (specs or extra) and weights:
        stacked = stack_rows(crm, reports, weights, specs, extra, cfg.training.max_fit_rows, cfg.seed)
    if stacked is None:
        return None, {}
    card = fit_scorecard(stacked, specs, extra, book, extract, cfg)
    return card, (scorecard_validation(card, stacked, cfg) if card is not None else {})


def _engagement_for(
    crm: CRMData, reports: dict[str, OutcomeReport], account_specs: dict[str, AttributeSpec], book: pd.DataFrame,
    extract: pd.Timestamp, cfg: Config,
) -> tuple[Scorecard | None, dict[str, dict[str, Any]], pd.DataFrame]:
    """The engagement scorecard; the book gains its activity counts as of the extract date."""
    outcomes = [o for o in cfg.icp.engagement_blend if o in reports]
    specs = {n: s for n, s in account_specs.items() if s.dimension == "behavioral" and s.role == "customer"}
    first = reports[outcomes[0]].dataset.spec if outcomes else None
    extra = first.engagement if first is not None else []
    if first is not None and extra:
        as_of = pd.Series(extract + pd.Timedelta(days=1), index=range(len(book)))
        now = engagement_features(
            crm.tables.get("activities"), book["account_id"], as_of, first.windows_days, first.activity_types
        )
        book = pd.concat([book.reset_index(drop=True), now], axis=1)
    card, validation = _scorecard_for(
        crm, reports, outcomes, cfg.icp.engagement_blend, specs, extra, book, extract, cfg
    )
    return card, validation, book


def _assemble(
    version: str, dataset: str, extract: pd.Timestamp, fit: Scorecard | None, engagement: Scorecard | None,
    negative: NegativeICP, rule_specs: dict[str, AttributeSpec], segments: Segments, crm: CRMData, cfg: Config,
) -> FittedICP:
    cutoffs = dict(cfg.icp.tiers.cutoffs)
    windows = engagement.extra_columns if engagement else []
    fitted = FittedICP(
        version=version, dataset=dataset, extract_date=str(extract.date()), fit=fit, engagement=engagement,
        windows_days=list(cfg.training.engagement_windows_days) if windows else [],
        activity_types=_activity_types(crm) if windows else [],
        penalty_rules=negative.penalty_rules, exclusions=negative.exclusions,
        rule_attributes={r.attribute: rule_specs[r.attribute] for r in [*negative.penalty_rules, *negative.exclusions]},
        max_penalty_points=cfg.icp.max_penalty_points, tier_cutoffs=cutoffs, high_fit=cfg.icp.high_fit,
        high_engagement=cfg.icp.high_engagement, segmentation=segments.segmentation,
    )  # fmt: skip
    if cfg.icp.tiers.capacity_percent is not None and fit is not None:
        book = account_attributes_as_of(crm, crm["accounts"]["account_id"], extract, fitted.input_columns()[1:])
        fit_scores = fitted.score(book, extract)["fit_score"].to_numpy()
        fitted.tier_cutoffs["Perfect"] = capacity_cutoff(fit_scores, cfg.icp.tiers.capacity_percent)
    return fitted


def _activity_types(crm: CRMData) -> list[str]:
    acts = crm.tables.get("activities")
    return sorted(str(t) for t in acts["activity_type"].dropna().unique()) if acts is not None else []


def _validation(fit_validation: dict[str, dict[str, Any]], tiers: TierTable, evidence: Evidence) -> dict[str, Any]:
    checked = {o: v for o, v in fit_validation.items() if o in evidence.with_signal}
    beats = all(v.get("beats_chance") for v in checked.values()) and bool(checked)
    orders = all(tiers.trends.get(o, {}).get("orders", False) for o in checked)
    return {
        "scorecard_beats_chance": {o: bool(v.get("beats_chance")) for o, v in checked.items()},
        "tiers_order_rates": {o: bool(tiers.trends.get(o, {}).get("orders", False)) for o in checked},
        "tiers_validated": bool(beats and orders),
    }
