"""The readable ICP: plots and ``icp_profile.md`` from the profile dict (no pyplot, no state)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from icpkit.icp.diff import diff_markdown


def _figure(size: tuple[float, float]) -> Figure:
    return Figure(figsize=size, layout="constrained")


def plot_weights_by_dimension(dims: pd.DataFrame) -> Figure:
    d = dims.sort_values("weight")
    fig = _figure((6, 1.2 + 0.4 * len(d)))
    ax = fig.add_subplot()
    ax.barh(d["dimension"].astype(str), d["weight"])
    ax.set_xlabel("share of the combined fit weight (%)")
    ax.set_title("ICP weight by dimension")
    return fig


def plot_attribute_weights(weights: pd.DataFrame) -> Figure:
    d = weights.sort_values("weight")
    fig = _figure((7, 1.2 + 0.32 * len(d)))
    ax = fig.add_subplot()
    ax.barh([f"{a} ({dim})" for a, dim in zip(d["attribute"], d["dimension"], strict=True)], d["weight"])
    ax.set_xlabel("combined fit weight (%)")
    ax.set_title("Top attributes of the ICP (mean |SHAP|, blended over outcomes)")
    return fig


def plot_tier_rates(table: pd.DataFrame) -> Figure:
    tiers = table[table["tier"] != "All"]
    rates = [c for c in tiers.columns if c.endswith("_rate")]
    fig = _figure((7, 3.5))
    ax = fig.add_subplot()
    width = 0.8 / max(len(rates), 1)
    x = np.arange(len(tiers))
    for i, c in enumerate(rates):
        ax.bar(x + i * width, tiers[c].astype(float), width, label=c.removesuffix("_rate"))
    ax.set_xticks(x + width * (len(rates) - 1) / 2, tiers["tier"].astype(str))
    ax.set_ylabel("rate on the test period")
    ax.set_title("Outcome rates by fit tier")
    if rates:
        ax.legend(fontsize=8)
    return fig


def plot_drivers(drivers: pd.DataFrame, n: int = 12) -> Figure:
    d = drivers[drivers["significant"]].head(n)
    if not len(d):
        d = drivers.head(0)
    d = d.iloc[::-1]
    fig = _figure((7, 1.5 + 0.35 * max(len(d), 1)))
    ax = fig.add_subplot()
    if len(d):
        labels = [
            # Ranges read "employees < 71", categories "industry = Retail".
            f"{o}: {a} {v}" if str(v)[:1] in "<>[" else f"{o}: {a} = {v}"
            for o, a, v in zip(d["outcome"], d["attribute"], d["value"], strict=True)
        ]
        rate, base = d["bad_rate"].astype(float), d["baseline_rate"].astype(float)
        err = np.vstack([rate - d["ci_low"].astype(float), d["ci_high"].astype(float) - rate])
        ax.barh(labels, rate, xerr=err, color="tab:red", alpha=0.8)
        ax.scatter(base, labels, marker="|", s=200, color="black", label="baseline")
        ax.legend(fontsize=8)
        ax.set_xlabel("churn / loss rate (95% CI)")
    else:
        ax.text(0.5, 0.5, "no significant churn or loss drivers", ha="center", va="center")
        ax.set_axis_off()
    ax.set_title("Negative ICP: what drives churn and loss")
    return fig


def plot_segments(profile: pd.DataFrame, outcomes: list[str]) -> Figure:
    fig = _figure((8, 1.5 + 0.45 * len(profile)))
    ax = fig.add_subplot()
    p = profile.iloc[::-1]
    labels = [
        f"#{s} {n} ({share:.0%})" for s, n, share in zip(p["segment"], p["name"], p["share"], strict=True)
    ]
    cols = [f"{o}_rate" for o in outcomes if f"{o}_rate" in p.columns]
    height = 0.8 / max(len(cols), 1)
    y = np.arange(len(p))
    for i, c in enumerate(cols):
        ax.barh(y + i * height, p[c].astype(float), height, label=c.removesuffix("_rate"))
    ax.set_yticks(y + height * (len(cols) - 1) / 2, labels, fontsize=8)
    ax.set_xlabel("outcome rate")
    ax.set_title("Segments and their outcome rates")
    if cols:
        ax.legend(fontsize=8)
    return fig


# ---------------------------------------------------------------------------------------------
# markdown


def _fmt(v: Any, pct: bool = False) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "—"
    if isinstance(v, float):
        return f"{v:.1%}" if pct else f"{v:,.3g}" if abs(v) < 1000 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def _table(rows: list[dict[str, Any]], columns: list[str], pct: tuple[str, ...] = ()) -> str:
    if not rows:
        return "_none_\n"
    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    body = "".join(
        "| " + " | ".join(_fmt(r.get(c), c in pct or c.endswith("_rate")) for c in columns) + " |\n"
        for r in rows
    )
    return head + body


def profile_markdown(profile: dict[str, Any], tables: dict[str, pd.DataFrame], figures: list[str]) -> str:
    """``icp_profile.md``: what changed first, then the evidence, weights, scores, tiers, cohorts,
    segments and the negative ICP, with plots (files in ``plots/`` next to it)."""
    p = profile
    out = [
        f"# Ideal Customer Profile — version {p['version']}\n",
        f"Data extracted {p['extract_date']}, {p['accounts']:,} accounts, created {p['created_at']}.\n",
    ]
    out.append(diff_markdown(p["changes"]) + "\n")

    ev = p["evidence"]
    out.append("## Evidence\n")
    out.append(f"**{ev['status'].upper()}** — {ev['statement']}\n")
    rows = [{"outcome": o, **{k: v for k, v in d.items() if k != "auc_95ci"},
             "95% CI": "[{:.3f}, {:.3f}]".format(*d["auc_95ci"]) if "auc_95ci" in d else "—"}
            for o, d in ev["by_outcome"].items()]  # fmt: skip
    out.append(_table(rows, ["outcome", "status", "model", "test_auc", "95% CI", "reason"]))

    w = p["weights"]
    out.append("\n## Attribute weights\n")
    out.append(
        w["definition"] + ". The combined fit weight blends the fit outcomes (config `icp.fit_blend`).\n"
    )
    for f in ("weights_by_dimension.png", "attribute_weights.png"):
        if f in figures:
            out.append(f"\n![{f}](plots/{f})\n")
    if "blended_fit_by_dimension" in w:
        out.append("\n### By dimension (combined fit)\n")
        out.append(_table(w["blended_fit_by_dimension"], ["dimension", "weight", "n_attributes"]))
    if "blended_fit" in w:
        out.append("\n### Top attributes (combined fit)\n")
        out.append(_table(w["blended_fit"][:15], ["attribute", "dimension", "weight"]))
    for o, recs in w["by_outcome"].items():
        out.append(f"\n### {o}: top attributes\n")
        out.append(_table(recs[:8], ["attribute", "dimension", "weight"]))

    s = p["scores"]
    out.append("\n## Scores\n")
    out.append(f"- **fit score**: {s['fit_score']}\n- **engagement score**: {s['engagement_score']}\n"
               f"- **fit points**: {s['fit_points']}\n")  # fmt: skip
    agree = [{"outcome": o, **v} for o, v in s["fit_scorecard_agreement"].items()]
    if agree:
        out.append(
            "\nHow closely the fit scorecard (account attributes only) ranks like each outcome model, "
            "on test rows:\n\n"
        )
        out.append(
            _table(
                agree, ["outcome", "spearman_vs_model", "scorecard_test_auc", "model_test_auc", "test_rows"]
            )
        )
    if "scorecard" in p:
        out.append(
            "\n### Points scorecard (fit)\n\n"
            "Points per attribute value; an account's fit points are the sum.\n\n"
        )
        card = pd.DataFrame(p["scorecard"])
        if len(card):
            best = card.sort_values("points", ascending=False).groupby("feature", sort=False).head(3)
            out.append(_table(best.to_dict(orient="records"), list(card.columns)))
            out.append(
                "\n(top 3 values per attribute; the full table is `tables/fit_scorecard_points.csv`)\n"
            )

    t = p["tiers"]
    out.append("\n## Tiers\n")
    out.append(f"Tiers by fit score (cut-offs {s['tier_cutoffs']}"
               + (f", top {s['capacity_percent']}% by capacity" if s.get("capacity_percent") else "")
               + f"); rates on {t['period']}.\n\n")  # fmt: skip
    if "tier_rates.png" in figures:
        out.append("![tier rates](plots/tier_rates.png)\n\n")
    if t["table"]:
        out.append(_table(t["table"], list(t["table"][0].keys())))
    if t["warnings"]:
        out.append("\n**Tiers do not order every outcome:**\n\n" + "".join(f"- {x}\n" for x in t["warnings"]))
    else:
        out.append("\nHigher tiers show higher rates for every outcome.\n")
    out.append(f"\nQuadrants (fit x engagement): {s['quadrant_counts']}\n")

    if "winning_values" in p:
        wv = p["winning_values"]
        out.append(f"\n## Winning values and ranges ({wv['outcome']} rate, lift vs overall)\n")
        for a, recs in wv["by_attribute"].items():
            top = sorted([r for r in recs if r.get("lift") is not None], key=lambda r: -r["lift"])[:3]
            out.append(
                f"- **{a}**: "
                + "; ".join(f"{r['value']} (lift {r['lift']:.2f}, n={r['n']})" for r in top)
                + "\n"
            )

    c = p["cohorts"]
    out.append("\n## Value cohorts\n")
    if "definition" in c:
        out.append(f"{c['definition']}. Sizes: {c['sizes']}. {c['tested']} attributes tested.\n\n")
        out.append("Significant traits of the top cohort:\n\n")
        out.append(_table(c["traits"], ["attribute", "kind", "winning_value", "effect_size", "p_adjusted",
                                         "top_summary", "bottom_summary"]))  # fmt: skip
    else:
        out.append(c["note"] + "\n")

    if "segments" in p and not p["segments"]["profiles"]:
        out.append(f"\n## Segments\n\nNo segmentation: {p['segments']['selection']['reason']}.\n")
    elif "segments" in p:
        g = p["segments"]
        out.append(f"\n## Segments (k = {g['k']}, chosen by silhouette gain over a null)\n\n")
        if "segments.png" in figures:
            out.append("![segments](plots/segments.png)\n\n")
        cols = ["segment", "name", "size", "share"] + [k for k in g["profiles"][0] if k.endswith("_rate")]
        if "revenue" in g["profiles"][0]:
            cols.append("revenue")
        out.append(_table(g["profiles"], cols, pct=("share",)))
        if g["distinct_icps"]:
            out.append(
                "\nSegments proposed as separate ICPs (an outcome significantly above the overall rate):\n\n"
            )
            out.append(
                _table(g["distinct_icps"], ["segment", "name", "outcome", "rate", "overall_rate", "ci_low"])
            )

    n = p["negative_icp"]
    out.append("\n## Negative ICP (churn and loss profile)\n\n" + n["definition"] + ".\n\n")
    if "churn_drivers.png" in figures:
        out.append("![drivers](plots/churn_drivers.png)\n\n")
    driver_cols = ["outcome", "attribute", "value", "support", "bad_rate", "baseline_rate", "lift"]
    driver_cols += ["ci_low", "ci_high", "excess_bad", "model_contribution"]
    out.append(_table(n["drivers"][:15], driver_cols))
    out.append("\n**Exclusion criteria**\n\n")
    rules = [
        f"- {e['rule']} ({e['outcome']} rate {e['churn_or_loss_rate']:.0%} vs {e['baseline_rate']:.0%})\n"
        for e in n["exclusion_criteria"]
    ]
    out.append("".join(rules) or "_none_\n")
    fp = n["fit_penalty"]
    out.append(f"\nFit penalty: {fp['rule']}; {fp['accounts_penalised']:,} accounts penalised.\n")
    return "".join(out)
