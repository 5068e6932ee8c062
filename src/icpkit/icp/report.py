"""The readable ICP: ``icp_profile.md`` rendered from a template, and its plots.

Words live in ``templates/profile.md.j2``, data in the profile dict: the template knows the
profile's keys, the code knows none of its sentences. Plots are built on
:class:`matplotlib.figure.Figure` directly (no pyplot state).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from icpkit.icp.diff import diff_text
from icpkit.models.evaluation import new_figure

TEMPLATES = Path(__file__).with_name("templates")


def _num(v: Any) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    if isinstance(v, float):
        return f"{v:,.3g}" if abs(v) < 1000 else f"{v:,.0f}"
    return str(v)


def _pct(v: Any) -> str:
    return "—" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{float(v):.0%}"


def render_markdown(profile: dict[str, Any]) -> str:
    """``icp_profile.md`` from the profile dict."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), undefined=jinja2.StrictUndefined, trim_blocks=False,
        keep_trailing_newline=True, autoescape=False,
    )  # fmt: skip
    points = pd.DataFrame(profile["scorecard"]["points"])
    top = (
        points.sort_values("points", ascending=False).groupby("feature", sort=False).head(3) if len(points) else points
    )
    first_tier = profile["summary"]["tiers"][0] if profile["summary"]["tiers"] else {}
    rates = [c[: -len("_rate")] for c in first_tier if c.endswith("_rate")]
    return env.get_template("profile.md.j2").render(
        p=profile, pct=_pct, num=_num, rate_outcomes=rates, top_points=top.to_dict(orient="records"),
        changes_text=diff_text(profile["changes"]),
        segment_rates=[c for c in (profile["segments"].get("profiles") or [{}])[0] if c.endswith("_rate")],
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# plots


def plot_tiers(tiers: list[dict[str, Any]], title: str) -> Figure:
    """Tier sizes (bars, share of the book) with each outcome's measured test-period rate."""
    fig = new_figure((7.5, 3.8))
    ax = fig.add_subplot()
    names = [t["tier"] for t in tiers]
    x = np.arange(len(names))
    ax.bar(x, [t["share"] for t in tiers], color="lightgrey", label="share of accounts")
    for t, xi in zip(tiers, x, strict=True):
        ax.text(xi, t["share"], f"{t['accounts']:,}", ha="center", va="bottom", fontsize=8)
    outcomes = [k[: -len("_rate")] for k in (tiers[0] if tiers else {}) if k.endswith("_rate")]
    for o in outcomes:
        rates = [t.get(f"{o}_rate") for t in tiers]
        ax.plot(x, [np.nan if r is None else r for r in rates], marker="o", label=f"{o} rate (test period)")
    ax.set_xticks(x, names)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("share / rate")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper right")
    return fig


def plot_attribute_weights(weights: pd.DataFrame) -> Figure:
    """The 15 largest ICP attribute weights (share of the ICP weight, with their dimension)."""
    d = weights.sort_values("share_of_role").tail(15)
    fig = new_figure((7, 1.2 + 0.32 * max(len(d), 1)))
    ax = fig.add_subplot()
    ax.barh([f"{a} ({dim})" for a, dim in zip(d["attribute"], d["dimension"], strict=True)], d["share_of_role"])
    ax.set_xlabel("share of the ICP weight (%)")
    ax.set_title("The ICP attributes (customer traits with out-of-sample evidence)")
    return fig


def plot_drivers(drivers: pd.DataFrame, n: int = 12) -> Figure:
    """The first ``n`` churn / loss drivers: bad rate with its 95% CI against the baseline."""
    d = drivers.head(n).iloc[::-1]
    fig = new_figure((7, 1.5 + 0.35 * max(len(d), 1)))
    ax = fig.add_subplot()
    if len(d):
        labels = [
            f"{o}: {a} {v}" if str(v)[:1] in "<>" else f"{o}: {a} = {v}"
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


def plot_segments(profile: pd.DataFrame) -> Figure:
    """Each segment's share of the accounts at the extract date."""
    p = profile.iloc[::-1]
    fig = new_figure((8, 1.5 + 0.45 * len(p)))
    ax = fig.add_subplot()
    labels = [f"#{s} {n}" for s, n in zip(p["segment"], p["name"], strict=True)]
    ax.barh(labels, p["share"].astype(float))
    ax.set_xlabel("share of accounts (at the extract date)")
    ax.set_title("Segments")
    return fig
