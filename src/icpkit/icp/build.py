"""Derive the ICP from trained outcome models: the work behind ``icp_profile.json`` / ``.md``.

``build_icp`` takes the CRM, the :class:`~icpkit.training.TrainingResult` and the config, and
returns an :class:`ICPResult`: attribute weights per outcome and dimension, the fit and
engagement scorecards and scores, tiers and quadrants for every account, the tier table on the
test period, value cohorts and their significant traits, segments, the negative ICP, and what
changed since the previous profile. Nothing here touches MLflow; :func:`log_icp` hands the
result to a tracker.

Score definitions (documented in the profile itself):

- **fit points** (0-100): the additive fit scorecard's total; each attribute's points are
  exactly its contribution to the model, so the points table *is* the model.
- **fit score** (0-100): the percentile of the account's scorecard value among all accounts in
  the book, minus the negative-ICP penalty. Percentiles are used so that a tier means a fixed
  share of the book (about 20 % per 20 points) and stays stable across retrains even when the
  models' calibration moves; the penalty then pushes risky accounts down.
- **engagement score** (0-100): the percentile of the engagement scorecard (behavioral
  attributes and activity counts, as of the extract date) among all accounts.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from icpkit.atomic import atomic_directory
from icpkit.config import Config
from icpkit.data.crm import CRMData
from icpkit.features import engagement_features
from icpkit.icp import report
from icpkit.icp.cohorts import cohort_traits, lifetime_value, value_cohorts, value_lift
from icpkit.icp.diff import profile_diff
from icpkit.icp.negative import exclusion_criteria, fit_penalty, match_driver, risk_drivers
from icpkit.icp.scorecard import AdditiveScorecard
from icpkit.icp.scores import TIER_ORDER, apply_penalty, assign_tiers, percentile_score, quadrant
from icpkit.icp.segments import (
    SegmentModel,
    distinct_icps,
    fit_segments,
    profile_segments,
    save_segment_model,
)
from icpkit.icp.tier_table import check_monotone, tier_table
from icpkit.icp.weights import attribute_weights, blend_weights, dimension_weights, out_of_sample_evidence
from icpkit.models.preprocessing import Preprocessor

if TYPE_CHECKING:
    from icpkit.registry import Tracker
    from icpkit.training import OutcomeReport, TrainingResult

log = logging.getLogger(__name__)

PROFILE_FORMAT = "icpkit.ICPProfile/1"
FIT_DIMENSIONS = ("firmographic", "technographic", "business_need", "growth", "other")
#: Bad-outcome rates are "drivers" of the negative ICP from these outcomes (1 - label).
NEGATIVE_OUTCOMES = {"renewal": "churn", "win": "loss"}
#: A driver is confirmed when the model's mean SHAP contribution for it is at most this (log-odds;
#: -0.2 = the model lowers the odds by at least 18 % for accounts with the value, others held).
CONFIRM_LOG_ODDS = -0.2
#: Test rows used to check each attribute's out-of-sample evidence (permutation is cheap: predict only).
EVIDENCE_ROWS = 5000
#: Fit attributes below this share (%) of the combined fit weight are left out of the segmentation.
SEGMENT_MIN_WEIGHT = 1.0
#: Smallest effect size (rank-biserial r or Cramér's V) for a significant difference to count as a trait.
MIN_TRAIT_EFFECT = 0.1


@dataclass
class ICPResult:
    """Everything the ICP derivation produced; :meth:`write` puts it in one folder."""

    profile: dict[str, Any]
    markdown: str
    account_scores: pd.DataFrame
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    fit_scorecard: AdditiveScorecard | None = None
    engagement_scorecard: AdditiveScorecard | None = None
    segment_model: SegmentModel | None = None
    #: The raw account attributes the segment model reads (input example and gate data; not written).
    segment_frame: pd.DataFrame | None = None

    def write(self, folder: str | Path) -> Path:
        """Write profile, report, plots, tables and models to ``folder``, replacing it atomically."""
        with atomic_directory(folder) as tmp:
            (tmp / "icp_profile.json").write_text(json.dumps(self.profile, indent=2, default=_json) + "\n")
            (tmp / "icp_profile.md").write_text(self.markdown)
            (tmp / "plots").mkdir()
            for name, fig in self.figures.items():
                fig.savefig(tmp / "plots" / name, dpi=110)
            (tmp / "tables").mkdir()
            self.account_scores.to_csv(tmp / "tables" / "account_scores.csv", index=False)
            for name, df in self.tables.items():
                df.to_csv(tmp / "tables" / f"{name}.csv", index=False)
            (tmp / "models").mkdir()
            if self.fit_scorecard is not None:
                self.fit_scorecard.save(tmp / "models" / "fit_scorecard.json")
            if self.engagement_scorecard is not None:
                self.engagement_scorecard.save(tmp / "models" / "engagement_scorecard.json")
            if self.segment_model is not None:
                save_segment_model(self.segment_model, tmp / "models" / "segments")
        return Path(folder)


# ---------------------------------------------------------------------------------------------
# helpers


def _json(o: Any) -> Any:
    """A JSON-safe version of one value (NaN and inf become null)."""
    if o is None or o is pd.NA or o is pd.NaT:
        return None
    if isinstance(o, (bool, np.bool_)):
        return bool(o)
    if isinstance(o, (int, np.integer)):
        return int(o)
    if isinstance(o, (float, np.floating)):
        return float(o) if np.isfinite(o) else None
    if isinstance(o, (pd.Timestamp, dt.date)):
        return str(o)
    if hasattr(o, "tolist"):
        return o.tolist()
    return str(o)


def _records(df: pd.DataFrame, limit: int | None = None) -> list[dict[str, Any]]:
    """JSON-safe records (NaN, inf and missing become null)."""
    d = (df if limit is None else df.head(limit)).astype(object)
    return [
        {k: v if isinstance(v, str) else _json(v) for k, v in r.items()} for r in d.to_dict(orient="records")
    ]


def _has_signal(r: OutcomeReport) -> bool:
    return r.test is not None and r.test.ci["roc_auc"][0] > 0.5


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return float(np.log(p / (1 - p)))


@dataclass
class _Stacked:
    """Rows of several outcomes stacked for one scorecard, with per-outcome offsets and weights."""

    X: pd.DataFrame
    y: np.ndarray
    weight: np.ndarray
    offset: np.ndarray
    Xv: pd.DataFrame
    yv: np.ndarray
    offset_v: np.ndarray


def _stack(
    reports: dict[str, OutcomeReport],
    blend: dict[str, float],
    features_for: Callable[[OutcomeReport, np.ndarray], pd.DataFrame],
) -> _Stacked | None:
    parts: list[tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray, pd.DataFrame, np.ndarray, np.ndarray]]
    parts = []
    for name, w in blend.items():
        r = reports.get(name)
        if w <= 0 or r is None or r.status != "trained" or r.split is None:
            continue
        y = r.labelled.y.to_numpy(dtype=int)
        tr, va = r.split.train, r.split.validation
        # Each outcome starts from its own base rate, so stacking learns attribute effects only.
        base = _logit(float(y[tr].mean()))
        Xt, Xv = features_for(r, tr), features_for(r, va)
        parts.append(
            (
                Xt,
                y[tr],
                np.full(tr.sum(), w / tr.sum()),
                np.full(tr.sum(), base),
                Xv,
                y[va],
                np.full(va.sum(), base),
            )
        )
    if not parts:
        return None
    weight = np.concatenate([p[2] for p in parts])
    return _Stacked(
        X=pd.concat([p[0] for p in parts], ignore_index=True),
        y=np.concatenate([p[1] for p in parts]),
        weight=weight * len(weight) / weight.sum(),
        offset=np.concatenate([p[3] for p in parts]),
        Xv=pd.concat([p[4] for p in parts], ignore_index=True),
        yv=np.concatenate([p[5] for p in parts]),
        offset_v=np.concatenate([p[6] for p in parts]),
    )


def _fit_scorecard(stacked: _Stacked, encoder: Preprocessor, cfg: Config) -> AdditiveScorecard:
    """The additive scorecard on stacked outcome rows: offsets per outcome, early-stopped on validation."""
    return AdditiveScorecard.fit(
        stacked.X,
        stacked.y,
        encoder.categorical_columns_,
        seed=cfg.seed,
        X_valid=stacked.Xv,
        y_valid=stacked.yv,
        num_threads=cfg.training.num_threads,
        category_labels=encoder.categories_,
        num_boost_round=500,
        sample_weight=stacked.weight,
        init_score=stacked.offset,
        valid_init_score=stacked.offset_v,
    )


# ---------------------------------------------------------------------------------------------
# the derivation


def build_icp(
    crm: CRMData,
    training: TrainingResult,
    cfg: Config,
    version: str,
    previous: dict[str, Any] | None = None,
    on_step: Callable[[str], None] | None = None,
) -> ICPResult:
    """Derive the ICP profile from the trained outcomes (see the module docstring)."""
    step = on_step or (lambda s: log.info("ICP: %s", s))
    extract = pd.Timestamp(crm.extract_date)
    reports = training.trained
    accounts = crm["accounts"].reset_index(drop=True)
    acc = accounts.set_index("account_id")
    attrs = [c for c in acc.columns]
    dim = {c: cfg.attributes.dimension_of(c) for c in attrs}
    fit_cols = [c for c in attrs if dim[c] != "behavioral"]
    alpha = cfg.icp.significance_level
    profile: dict[str, Any] = {
        "format": PROFILE_FORMAT,
        "version": version,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "extract_date": str(extract.date()),
        "data_fingerprint": crm.fingerprint(),
        "accounts": len(accounts),
    }
    tables: dict[str, pd.DataFrame] = {}
    figures: dict[str, Any] = {}

    # -- evidence ----------------------------------------------------------------------------
    by_outcome = {}
    for name, r in training.reports.items():
        if r.status != "trained" or r.test is None:
            by_outcome[name] = {"status": "skipped", "reason": r.reason}
            continue
        lo, hi = r.test.ci["roc_auc"]
        by_outcome[name] = {
            "status": "signal" if lo > 0.5 else "no evidence",
            "test_auc": r.test.metrics["roc_auc"],
            "auc_95ci": [lo, hi],
            "model": r.model.kind if r.model else None,
        }
    fit_with_signal = [o for o in cfg.icp.fit_blend if o in reports and _has_signal(reports[o])]
    sufficient = bool(fit_with_signal)
    profile["evidence"] = {
        "status": "sufficient" if sufficient else "insufficient",
        "fit_outcomes_with_signal": fit_with_signal,
        "by_outcome": by_outcome,
        "statement": (
            f"The fit profile rests on {', '.join(fit_with_signal)}, whose test AUCs exclude chance."
            if sufficient
            else "Insufficient evidence: no fit outcome model beats chance on the test period (every "
            "AUC's 95% CI includes 0.5). No confident ICP can be drawn from this data; the weights, "
            "tiers and segments below are shown for transparency only."
        ),
    }

    # -- 1. attribute weights -------------------------------------------------------------------
    step("attribute weights from SHAP")
    per_outcome: dict[str, pd.DataFrame] = {}
    for name, r in reports.items():
        if r.shap_values is None or r.dataset is None:
            continue
        X_test, y_test = r.test_frame()
        n = min(len(X_test), EVIDENCE_ROWS)
        pick = np.sort(np.random.default_rng(cfg.seed).choice(len(X_test), size=n, replace=False))
        X_ev = X_test.iloc[pick].reset_index(drop=True)
        evidence = out_of_sample_evidence(
            r.model.predict_proba, X_ev, y_test[pick], r.dataset.feature_source, seed=cfg.seed, alpha=alpha
        )
        per_outcome[name] = attribute_weights(
            r.shap_values, r.dataset.feature_source, r.dataset.source_dimension, evidence=evidence
        )
    weights_profile: dict[str, Any] = {
        "definition": (
            "mean |SHAP| per source attribute on a test-period sample, normalised to 100 per outcome; "
            "attributes whose shuffling does not raise the test-period log loss (grouped permutation, "
            "10 repeats, one-sided t-test over rows, p < significance level: no out-of-sample evidence) "
            "get weight 0"
        ),
        "by_outcome": {
            o: _records(w[["attribute", "dimension", "weight", "mean_abs_shap", "evidence"]])
            for o, w in per_outcome.items()
        },
        "by_dimension": {o: _records(dimension_weights(w)) for o, w in per_outcome.items()},
    }
    blended_fit = None
    for label, blend in (("fit", cfg.icp.fit_blend), ("engagement", cfg.icp.engagement_blend)):
        present = {o: b for o, b in blend.items() if o in per_outcome}
        if present:
            b = blend_weights(per_outcome, present)
            weights_profile[f"blended_{label}"] = _records(b[["attribute", "dimension", "weight"]])
            weights_profile[f"blended_{label}_by_dimension"] = _records(dimension_weights(b))
            tables[f"weights_{label}"] = b
            if label == "fit":
                blended_fit = b
    profile["weights"] = weights_profile
    if blended_fit is not None:
        figures["weights_by_dimension.png"] = report.plot_weights_by_dimension(dimension_weights(blended_fit))
        figures["attribute_weights.png"] = report.plot_attribute_weights(blended_fit.head(15))

    # -- 2./3. scorecards and scores -----------------------------------------------------------
    step("fit scorecard")
    fit_enc = Preprocessor().fit(acc[fit_cols]) if fit_cols else None
    fit_card, fit_info = None, {}
    acc_fit_enc = fit_enc.transform(acc[fit_cols]) if fit_enc else None
    if fit_enc is not None and acc_fit_enc is not None:

        def fit_features(r: OutcomeReport, mask: np.ndarray) -> pd.DataFrame:
            ids = r.labelled.account_ids.to_numpy()[mask]
            return acc_fit_enc.reindex(ids).reset_index(drop=True)

        stacked = _stack(reports, cfg.icp.fit_blend, fit_features)
        if stacked is not None:
            fit_card = _fit_scorecard(stacked, fit_enc, cfg)
            fit_info = _scorecard_agreement(fit_card, reports, cfg.icp.fit_blend, fit_features)
    engagement_card, engagement_info, acc_eng = None, {}, None
    eng_enc: Preprocessor | None = None
    step("engagement scorecard")
    windows = cfg.training.engagement_windows_days
    eng_cols = _engagement_columns(reports, cfg.icp.engagement_blend)
    if eng_cols:
        eng_rows = [reports[o].labelled.X[eng_cols] for o in cfg.icp.engagement_blend if o in reports]
        eng_enc = Preprocessor().fit(pd.concat(eng_rows, ignore_index=True))

        def eng_features(r: OutcomeReport, mask: np.ndarray) -> pd.DataFrame:
            return eng_enc.transform(r.labelled.X[eng_cols].iloc[np.flatnonzero(mask)].reset_index(drop=True))

        stacked = _stack(reports, cfg.icp.engagement_blend, eng_features)
        if stacked is not None:
            engagement_card = _fit_scorecard(stacked, eng_enc, cfg)
            engagement_info = _scorecard_agreement(
                engagement_card, reports, cfg.icp.engagement_blend, eng_features
            )
            # Engagement now: activity windows end on the extract date (inclusive).
            as_of = pd.Series(extract + pd.Timedelta(days=1), index=range(len(accounts)))
            now = engagement_features(crm.tables.get("activities"), accounts["account_id"], as_of, windows)
            acc_eng_raw = pd.concat([accounts[[c for c in eng_cols if c in accounts.columns]], now], axis=1)
            acc_eng = eng_enc.transform(acc_eng_raw.reindex(columns=eng_cols))

    # -- 7. negative ICP (before tiers: its penalty moves the fit score) ----------------------------
    step("negative ICP")
    drivers = _negative_drivers(reports, alpha)
    tables["negative_icp_drivers"] = drivers
    confirmed = drivers[drivers["significant"] & drivers["confirmed_by_model"]] if len(drivers) else drivers
    # Only churn drivers move the fit score: loss drivers are already in it through the win model.
    penalised = confirmed[(confirmed["outcome"] == "churn") & confirmed["attribute"].isin(attrs)]
    penalty = fit_penalty(acc.reset_index(drop=True), penalised) if len(penalised) else np.zeros(len(acc))
    exclusions = exclusion_criteria(confirmed) if len(confirmed) else []
    profile["negative_icp"] = {
        "definition": (
            "attribute values whose churn (1 - renewed) or loss (1 - won) rate is above the baseline "
            "(Fisher exact test vs the rest, Benjamini-Hochberg adjusted, Wilson 95% CI). A driver is "
            "confirmed when the outcome model, holding the other attributes, also lowers the outcome for "
            f"it (mean SHAP contribution <= {CONFIRM_LOG_ODDS} log-odds): that separates causes from "
            "attributes that merely travel with them. Confirmed drivers lead, ranked by excess_bad (churned "
            "accounts or lost deals above the baseline rate: support x (rate - baseline)); only they "
            "become exclusion criteria (lift >= 1.5), and confirmed churn drivers become the fit penalty"
        ),
        "drivers": _records(drivers[drivers["significant"]].head(30)) if len(drivers) else [],
        "exclusion_criteria": exclusions,
        "fit_penalty": {
            "rule": "per matching confirmed churn driver min(20, 10 x (lift - 1)) points, at most 20 in all",
            "accounts_penalised": int((penalty > 0).sum()),
            "mean_penalty_of_penalised": float(penalty[penalty > 0].mean()) if (penalty > 0).any() else 0.0,
        },
    }
    if len(drivers):
        figures["churn_drivers.png"] = report.plot_drivers(drivers)

    # -- scores, tiers, quadrants -----------------------------------------------------------------
    step("scores and tiers")
    scores = pd.DataFrame({"account_id": accounts["account_id"]})
    if fit_card is not None and acc_fit_enc is not None:
        raw = fit_card.raw_score(acc_fit_enc.reset_index(drop=True))
        scores["fit_points"] = fit_card.score(acc_fit_enc.reset_index(drop=True))
        scores["fit_percentile"] = percentile_score(raw)
        scores["fit_penalty"] = penalty
        scores["fit_score"] = apply_penalty(scores["fit_percentile"].to_numpy(), penalty)
        reasons = fit_card.reasons(acc_fit_enc.reset_index(drop=True), top_n=3)
        scores["reasons_up"] = reasons["reasons_up"].to_numpy()
        scores["reasons_down"] = reasons["reasons_down"].to_numpy()
    else:
        scores["fit_score"] = np.nan
    if engagement_card is not None and acc_eng is not None:
        scores["engagement_score"] = percentile_score(engagement_card.raw_score(acc_eng))
    else:
        scores["engagement_score"] = np.nan
    tiers_cfg = cfg.icp.tiers
    scores["tier"] = assign_tiers(
        scores["fit_score"].to_numpy(), tiers_cfg.cutoffs, tiers_cfg.capacity_percent
    )
    scores["quadrant"] = quadrant(
        scores["fit_score"].to_numpy(),
        scores["engagement_score"].to_numpy(),
        cfg.icp.high_fit,
        cfg.icp.high_engagement,
    )
    profile["scores"] = {
        "fit_score": (
            "percentile (0-100) of the fit scorecard's value among all accounts, minus the negative-ICP "
            "penalty; fit = firmographic, technographic, business need, growth and untagged account "
            "attributes"
        ),
        "engagement_score": (
            "percentile (0-100) of the engagement scorecard (behavioral attributes and activity counts as of "
            "the extract date) among all accounts"
        ),
        "fit_points": "the fit scorecard total (0-100 points); fit_score ranks accounts by it",
        "fit_columns": fit_cols,
        "engagement_columns": eng_cols,
        "fit_scorecard_agreement": fit_info,
        "engagement_scorecard_agreement": engagement_info,
        "tier_cutoffs": tiers_cfg.cutoffs,
        "capacity_percent": tiers_cfg.capacity_percent,
        "tier_counts": scores["tier"]
        .value_counts()
        .reindex([*TIER_ORDER, "Unscored"], fill_value=0)
        .to_dict(),
        "quadrant_counts": scores["quadrant"].value_counts().to_dict(),
    }
    if fit_card is not None:
        points = fit_card.points_table()
        tables["fit_scorecard_points"] = points
        profile["scorecard"] = _records(points)
    if engagement_card is not None:
        tables["engagement_scorecard_points"] = engagement_card.points_table()

    # -- winning values and ranges -----------------------------------------------------------------
    main = next((o for o in ("win", "conversion", "renewal", "expansion") if o in reports), None)
    if main is not None and blended_fit is not None:
        r = reports[main]
        rows = acc.reindex(r.labelled.account_ids.to_numpy()).reset_index(drop=True)
        y = r.labelled.y.reset_index(drop=True)
        winning = {}
        for a in [a for a in blended_fit["attribute"] if a in attrs][:8]:
            winning[a] = _records(value_lift(rows[a], y))
        profile["winning_values"] = {"outcome": main, "by_attribute": winning}

    # -- 4. tier table on the test period ------------------------------------------------------------
    step("tier table")
    tier_by_account = scores.set_index("account_id")["tier"]
    dash, warnings = _tier_dashboard(crm, reports, tier_by_account, alpha)
    tables["tier_table"] = dash
    profile["tiers"] = {
        "table": _records(dash),
        "period": "each outcome's test period (the latest as-of times, untouched by training)",
        # Reversals within noise are reported but do not count against the tiering.
        "monotone": not [w for w in warnings if "is below" in w],
        "warnings": warnings,
    }
    figures["tier_rates.png"] = report.plot_tier_rates(dash)

    # -- 5. value cohorts ------------------------------------------------------------------------------
    step("value cohorts")
    ltv = _lifetime_value(crm, extract)
    if ltv is not None and len(ltv) >= 20:
        cohorts = value_cohorts(ltv)
        traits = cohort_traits(acc.reindex(cohorts.index), cohorts, alpha=alpha)
        tables["cohort_traits"] = traits
        # A trait must be significant and matter: at least a small effect (|r| or Cramér's V >= 0.1).
        traits["trait"] = traits["significant"] & (traits["effect_size"].abs() >= MIN_TRAIT_EFFECT)
        significant = traits[traits["trait"]]
        profile["cohorts"] = {
            # Without a model that beats chance, value differences (e.g. bigger companies pay more)
            # are not evidence of fit, so none is called an ICP trait.
            "traits": _records(significant) if sufficient else [],
            "value_differences_not_called_traits": [] if sufficient else _records(significant),
            "definition": (
                "customers by lifetime value (ARR x tenure + expansion, or won deal value): top 20% / "
                "middle 60% / bottom 20%; top vs bottom per attribute, chi-square or Mann-Whitney, "
                f"BH-adjusted; a trait needs p < significance level and effect size >= {MIN_TRAIT_EFFECT}"
            ),
            "sizes": cohorts.value_counts().to_dict(),
            "tested": int(traits["p_value"].notna().sum()),
        }
    else:
        profile["cohorts"] = {"note": "no subscriptions or won deals to value customers by"}

    # -- 6. segments --------------------------------------------------------------------------------------
    step("segments")
    seg_model = None
    # Segments should differ in what drives outcomes: use the fit attributes that showed
    # out-of-sample evidence and carry at least SEGMENT_MIN_WEIGHT % of the combined fit weight
    # (all fit attributes if none qualifies).
    proven = {a for w in per_outcome.values() for a in w.loc[w["evidence"], "attribute"]}
    if blended_fit is not None:
        heavy = set(blended_fit.loc[blended_fit["weight"] >= SEGMENT_MIN_WEIGHT, "attribute"])
        proven &= heavy
    seg_cols = [c for c in fit_cols if c in proven] or fit_cols
    if seg_cols and len(accounts) >= 50:
        X_seg = acc[seg_cols].reset_index(drop=True)
        k_range = (min(cfg.icp.segments_k_range), max(cfg.icp.segments_k_range))
        found = fit_segments(X_seg, k_range=k_range, seed=cfg.seed)
        seg_model = found.model
        profile["segments"] = {"k": found.k, "attributes": seg_cols, "selection": found.diagnostics()}
    if seg_model is not None:
        seg = seg_model.predict(X_seg)
        revenue = ltv.reindex(accounts["account_id"]).to_numpy() if ltv is not None else None
        seg_profile = profile_segments(X_seg, seg, revenue=revenue)
        seg_of = pd.Series(seg, index=accounts["account_id"])
        icps = []
        for name, r in reports.items():
            lab = r.labelled
            seg_rows = seg_of.reindex(lab.account_ids.to_numpy()).to_numpy()
            y = lab.y.to_numpy(dtype=float)
            rates = pd.Series(y).groupby(seg_rows).mean()
            seg_profile[f"{name}_rate"] = seg_profile["segment"].map(rates)
            icps += distinct_icps(seg_profile, {name: pd.Series(y)}, seg_rows, alpha=alpha)
        seg_model.names = [str(n) for n in seg_profile.sort_values("segment")["name"]]
        scores["segment"] = seg
        scores["segment_name"] = np.asarray(seg_model.names, dtype=object)[seg]
        tables["segments"] = seg_profile
        profile["segments"].update(
            {
                "log_scaled_columns": list(seg_model.preprocessor.log_columns_),
                "profiles": _records(seg_profile),
                "distinct_icps": icps if sufficient else [],
            }
        )
        figures["segments.png"] = report.plot_segments(seg_profile, [o for o in reports])
    elif "segments" in profile:
        # No k beats the null: say so rather than invent segments.
        profile["segments"].update({"profiles": [], "distinct_icps": []})

    # -- 8. the profile and what changed ----------------------------------------------------------------
    traits_list = []
    if "traits" in profile.get("cohorts", {}):
        for t in profile["cohorts"]["traits"]:
            value = t.get("winning_value")
            traits_list.append(f"{t['attribute']}={value}" if t.get("kind") == "categorical" and value else
                               f"{t['attribute']} ({value})")  # fmt: skip
    summary = {
        "version": version,
        "weights": {r["attribute"]: r["weight"] for r in weights_profile.get("blended_fit", [])},
        "traits": traits_list,
        "tier_rates": {
            row["tier"]: {k: v for k, v in row.items() if k.endswith("_rate") and v is not None}
            for row in profile["tiers"]["table"]
        },
    }
    profile["diff_summary"] = summary
    prev_summary = previous.get("diff_summary") if previous else None
    profile["changes"] = profile_diff(prev_summary, summary)
    markdown = report.profile_markdown(profile, tables, list(figures))
    return ICPResult(
        profile=profile,
        markdown=markdown,
        account_scores=scores,
        tables=tables,
        figures=figures,
        fit_scorecard=fit_card,
        engagement_scorecard=engagement_card,
        segment_model=seg_model,
        segment_frame=acc[seg_model.columns].reset_index(drop=True) if seg_model is not None else None,
    )


def _engagement_columns(reports: dict[str, OutcomeReport], blend: dict[str, float]) -> list[str]:
    cols: list[str] | None = None
    for name in blend:
        r = reports.get(name)
        if r is None or r.dataset is None:
            continue
        ds = r.dataset
        mine = [
            c for c in ds.X.columns if ds.source_dimension.get(ds.feature_source.get(c, c)) == "behavioral"
        ]
        cols = mine if cols is None else [c for c in cols if c in mine]
    return cols or []


def _scorecard_agreement(
    card: AdditiveScorecard,
    reports: dict[str, OutcomeReport],
    blend: dict[str, float],
    features_for: Callable[[OutcomeReport, np.ndarray], pd.DataFrame],
) -> dict[str, Any]:
    """Spearman rank correlation of the scorecard with each outcome model, and both AUCs, on test rows."""
    out = {}
    for name in blend:
        r = reports.get(name)
        if r is None or r.split is None or r.model is None:
            continue
        test = r.split.test
        X_card = features_for(r, test)
        X_model, y = r.test_frame()
        card_raw = card.raw_score(X_card)
        model_p = r.model.predict_proba(X_model)
        rho = float(spearmanr(card_raw, model_p).statistic)
        auc_card = float(roc_auc_score(y, card_raw)) if len(np.unique(y)) == 2 else float("nan")
        out[name] = {
            "spearman_vs_model": rho,
            "scorecard_test_auc": auc_card,
            "model_test_auc": float(r.test.metrics["roc_auc"]) if r.test else None,
            "test_rows": int(test.sum()),
        }
    return out


def _negative_drivers(reports: dict[str, OutcomeReport], alpha: float) -> pd.DataFrame:
    frames = []
    for name, kind in NEGATIVE_OUTCOMES.items():
        r = reports.get(name)
        if r is None or r.dataset is None:
            continue
        lab = r.labelled
        # Account and entity attributes only (activity counts are behaviour, not a profile).
        cols = [c for c in lab.X.columns if lab.feature_source.get(c, c) == c]
        X = lab.X[cols].reset_index(drop=True)
        bad = 1 - lab.y.reset_index(drop=True).astype("Int8")
        d = risk_drivers(X, bad, kind, alpha=alpha)
        d["model_contribution"] = _model_contribution(d, r)
        d["confirmed_by_model"] = d["model_contribution"].fillna(0.0) <= CONFIRM_LOG_ODDS
        # Churned accounts (lost deals) above what the baseline rate would give: how much of the
        # problem the value accounts for, which ranks a common moderate driver above a rare one.
        d["excess_bad"] = d["support"] * (d["bad_rate"] - d["baseline_rate"])
        frames.append(d)
    if not frames:
        cols = ["outcome", "attribute", "value", "significant", "confirmed_by_model", "lift"]
        return pd.DataFrame(columns=cols).astype({"significant": bool, "confirmed_by_model": bool})
    drivers = pd.concat(frames, ignore_index=True)
    # Confirmed drivers first, by excess churn / loss; then significant unconfirmed ones; then the rest.
    group = np.where(
        drivers["significant"] & drivers["confirmed_by_model"], 0, np.where(drivers["significant"], 1, 2)
    )
    order = np.lexsort((-drivers["excess_bad"].fillna(-np.inf).to_numpy(), group))
    return drivers.iloc[order].reset_index(drop=True)


def _model_contribution(drivers: pd.DataFrame, r: OutcomeReport) -> list[float]:
    """Mean SHAP contribution of each driver value in the outcome model (negative = lowers the outcome)."""
    out = []
    shap, rows = r.shap_values, r.shap_rows
    for d in drivers.to_dict(orient="records"):
        a = d["attribute"]
        if shap is None or rows is None or a not in shap.columns or a not in rows.columns:
            out.append(float("nan"))
            continue
        mask = match_driver(
            rows[a].reset_index(drop=True), d["value"], d.get("low", np.nan), d.get("high", np.nan)
        )
        out.append(float(shap[a].to_numpy()[mask].mean()) if mask.any() else float("nan"))
    return out


def _lifetime_value(crm: CRMData, extract: pd.Timestamp) -> pd.Series | None:
    if crm.has("subscriptions") and len(crm["subscriptions"]):
        return lifetime_value(crm["subscriptions"], extract)
    if crm.has("opportunities") and "won" in crm["opportunities"].columns:
        o = crm["opportunities"]
        won = o[o["won"] == 1]
        if len(won):
            return pd.to_numeric(won["amount"], errors="coerce").fillna(0).groupby(won["account_id"]).sum()
    return None


def _tier_dashboard(
    crm: CRMData, reports: dict[str, OutcomeReport], tier_by_account: pd.Series, alpha: float
) -> tuple[pd.DataFrame, list[str]]:
    """Accounts per tier, then each outcome's rate per tier on its test period, and test-period bookings."""
    revenue = None
    if "win" in reports and reports["win"].split is not None:
        r = reports["win"]
        test = r.labelled.subset(r.split.test)
        opp = crm["opportunities"].set_index("opportunity_id")
        amount = (
            pd.to_numeric(opp["amount"], errors="coerce").reindex(test.ids.to_numpy()).fillna(0).to_numpy()
        )
        booked = pd.Series(amount * test.y.to_numpy(dtype=float)).groupby(test.account_ids.to_numpy()).sum()
        revenue = booked.reindex(tier_by_account.index).fillna(0.0)
    table = tier_table(tier_by_account, {}, revenue)
    if revenue is not None:
        table = table.rename(
            columns={"revenue": "won_revenue_test", "revenue_per_account": "won_revenue_per_account"}
        )
    rate_cols = []
    for name, r in reports.items():
        if r.split is None:
            continue
        test = r.labelled.subset(r.split.test)
        row_tiers = pd.Series(tier_by_account.reindex(test.account_ids.to_numpy()).to_numpy())
        t = tier_table(row_tiers, {name: pd.Series(test.y.to_numpy(dtype=float))}, None)
        table[f"{name}_rate"] = t[f"{name}_rate"].to_numpy()
        table[f"{name}_n"] = t[f"{name}_n"].to_numpy()
        rate_cols.append(f"{name}_rate")
    table = table[table["accounts"] > 0].reset_index(drop=True) if "Unscored" in set(table["tier"]) else table
    return table, check_monotone(table, rate_cols, alpha=alpha)


