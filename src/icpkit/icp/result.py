"""One call from trained outcomes to a written ICP: derive, profile, render, write.

:func:`build_icp` is what the workflow calls; :class:`ICPResult` holds the fitted ICP, the
profile (JSON-safe dict), the markdown, the account scores, tables and figures, and writes them
to one folder atomically. Nothing here touches MLflow.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from icpkit.atomic import atomic_directory
from icpkit.attributes import describe_roles
from icpkit.config import Config
from icpkit.data.crm import CRMData
from icpkit.icp import report
from icpkit.icp.derive import ICPDerivation, derive_icp
from icpkit.icp.model import FittedICP
from icpkit.icp.profile import build_profile

if TYPE_CHECKING:
    from icpkit.training import TrainingResult

log = logging.getLogger(__name__)

FITTED_ICP_DIR = "models/fitted_icp"


@dataclass
class ICPResult:
    """The fitted ICP and its report; :meth:`write` puts everything in one folder."""

    fitted: FittedICP
    profile: dict[str, Any]
    markdown: str
    account_scores: pd.DataFrame
    derivation: ICPDerivation
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def sufficient(self) -> bool:
        """Whether the profile found sufficient evidence for an ICP."""
        return self.profile["evidence"]["status"] == "sufficient"

    def write(self, folder: str | Path) -> Path:
        """Write profile, report, plots, tables and the fitted ICP to ``folder``, replacing it atomically."""
        with atomic_directory(folder) as tmp:
            (tmp / "icp_profile.json").write_text(json.dumps(self.profile, indent=2, allow_nan=False) + "\n")
            (tmp / "icp_profile.md").write_text(self.markdown)
            (tmp / "plots").mkdir()
            for name, fig in self.figures.items():
                fig.savefig(tmp / "plots" / name, dpi=110)
            (tmp / "tables").mkdir()
            self.account_scores.to_csv(tmp / "tables" / "account_scores.csv", index=False)
            for name, df in self.tables.items():
                df.to_csv(tmp / "tables" / f"{name}.csv", index=False)
            self.fitted.save(tmp / FITTED_ICP_DIR)
        return Path(folder)


def _tables(d: ICPDerivation) -> dict[str, pd.DataFrame]:
    tables = {
        "attribute_roles": describe_roles([s for t in d.catalogue.values() for s in t.values()]),
        "weights_blended": d.weights.blended,
        "tier_table": d.tiers.table,
        "negative_icp_drivers": d.negative.drivers,
    }
    if d.fitted.fit is not None:
        tables["fit_scorecard_points"] = d.fitted.fit.card.points_table()
    if d.fitted.engagement is not None:
        tables["engagement_scorecard_points"] = d.fitted.engagement.card.points_table()
    if d.segments.profile is not None:
        tables["segments"] = d.segments.profile
    if "traits" in d.cohorts:
        tables["cohort_traits"] = d.cohorts["traits"]
    for outcome, c in d.negative.censoring.items():
        tables[f"censoring_{outcome}"] = c
    return tables


def _figures(d: ICPDerivation, profile: dict[str, Any]) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    if profile["summary"]["tiers"] and profile["summary"]["tier_statements"]:
        figures["tiers.png"] = report.plot_tiers(profile["summary"]["tiers"], "Tiers: size and measured rates")
    if len(d.weights.icp):
        figures["attribute_weights.png"] = report.plot_attribute_weights(d.weights.icp)
    drivers = d.negative.drivers
    if len(drivers) and profile["negative_icp"]["drivers"]:
        figures["churn_drivers.png"] = report.plot_drivers(drivers[drivers["significant"].astype(bool)])
    if profile["segments"].get("profiles"):
        figures["segments.png"] = report.plot_segments(d.segments.profile)
    return figures


def build_icp(
    crm: CRMData,
    training: TrainingResult,
    cfg: Config,
    version: str,
    dataset: str,
    previous: dict[str, Any] | None = None,
    on_step: Callable[[str], None] | None = None,
    release_features: bool = False,
) -> ICPResult:
    """Derive the fitted ICP from the trained outcomes and write its profile (in memory).

    ``release_features``: see :func:`icpkit.icp.derive.derive_icp`.
    """
    d = derive_icp(crm, training, cfg, version, dataset, on_step=on_step, release_features=release_features)
    profile = build_profile(d, crm, previous, training)
    return ICPResult(
        fitted=d.fitted,
        profile=profile,
        markdown=report.render_markdown(profile),
        account_scores=d.scores,
        derivation=d,
        tables=_tables(d),
        figures=_figures(d, profile),
    )
