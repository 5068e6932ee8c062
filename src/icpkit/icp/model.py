"""The ICP as one fitted, versioned object: everything needed to score an account later.

:class:`FittedICP` holds the fit and engagement scorecards (and their encoders), the book's
percentile references, the negative-ICP penalty rules and exclusions, the tier cutoffs, the
quadrant thresholds and the segment model with its names. Training scores the book with
:meth:`FittedICP.score`, the profile is a report about this object, and the registered
``icp-scorer`` serves it — so training, the report and every later score agree by construction.
Saved as JSON only (no pickles).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from icpkit.atomic import atomic_directory
from icpkit.attributes import AttributeSpec, prepare_attributes
from icpkit.features import engagement_columns
from icpkit.icp.negative import DriverRule, penalty_points
from icpkit.icp.scorecard import AdditiveScorecard, take_text
from icpkit.icp.scores import PercentileReference, apply_penalty, assign_tiers, quadrant
from icpkit.icp.segments import SegmentModel
from icpkit.icp.segments import _nearest as nearest_centre
from icpkit.models.preprocessing import Preprocessor
from icpkit.serialization import MODEL_FILE, json_default

log = logging.getLogger(__name__)

FITTED_ICP_FORMAT = "icpkit.FittedICP/1"

#: The columns :meth:`FittedICP.score` returns, in order.
SCORE_COLUMNS = [
    "account_id", "fit_points", "fit_percentile", "fit_penalty", "fit_score", "tier", "engagement_points",
    "engagement_score", "quadrant", "segment", "segment_name", "negative_icp_flags", "reasons_up",
    "reasons_down",
]  # fmt: skip


#: Rows :meth:`FittedICP.score` scores at a time (bounds its memory on a million-account book).
SCORE_CHUNK_ROWS = 200_000


def row_slices(n: int, size: int | None = None) -> list[slice]:
    """Consecutive slices of at most ``size`` (default :data:`SCORE_CHUNK_ROWS`) rows; one for no rows."""
    size = size or SCORE_CHUNK_ROWS
    return [slice(start, start + size) for start in range(0, max(n, 1), size)]


@dataclass
class Scorecard:
    """One additive scorecard with the attributes it reads, their encoder and the book's reference."""

    attributes: dict[str, AttributeSpec]
    encoder: Preprocessor
    card: AdditiveScorecard
    reference: PercentileReference
    #: Engagement columns (activity counts) read as they are, after the attributes.
    extra_columns: list[str] = field(default_factory=list)

    def features(self, accounts: pd.DataFrame, as_of: pd.Series | pd.Timestamp) -> pd.DataFrame:
        """The encoded scorecard features of raw account rows as of ``as_of``."""
        X = prepare_attributes(accounts, self.attributes, as_of)
        for c in self.extra_columns:
            X[c] = pd.to_numeric(accounts[c], errors="coerce").astype("float64") if c in accounts else np.nan
        return self.encoder.encode(X.reindex(columns=self.encoder.columns_))

    def to_dict(self) -> dict[str, Any]:
        """The scorecard as a JSON-ready dict."""
        return {
            "attributes": [s.to_dict() for s in self.attributes.values()],
            "encoder": self.encoder.to_dict(),
            "card": self.card.to_dict(),
            "reference": self.reference.to_dict(),
            "extra_columns": self.extra_columns,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Scorecard:
        """Rebuild a scorecard from :meth:`to_dict` output."""
        return cls(
            attributes={s["name"]: AttributeSpec.from_dict(s) for s in d["attributes"]},
            encoder=Preprocessor.from_dict(d["encoder"]),
            card=AdditiveScorecard.from_dict(d["card"]),
            reference=PercentileReference.from_dict(d["reference"]),
            extra_columns=list(d.get("extra_columns", [])),
        )


@dataclass
class Segmentation:
    """The segment model and the attributes it reads."""

    attributes: dict[str, AttributeSpec]
    model: SegmentModel

    def assign(self, accounts: pd.DataFrame, as_of: pd.Series | pd.Timestamp) -> tuple[np.ndarray, np.ndarray]:
        """Segment number and segment name of each account row (``as_of`` per row goes by position)."""
        accounts = accounts.reset_index(drop=True)
        times = pd.Series(as_of.to_numpy()) if isinstance(as_of, pd.Series) else as_of
        centres = np.asarray(self.model.centers, dtype=float)
        pre = self.model.preprocessor
        parts = []
        for rows in row_slices(len(accounts)):  # one slice's design matrix at a time
            when = times.iloc[rows].reset_index(drop=True) if isinstance(times, pd.Series) else times
            X = prepare_attributes(accounts.iloc[rows].reset_index(drop=True), self.attributes, when)
            # SegmentModel.predict without the labelled design frame: same design, same nearest centre.
            design = pre.design_array(pre.encode(X.reindex(columns=self.model.columns)))
            parts.append(nearest_centre(design, centres))
        seg = np.concatenate(parts)
        names = [str(n) for n in (self.model.names or [f"segment {i}" for i in range(self.model.k)])]
        return seg.astype("int64"), take_text(names, seg)

    def to_dict(self) -> dict[str, Any]:
        """The segmentation as a JSON-ready dict."""
        return {"attributes": [s.to_dict() for s in self.attributes.values()], "model": self.model.to_dict()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Segmentation:
        """Rebuild a segmentation from :meth:`to_dict` output."""
        return cls(
            attributes={s["name"]: AttributeSpec.from_dict(s) for s in d["attributes"]},
            model=SegmentModel.from_dict(d["model"]),
        )


@dataclass
class FittedICP:
    """Everything needed to score an account: see the module docstring.

    ``rule_attributes`` are the attributes the penalty and exclusion rules read.
    ``validation`` records what was checked out of sample (the scorecard's test AUC per outcome,
    whether tiers order the rates), so a consumer can see whether the tiers are validated.
    """

    version: str
    dataset: str
    extract_date: str
    fit: Scorecard | None
    engagement: Scorecard | None
    windows_days: list[int]
    activity_types: list[str]
    penalty_rules: list[DriverRule]
    exclusions: list[DriverRule]
    rule_attributes: dict[str, AttributeSpec]
    max_penalty_points: float
    tier_cutoffs: dict[str, float]
    high_fit: float
    high_engagement: float
    segmentation: Segmentation | None = None
    validation: dict[str, Any] = field(default_factory=dict)

    # -- inputs --------------------------------------------------------------------------------

    def input_columns(self) -> list[str]:
        """Raw columns an account row may carry: its attributes and its engagement counts."""
        cols: dict[str, None] = {"account_id": None}
        for part in (self.fit, self.engagement, self.segmentation):
            for name in getattr(part, "attributes", {}) or {}:
                cols[name] = None
        for name in self.rule_attributes:
            cols[name] = None
        for c in self.engagement_inputs():
            cols[c] = None
        return list(cols)

    def engagement_inputs(self) -> list[str]:
        """The activity-count columns the engagement score reads.

        They are built by :func:`icpkit.features.engagement_features` as of the scoring date.
        """
        if self.engagement is None or not self.windows_days:
            return []
        wanted = set(self.engagement.extra_columns)
        return [c for c in engagement_columns(self.windows_days, self.activity_types) if c in wanted]

    # -- scoring -------------------------------------------------------------------------------

    def score(self, accounts: pd.DataFrame, as_of: pd.Series | pd.Timestamp, reasons: bool = True) -> pd.DataFrame:
        """Score raw account rows as of a date (or one date per row): see :data:`SCORE_COLUMNS`.

        ``reasons=False`` leaves ``reasons_up`` / ``reasons_down`` empty (scores only, faster).
        """
        accounts = accounts.reset_index(drop=True)
        if isinstance(as_of, pd.Series):  # one time per row, by position (the rows were re-indexed)
            as_of = pd.Series(as_of.to_numpy(), index=accounts.index)
        if len(accounts) <= SCORE_CHUNK_ROWS:
            return self._score(accounts, as_of, reasons)
        # Every column is a function of its own row alone, so slices give the same scores while
        # the working set (entry indexes, points, reason texts) stays that of one slice.
        parts = []
        for rows in row_slices(len(accounts)):
            when = as_of.iloc[rows].reset_index(drop=True) if isinstance(as_of, pd.Series) else as_of
            parts.append(self._score(accounts.iloc[rows].reset_index(drop=True), when, reasons))
        return pd.concat(parts, ignore_index=True)

    def _score(self, accounts: pd.DataFrame, as_of: pd.Series | pd.Timestamp, reasons: bool) -> pd.DataFrame:
        out = pd.DataFrame({"account_id": accounts["account_id"] if "account_id" in accounts else pd.NA})
        # The rule attributes, prepared once for the penalty and the exclusion flags.
        rules = self._rule_frame(accounts, as_of)
        self._fit_scores(accounts, as_of, out, reasons, rules)
        self._engagement_scores(accounts, as_of, out)
        out["tier"] = assign_tiers(out["fit_score"].to_numpy(), self.tier_cutoffs)
        out["quadrant"] = quadrant(
            out["fit_score"].to_numpy(), out["engagement_score"].to_numpy(), self.high_fit, self.high_engagement
        )
        if self.segmentation is not None and len(accounts):
            out["segment"], out["segment_name"] = self.segmentation.assign(accounts, as_of)
        else:
            out["segment"], out["segment_name"] = pd.array([pd.NA] * len(accounts), dtype="Int64"), None
        out["negative_icp_flags"] = self._flags(rules)
        return out[SCORE_COLUMNS]

    def _fit_scores(
        self,
        accounts: pd.DataFrame,
        as_of: pd.Series | pd.Timestamp,
        out: pd.DataFrame,
        reasons: bool = True,
        rules: pd.DataFrame | None = None,
    ) -> None:
        if self.fit is None:
            for c in ("fit_points", "fit_percentile", "fit_penalty", "fit_score"):
                out[c] = np.nan
            out["reasons_up"], out["reasons_down"] = "", ""
            return
        # One read of the frame serves both the points and the reasons.
        entries = self.fit.card.entry_index(self.fit.features(accounts, as_of))
        table = self.fit.card.points_of_entries(entries)
        points = table.sum(axis=1).astype(np.int64).astype(float)
        out["fit_points"] = points
        out["fit_percentile"] = self.fit.reference.percentile(points)
        out["fit_penalty"] = self._penalty(rules)
        out["fit_score"] = apply_penalty(out["fit_percentile"].to_numpy(), out["fit_penalty"].to_numpy())
        if not reasons:
            out["reasons_up"], out["reasons_down"] = "", ""
            return
        out["reasons_up"], out["reasons_down"] = self.fit.card.reasons_of_entries(entries, 3, table)

    def _engagement_scores(self, accounts: pd.DataFrame, as_of: pd.Series | pd.Timestamp, out: pd.DataFrame) -> None:
        if self.engagement is None:
            out["engagement_points"], out["engagement_score"] = np.nan, np.nan
            return
        points = self.engagement.card.score(self.engagement.features(accounts, as_of)).astype(float)
        out["engagement_points"] = points
        out["engagement_score"] = self.engagement.reference.percentile(points)

    def _rule_frame(self, accounts: pd.DataFrame, as_of: pd.Series | pd.Timestamp) -> pd.DataFrame:
        return prepare_attributes(accounts, self.rule_attributes, as_of)

    def _penalty(self, rules: pd.DataFrame) -> np.ndarray:
        if not self.penalty_rules:
            return np.zeros(len(rules))
        return penalty_points(self.penalty_rules, rules, self.max_penalty_points)

    def _flags(self, rules: pd.DataFrame) -> np.ndarray:
        flags = np.full(len(rules), "", dtype=object)
        for rule in self.exclusions:
            hit = np.flatnonzero(np.asarray(rule.matches(rules), dtype=bool))
            if not len(hit):
                continue
            # Only the matching rows are touched (same text as joining every row's conditions).
            condition = rule.condition()
            before = flags[hit]
            flags[hit] = np.where(before == "", condition, before + ("; " + condition))
        return flags

    # -- persistence ---------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The fitted ICP as a JSON-ready dict (the content of ``model.json``)."""
        return {
            "format": FITTED_ICP_FORMAT,
            "version": self.version,
            "dataset": self.dataset,
            "extract_date": self.extract_date,
            "fit": self.fit.to_dict() if self.fit else None,
            "engagement": self.engagement.to_dict() if self.engagement else None,
            "windows_days": self.windows_days,
            "activity_types": self.activity_types,
            "penalty_rules": [r.to_dict() for r in self.penalty_rules],
            "exclusions": [r.to_dict() for r in self.exclusions],
            "rule_attributes": [s.to_dict() for s in self.rule_attributes.values()],
            "max_penalty_points": self.max_penalty_points,
            "tier_cutoffs": self.tier_cutoffs,
            "high_fit": self.high_fit,
            "high_engagement": self.high_engagement,
            "segmentation": self.segmentation.to_dict() if self.segmentation else None,
            "validation": self.validation,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FittedICP:
        """Rebuild a fitted ICP from :meth:`to_dict` output; other formats are a ``ValueError``."""
        if d.get("format") != FITTED_ICP_FORMAT:
            raise ValueError(f"not a fitted ICP: format={d.get('format')!r} (expected {FITTED_ICP_FORMAT})")
        return cls(
            version=str(d["version"]),
            dataset=str(d["dataset"]),
            extract_date=str(d["extract_date"]),
            fit=Scorecard.from_dict(d["fit"]) if d.get("fit") else None,
            engagement=Scorecard.from_dict(d["engagement"]) if d.get("engagement") else None,
            windows_days=list(d["windows_days"]),
            activity_types=list(d["activity_types"]),
            penalty_rules=[DriverRule.from_dict(r) for r in d["penalty_rules"]],
            exclusions=[DriverRule.from_dict(r) for r in d["exclusions"]],
            rule_attributes={s["name"]: AttributeSpec.from_dict(s) for s in d["rule_attributes"]},
            max_penalty_points=float(d["max_penalty_points"]),
            tier_cutoffs={k: float(v) for k, v in d["tier_cutoffs"].items()},
            high_fit=float(d["high_fit"]),
            high_engagement=float(d["high_engagement"]),
            segmentation=Segmentation.from_dict(d["segmentation"]) if d.get("segmentation") else None,
            validation=dict(d.get("validation", {})),
        )

    def save(self, folder: str | Path) -> Path:
        """Write ``model.json`` into ``folder`` (replaced atomically); returns the folder."""
        with atomic_directory(folder) as tmp:
            text = json.dumps(self.to_dict(), indent=1, allow_nan=False, default=json_default)
            (tmp / MODEL_FILE).write_text(text + "\n", encoding="utf-8")
        return Path(folder)

    @classmethod
    def load(cls, folder: str | Path) -> FittedICP:
        """Read the fitted ICP :meth:`save` wrote into ``folder``."""
        return cls.from_dict(json.loads((Path(folder) / MODEL_FILE).read_text(encoding="utf-8")))