# ---------------------------------------------------------------------------------------------
# MLflow


def log_icp(result: ICPResult, folder: Path, cfg: Config, tracker: Tracker) -> dict[str, Any]:
    """Log the written ICP folder to the open training run; register ``icp-segments`` behind the gate."""
    from icpkit.registry import load_champion, log_model, register_with_gate, to_model_input

    tracker.log_artifacts(folder, "icp")
    p = result.profile
    tracker.log_metrics(
        {
            "icp_accounts_perfect": p["scores"]["tier_counts"].get("Perfect", 0),
            "icp_exclusion_criteria": len(p["negative_icp"]["exclusion_criteria"]),
            "icp_segments_k": p.get("segments", {}).get("k", 0),
            **{
                f"icp_fit_scorecard_spearman_{o}": v["spearman_vs_model"]
                for o, v in p["scores"]["fit_scorecard_agreement"].items()
            },
        }
    )
    tracker.set_tags({"icp.evidence": p["evidence"]["status"], "icp.version": p["version"]})
    out: dict[str, Any] = {}
    model = result.segment_model
    if model is None or not cfg.tracking.register_models:
        return out
    frame = result.segment_frame
    if frame is None:
        return out
    uri = log_model(tracker, folder / "models" / "segments", name="segments", input_example=frame.head(5))
    name = f"{cfg.tracking.model_prefix}-segments"
    # Both partitions are judged by their silhouette in the new model's space, on the same
    # accounts: the champion keeps its alias unless the new segments separate at least as well.
    # The new model's silhouette was computed when it was fitted, on these rows (frame).
    candidate = model.silhouette
    champion_model = load_champion(tracker.tracking_uri, name)
    champion = None
    if champion_model is not None:
        try:
            served = champion_model.predict(to_model_input(frame))["segment"].to_numpy()
            champion = model.separation(frame, served)
        except Exception as exc:  # noqa: BLE001 - an older champion may need other columns
            log.warning(
                "icp-segments champion cannot score today's accounts (%s); the new version is challenger", exc
            )
    reg = register_with_gate(
        tracker.tracking_uri, name, uri, candidate_score=candidate, champion_score=champion
    )
    out["segments"] = reg
    return out
