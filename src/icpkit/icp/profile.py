"""The ICP profile: a report *about* the fitted ICP, every sentence computed from the results.

:func:`build_profile` turns an :class:`~icpkit.icp.derive.ICPDerivation` into the JSON-safe
``icp_profile.json`` dict; :mod:`icpkit.icp.report` renders it as ``icp_profile.md``. A claim is
only made when it was checked out of sample: on noise the profile says "insufficient evidence" and
names no attribute, trait, driver, exclusion or segment.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import pandas as pd

from icpkit.attributes import describe_roles
from icpkit.data.crm import CRMData
from icpkit.icp.derive import EXCLUSION_MIN_LIFT, NEGATIVE_OUTCOMES, ICPDerivation
from icpkit.icp.diff import profile_diff
from icpkit.icp.scores import TIER_ORDER
from icpkit.icp.weights import dimension_weights
from icpkit.serialization import json_safe
from icpkit.training import HIGH_ECE

PROFILE_FORMAT = "icpkit.ICPProfile/2"


def records(df: pd.DataFrame | None, limit: int | None = None) -> list[dict[str, Any]]:
    if df is None or not len(df):
        return []
    return json_safe((df if limit is None else df.head(limit)).to_dict(orient="records"))


def _pct(v: float) -> str:
    return "—" if v is None or not math.isfinite(v) else f"{v:.0%}"


# ---------------------------------------------------------------------------------------------
# evidence


def _is_sufficient(d: ICPDerivation) -> bool:
    return bool(d.evidence.with_signal) and bool(d.weights.icp_attributes)


def evidence_section(d: ICPDerivation) -> dict[str, Any]:
    ev = d.evidence
    sufficient = _is_sufficient(d)
    aucs = ", ".join(
        f"{o} {ev.verdicts[o]['test_auc']:.2f} [{ev.verdicts[o]['auc_95ci'][0]:.2f}, {ev.verdicts[o]['auc_95ci'][1]:.2f}]"
        for o in ev.with_signal
    )
    if sufficient:
        statement = (
            f"The ICP rests on {', '.join(ev.with_signal)}, whose test AUCs exclude chance ({aucs}); "
            f"{len(d.weights.icp_attributes)} customer attribute(s) help those models out of sample."
        )
    elif not ev.fit_outcomes:
        statement = "Insufficient evidence: no outcome was trained, so there is nothing to learn an ICP from."
    elif not ev.with_signal:
        statement = (
            f"Insufficient evidence: no outcome the ICP rests on ({', '.join(ev.fit_outcomes)}) beats chance on "
            "its test period (every AUC's 95 % CI includes 0.5). No attribute, trait, driver or segment is named."
        )
    else:
        statement = (
            f"Insufficient evidence for an ICP: {', '.join(ev.with_signal)} beat(s) chance ({aucs}), but no "
            "customer attribute helps out of sample — the signal is in offer terms, the sales organisation or "
            "engagement (see below), not in who the customer is."
        )
    return {
        "status": "sufficient" if sufficient else "insufficient",
        "statement": " ".join(s for s in (ev.note, statement) if s),
        "fit_outcomes": ev.fit_outcomes,
        "outcomes_with_signal": ev.with_signal,
        "by_outcome": json_safe(ev.verdicts),
    }


# ---------------------------------------------------------------------------------------------
# what the best customers look like


def best_values(d: ICPDerivation, n_attributes: int = 6) -> list[dict[str, Any]]:
    """Per ICP attribute (heaviest first), the values that earn at least 80 % of its points."""
    fit = d.fitted.fit
    if fit is None:
        return []
    table = fit.card.points_table()
    out = []
    for a in d.weights.icp_attributes[:n_attributes]:
        rows = table[(table["feature"] == a) & (table["max_points"] > 0)]
        if not len(rows):
            continue
        top = rows[rows["points"] >= 0.8 * rows["max_points"].iloc[0]]
        top = top[~top["value_or_range"].isin(["missing", "other/missing"])].head(3)
        if len(top):
            out.append({"attribute": a, "values": top["value_or_range"].tolist(), "max_points": int(rows["max_points"].iloc[0])})
    return out


def _tier_rows(d: ICPDerivation) -> list[dict[str, Any]]:
    table = d.tiers.table
    total = int(table.loc[table["tier"] != "All", "accounts"].sum()) or 1
    rows = []
    for r in table[table["tier"].isin(TIER_ORDER)].to_dict(orient="records"):
        rates = {k[: -len("_rate")]: r[k] for k in r if k.endswith("_rate")}
        rows.append({"tier": r["tier"], "accounts": int(r["accounts"]), "share": r["accounts"] / total, **{f"{k}_rate": v for k, v in rates.items()}})
    return json_safe(rows)


def tier_statements(d: ICPDerivation) -> list[str]:
    """One computed sentence per fit outcome: do the tiers order its rate on the test period?"""
    if d.fitted.fit is None or (d.scores["tier"] == "Unscored").all():
        return []
    out = []
    table = d.tiers.table.set_index("tier")
    for o in d.evidence.fit_outcomes:
        trend = d.tiers.trends.get(o)
        if not trend or f"{o}_rate" not in table.columns:
            continue
        best, worst = trend["tiers"][0], trend["tiers"][-1]
        rates = f"{best} {_pct(table.loc[best, f'{o}_rate'])} vs {worst} {_pct(table.loc[worst, f'{o}_rate'])}"
        p = trend["p_value"]
        test = f"trend test z = {trend['z']:.1f}, p = {p:.2g}" if math.isfinite(p) else "not testable"
        verb = "order" if trend["orders"] else "do not order"
        out.append(f"Tiers {verb} the {o} rate on its test period ({rates}; {test}).")
    return out


def summary_section(d: ICPDerivation, evidence: dict[str, Any]) -> dict[str, Any]:
    """The first page: who the best customers are, the tiers, what to avoid, how sure we are."""
    sufficient = evidence["status"] == "sufficient"
    validated = d.fitted.validation.get("tiers_validated", False)
    failing = [o for o, ok in d.fitted.validation.get("scorecard_beats_chance", {}).items() if not ok]
    if not sufficient:
        confidence = evidence["statement"]
    elif validated:
        confidence = (
            "The fit score beats chance on every outcome it rests on, and the tiers order those outcomes' rates "
            "on data the models never saw."
        )
    else:
        confidence = "The tiers are not validated: " + (
            f"the fit score does not beat chance on {', '.join(failing)}'s test period." if failing
            else "they do not order every outcome's rate on its test period (see Tiers)."
        )
    return {
        "best_customers": best_values(d) if sufficient else [],
        "tiers": _tier_rows(d),
        "tier_statements": tier_statements(d),
        "avoid": [e.condition() for e in d.fitted.exclusions] if sufficient else [],
        "confidence": confidence,
        "tiers_validated": bool(validated and sufficient),
    }


# ---------------------------------------------------------------------------------------------
# the rest


def weights_section(d: ICPDerivation) -> dict[str, Any]:
    w = d.weights
    cols = ["attribute", "dimension", "weight", "share_of_role"]
    return {
        "definition": (
            "mean |SHAP| per source attribute on a test-period sample, normalised to 100 per outcome and blended "
            "over the outcomes with signal; an attribute whose grouped permutation does not raise the test-period "
            "log loss (one-sided t-test, Benjamini-Hochberg across attributes) gets weight 0. share_of_role is the "
            "attribute's share within its role"
        ),
        "icp": records(w.icp[[c for c in cols if c in w.icp.columns]]),
        "icp_by_dimension": records(dimension_weights(w.icp)) if len(w.icp) else [],
        "offer_levers": records(w.offer[[c for c in cols if c in w.offer.columns]]),
        "sales_org": records(w.sales_org[[c for c in cols if c in w.sales_org.columns]]),
        "engagement": records(w.engagement[[c for c in cols if c in w.engagement.columns]]),
        "by_outcome": {
            o: records(t[["attribute", "dimension", "role", "weight", "evidence", "p_adjusted"]])
            for o, t in d.evidence.weights.items()
        },
    }


def _of_outcomes_with_signal(d: ICPDerivation, drivers: pd.DataFrame) -> pd.DataFrame:
    """Significant drivers of the outcomes whose model beats chance (churn: renewal, loss: win).

    Gated per outcome, not on the ICP's evidence: when the signal is in offer terms only (Telco:
    the contract), the offer's churn risks are what the profile can tell, and they are shown.
    """
    if not len(drivers):
        return drivers
    kinds = {kind for outcome, kind in NEGATIVE_OUTCOMES.items() if outcome in d.evidence.with_signal}
    return drivers[drivers["significant"].astype(bool) & drivers["outcome"].isin(kinds)]


def negative_section(d: ICPDerivation, sufficient: bool) -> dict[str, Any]:
    n = d.negative
    drivers = _of_outcomes_with_signal(d, n.drivers)
    share = (d.scores["fit_penalty"] > 0).mean() if "fit_penalty" in d.scores and len(d.scores) else 0.0
    flagged = {o: records(c[c["flagged"]]) for o, c in n.censoring.items()}
    return {
        "definition": (
            "attribute values (categories, yes/no) and tails of numeric attributes whose churn (1 - renewed) or "
            "loss (1 - won) rate is above the baseline: Fisher exact test vs the rest, numeric tails only in the "
            "direction of a significant trend, Benjamini-Hochberg adjusted. A driver is confirmed when the outcome "
            "model, holding the other attributes, also lowers the outcome for it (mean SHAP <= -0.2 log-odds). "
            f"Confirmed customer drivers with lift >= {EXCLUSION_MIN_LIFT} become exclusions (one per attribute); "
            "confirmed churn drivers become the fit penalty"
        ),
        "drivers": records(drivers, limit=30),
        "exclusions": [r.to_dict() for r in d.fitted.exclusions],
        "penalty": {
            "rules": [r.to_dict() for r in d.fitted.penalty_rules],
            "accounts_penalised": int((d.scores.get("fit_penalty", pd.Series(dtype=float)) > 0).sum()),
            "share_penalised": float(share),
        },
        "set_aside": [{**r.to_dict(), "why": why} for r, why in n.set_aside] if sufficient else [],
        "censoring": flagged,
        "unlabelled": n.unlabelled,
        "offer_risks": records(_of_outcomes_with_signal(d, n.offer_risks), limit=15),
    }


def segments_section(d: ICPDerivation, sufficient: bool) -> dict[str, Any]:
    s = d.segments
    out: dict[str, Any] = {"note": s.note, "period": "all accounts at the extract date"}
    if s.diagnostics and sufficient:
        out["selection"] = json_safe(s.diagnostics)
    if s.segmentation is not None and s.profile is not None and sufficient:
        out |= {
            "k": s.segmentation.model.k,
            "attributes": list(s.segmentation.attributes),
            "profiles": records(s.profile),
            "selection": json_safe(s.diagnostics),
            "distinct_icps": json_safe(d.distinct_icps),
        }
    elif s.segmentation is not None:
        out["note"] = "not proposed: insufficient evidence for an ICP"
    return out


def cohorts_section(d: ICPDerivation, sufficient: bool) -> dict[str, Any]:
    c = d.cohorts
    if "traits" not in c:
        return {"note": c.get("note", "")}
    traits = c["traits"][c["traits"]["trait"]]
    cols = ["attribute", "kind", "winning_value", "effect_size", "p_adjusted", "top_summary", "bottom_summary",
            "agrees_with_scorecard"]  # fmt: skip
    return {
        "definition": (
            "customers by lifetime value (ARR x tenure + expansion, or won deal value): top 20 % / middle 60 % / "
            "bottom 20 %; top vs bottom per ICP attribute, chi-square or Mann-Whitney, BH-adjusted; a trait needs "
            "p < significance level and effect size >= 0.1"
        ),
        "traits": records(traits[cols]) if sufficient else [],
        "value_differences_not_called_traits": [] if sufficient else records(traits[cols]),
        "sizes": json_safe(c["sizes"]),
        "tested": c["tested"],
    }


def quality_section(d: ICPDerivation, training: Any) -> dict[str, Any]:
    """Per trained outcome: suspected leaks with their evidence, calibration and snapshot notes."""
    out: dict[str, Any] = {}
    for name, r in training.trained.items():
        notes = []
        if r.test.metrics["ece"] > HIGH_ECE:  # the summary's threshold (icpkit.training)
            notes.append(
                f"calibration error {r.test.metrics['ece']:.2f} on the test period: the propensities are "
                "poorly calibrated (rankings, tiers and AUC are unaffected)"
            )
        spec = r.dataset.spec
        if spec is not None and spec.snapshot_columns and spec.snapshot_max_age_days is not None:
            notes.append(
                f"behavioral snapshots {', '.join(spec.snapshot_columns)} are export-date values: not used for "
                f"rows older than {spec.snapshot_max_age_days} days before the extract (no account_history)"
            )
        if r.tuning is not None and r.tuning.cut_by_timeout:
            notes.append(
                f"tuning was cut by the time cap after {r.tuning.n_trials_done} of {r.tuning.n_trials} trials: "
                "a rerun may choose differently"
            )
        leaks = [{"feature": s.feature, "rules": list(s.rules), "evidence": s.evidence} for s in r.leakage.suspected] if r.leakage else []
        out[name] = {"suspected_leaks": leaks, "notes": notes}
    return out


def build_profile(
    d: ICPDerivation, crm: CRMData, previous: dict[str, Any] | None, training: Any, created_at: str | None = None
) -> dict[str, Any]:
    """The whole ``icp_profile.json`` (JSON-safe)."""
    evidence = evidence_section(d)
    sufficient = evidence["status"] == "sufficient"
    fitted = d.fitted
    summary = {
        "version": fitted.version,
        "weights": {r["attribute"]: r["weight"] for r in records(d.weights.icp)},
        "traits": [f"{t['attribute']}: {t['winning_value']}" for t in cohorts_section(d, sufficient).get("traits", [])],
        "tier_rates": {r["tier"]: {k: v for k, v in r.items() if k.endswith("_rate")} for r in _tier_rows(d)},
    }
    profile = {
        "format": PROFILE_FORMAT,
        "title": f"Ideal Customer Profile — {fitted.dataset}, data of {fitted.extract_date}",
        "version": fitted.version,
        "dataset": fitted.dataset,
        "extract_date": fitted.extract_date,
        "created_at": created_at or dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "data_fingerprint": crm.fingerprint(),
        "accounts": len(crm["accounts"]),
        "summary": summary_section(d, evidence),
        "evidence": evidence,
        "model_quality": quality_section(d, training),
        "attributes": {
            "roles": records(describe_roles([s for t in d.catalogue.values() for s in t.values()])),
            "refused": d.refused,
            "dropped_by_config": crm.dropped_columns,
            "repairs": [json_safe(r.__dict__) for r in getattr(crm, "repairs", [])],
        },
        "weights": weights_section(d),
        "scorecard": {
            "points": records(fitted.fit.card.points_table()) if fitted.fit else [],
            "validation": json_safe(d.fit_validation),
            "engagement_validation": json_safe(d.engagement_validation),
        },
        "scores": {
            "tier_cutoffs": fitted.tier_cutoffs,
            "tier_counts": d.scores["tier"].value_counts().reindex([*TIER_ORDER, "Unscored"], fill_value=0).to_dict(),
            "quadrant_counts": d.scores["quadrant"].value_counts().to_dict(),
        },
        "tiers": {
            "period": "each outcome's test period (the latest as-of times, untouched by training); tiers as of each row's time",
            "table": records(d.tiers.table),
            "trends": json_safe(d.tiers.trends),
            "warnings": d.tiers.warnings,
            "statements": tier_statements(d),
            "validated": bool(fitted.validation.get("tiers_validated", False)),
        },
        "winning_values": {
            "outcome": d.winning.get("outcome"),
            "period": d.winning.get("period"),
            "by_attribute": {a: records(t) for a, t in d.winning.get("by_attribute", {}).items()},
        } if sufficient and d.winning else {},
        "negative_icp": negative_section(d, sufficient),
        "segments": segments_section(d, sufficient),
        "cohorts": cohorts_section(d, sufficient),
        "diff_summary": summary,
    }
    profile["changes"] = profile_diff(previous.get("diff_summary") if previous else None, summary)
    return json_safe(profile)
