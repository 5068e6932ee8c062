"""What changed between two versions of the ICP profile."""

from __future__ import annotations

import math
from typing import Any


def _weight_moves(before: dict[str, float], after: dict[str, float], threshold: float) -> list[dict]:
    moved = []
    # An attribute on one side only counts as weight 0 on the other: it appeared or vanished.
    for attr in [*before, *(a for a in after if a not in before)]:
        b, a = float(before.get(attr, 0.0)), float(after.get(attr, 0.0))
        change = a - b
        if abs(change) >= threshold:
            moved.append({"attribute": str(attr), "before": b, "after": a, "change": change})
    return sorted(moved, key=lambda m: -abs(m["change"]))


def _tier_rate_changes(before: dict[str, dict], after: dict[str, dict], threshold: float) -> list[dict]:
    changes = []
    for tier, rates in after.items():
        for rate, value in rates.items():
            old = before.get(tier, {}).get(rate)
            if old is None or value is None or math.isnan(float(old)) or math.isnan(float(value)):
                continue
            if abs(float(value) - float(old)) < threshold:
                continue
            changes.append(
                {
                    "tier": str(tier),
                    "rate": str(rate),
                    "before": float(old),
                    "after": float(value),
                    "change": float(value) - float(old),
                }
            )
    return changes


def profile_diff(
    previous: dict | None, current: dict, weight_threshold: float = 2.0, rate_threshold: float = 0.01
) -> dict[str, Any]:
    """Compare two ICP profiles (dicts with "version", "weights", "traits", "tier_rates").

    Returns a JSON-safe dict: ``previous_version``, ``is_first_version``, ``weights_moved``
    (attributes whose weight on the 0-100 scale moved by at least ``weight_threshold``, largest
    move first; an attribute missing on one side counts as 0 there), ``traits_gained``,
    ``traits_lost`` and ``tier_rate_changes`` (tier/rate pairs present in both versions that moved
    by at least ``rate_threshold``).
    With ``previous`` None this is the first version and all lists are empty.
    """
    if previous is None:
        return {
            "previous_version": None,
            "is_first_version": True,
            "weights_moved": [],
            "traits_gained": [],
            "traits_lost": [],
            "tier_rate_changes": [],
        }
    before_traits = [str(t) for t in previous.get("traits", [])]
    after_traits = [str(t) for t in current.get("traits", [])]
    return {
        "previous_version": str(previous.get("version")),
        "is_first_version": False,
        "weights_moved": _weight_moves(
            previous.get("weights", {}), current.get("weights", {}), weight_threshold
        ),
        "traits_gained": [t for t in after_traits if t not in before_traits],
        "traits_lost": [t for t in before_traits if t not in after_traits],
        "tier_rate_changes": _tier_rate_changes(
            previous.get("tier_rates", {}), current.get("tier_rates", {}), rate_threshold
        ),
    }


def diff_text(diff: dict[str, Any]) -> str:
    """What changed since the previous version, in one short paragraph."""
    if diff["is_first_version"]:
        return "first version: nothing to compare."
    parts = []
    if diff["weights_moved"]:
        moves = [f"{m['attribute']} {m['before']:.0f} → {m['after']:.0f}" for m in diff["weights_moved"][:5]]
        parts.append("weights moved: " + ", ".join(moves))
    if diff["traits_gained"]:
        parts.append("new traits: " + ", ".join(diff["traits_gained"]))
    if diff["traits_lost"]:
        parts.append("traits no longer significant: " + ", ".join(diff["traits_lost"]))
    if diff["tier_rate_changes"]:
        changes = [
            f"{c['tier']} {c['rate']} {c['before']:.2f} → {c['after']:.2f}" for c in diff["tier_rate_changes"][:6]
        ]
        parts.append("rates per tier: " + ", ".join(changes))
    return ("; ".join(parts) + ".") if parts else "no attribute weight, trait or tier rate changed."
