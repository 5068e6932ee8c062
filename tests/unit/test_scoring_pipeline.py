"""``python -m pipelines.score`` end to end on a hand-made CRM, with fake registered models."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import pipelines.score as score_cli
from icpkit.scoring.inputs import ColumnSpec, InputSpec
from pipelines._cli import run_main

CRM = {
    "accounts": """
        account_id,industry,employees
        A1,Banking,500
        A2,Retail,20
        A3,Banking,-5
        A4,Software,90
        """,
    "leads": """
        lead_id,account_id,created_at,converted,source
        L1,A1,2025-05-01,,web
        L2,A2,2025-03-01,1,event
        L3,A4,2025-06-20,,event
        """,
    "opportunities": """
        opportunity_id,account_id,created_at,closed_at,amount,won
        O1,A1,2025-05-10,,1000,
        O2,A2,2025-01-10,2025-03-01,500,1
        O3,A4,2025-06-01,,,
        """,
    "subscriptions": """
        subscription_id,account_id,start_date,end_date,arr,renewed
        S1,A1,2024-07-15,2025-07-14,12000,
        S2,A2,2024-01-01,2024-12-31,3000,1
        S3,A4,2025-01-01,2025-12-31,5000,
        """,
    "activities": """
        account_id,occurred_at,activity_type
        A1,2025-06-25,web
        A1,2025-04-25,email
        A4,2025-06-29,web
        """,
}


class FitScorer:
    """fit_score = employees / 10 (capped at 100); tier by the default cutoffs; reasons as lists."""

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        fit = np.clip(frame["employees"].fillna(0) / 10, 0, 100)
        tier = np.select([fit >= 80, fit >= 60, fit >= 40], ["Perfect", "Strong", "Moderate"], "Weak")
        return pd.DataFrame(
            {
                "fit_score": fit,
                "tier": tier,
                "engagement_score": frame["activity_all_30d"] * 10,
                "reasons_up": [[f"industry = {v} (+5)"] for v in frame["industry"].fillna("unknown")],
            },
            index=frame.index,
        )


class Propensity:
    def __init__(self, outcome: str, base: float) -> None:
        self.outcome, self.base = outcome, base

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        p = self.base + 0.1 * frame["activity_all_30d"].fillna(0)
        return pd.DataFrame(
            {f"{self.outcome}_propensity": p, "reasons_up": "recent activity"}, index=frame.index
        )


def _spec(id_column: str, *extra: ColumnSpec) -> InputSpec:
    cols = (ColumnSpec(id_column, "id"), ColumnSpec("activity_all_30d", "count"), *extra)
    return InputSpec(cols, id_column=id_column)


ACCOUNT_SPEC = _spec(
    "account_id",
    ColumnSpec("industry", "categorical", categories=("Banking", "Retail", "Software")),
    ColumnSpec("employees", "numeric", lower=0.0),
)


def _fake_models(missing: tuple[str, ...] = ()):
    models = {
        "icp-scorer": (FitScorer(), ACCOUNT_SPEC),
        "icp-conversion": (
            Propensity("conversion", 0.2),
            _spec("lead_id", ColumnSpec("source", "categorical")),
        ),
        "icp-win": (Propensity("win", 0.5), _spec("opportunity_id")),
        "icp-renewal": (Propensity("renewal", 0.7), _spec("subscription_id")),
        "icp-expansion": (Propensity("expansion", 0.1), _spec("subscription_id")),
    }

    def load(tracking_uri, name, version, alias):
        if name not in models or name in missing:
            return None
        scorer, spec = models[name]
        v = version or "3"
        return score_cli.LoadedModel(name, v, scorer, spec, f"models:/{name}/{v}")

    return load


@pytest.fixture
def project(tmp_path, monkeypatch):
    data = tmp_path / "crm"
    data.mkdir()
    for table, text in CRM.items():
        (data / f"{table}.csv").write_text(textwrap.dedent(text).strip() + "\n")
    config = tmp_path / "config.yaml"
    config.write_text(
        f"data:\n  source: {data}\n  extract_date: 2025-06-30\n"
        f"tracking:\n  tracking_uri: sqlite:///{tmp_path}/mlflow.db\n"
        "scoring:\n  chunk_rows: 2\n  max_unseen_share: 0.5\n"
    )
    monkeypatch.setattr(score_cli, "load_model", _fake_models())
    return tmp_path, config


def _score(monkeypatch, *args: str) -> int:
    monkeypatch.setattr(sys, "argv", ["pipelines.score", *args])
    with pytest.raises(SystemExit) as exit_:
        run_main(score_cli.main)
    return exit_.value.code


def _tables(folder: Path) -> dict[str, pd.DataFrame]:
    return {p.stem: pd.read_parquet(p) for p in sorted(folder.glob("*.parquet"))}


def test_score_writes_every_table_with_versions_and_date(project, monkeypatch):
    root, config = project
    assert _score(monkeypatch, "--config", str(config), "--output", str(root / "out")) == 0
    t = _tables(root / "out" / "2025-06-30")
    assert set(t) == {
        "accounts",
        "open_leads",
        "open_opportunities",
        "renewals_due",
        "rejected",
        "tier_changes",
    }
    acc = t["accounts"]
    assert acc["account_id"].tolist() == ["A1", "A2", "A4"]  # A3 (employees = -5) is rejected
    assert acc["tier"].tolist() == ["Moderate", "Weak", "Weak"]
    assert acc["fit_score"].tolist() == [50.0, 2.0, 9.0]
    assert acc["reasons_up"].iloc[0] == "industry = Banking (+5)"
    assert acc["model_versions"].unique().tolist() == ["icp-scorer=3"]
    assert (acc["scoring_date"] == "2025-06-30").all()
    assert t["rejected"][["table", "model", "id", "rejected_reason"]].values.tolist() == [
        ["accounts", "icp-scorer", "A3", "employees = -5 is below 0"]
    ]
    leads = t["open_leads"]
    assert leads["lead_id"].tolist() == ["L1", "L3"]
    # engagement as of each lead's created_at: L1 (05-01) saw the 04-25 email; L3 (06-20) not A4's 06-29 visit
    assert leads["conversion_propensity"].tolist() == pytest.approx([0.3, 0.2])
    assert leads["conversion_reasons_up"].tolist() == ["recent activity"] * 2
    opps = t["open_opportunities"]
    assert opps["opportunity_id"].tolist() == ["O1", "O3"]
    assert opps["expected_value"].iloc[0] == pytest.approx(600.0) and np.isnan(opps["expected_value"].iloc[1])
    due = t["renewals_due"]
    assert due["subscription_id"].tolist() == ["S1"]  # S3 ends beyond 90 days, S2 is renewed
    assert {"renewal_propensity", "expansion_propensity", "renewal_reasons_up"} <= set(due.columns)
    assert due["model_versions"].iloc[0] == "icp-expansion=3, icp-renewal=3"
    assert t["tier_changes"].empty


def test_score_rerun_is_byte_identical(project, monkeypatch):
    root, config = project
    out = root / "out"
    _score(monkeypatch, "--config", str(config), "--output", str(out))
    first = {p.name: p.read_bytes() for p in (out / "2025-06-30").iterdir()}
    _score(monkeypatch, "--config", str(config), "--output", str(out))
    assert {p.name: p.read_bytes() for p in (out / "2025-06-30").iterdir()} == first


def test_score_overrides_history_and_tier_changes(project, monkeypatch, capsys):
    root, config = project
    out = root / "out"
    _score(monkeypatch, "--config", str(config), "--output", str(out), "--date", "2025-06-01")
    overrides = root / "overrides.csv"
    overrides.write_text(
        "account_id,forced_tier,reason,author,date\n"
        "A1,Perfect,strategic logo,ana,2025-06-15\n"
        "NOPE,Weak,closed down,bo,2025-06-15\n"
    )
    code = _score(monkeypatch, "--config", str(config), "--output", str(out), "--overrides", str(overrides))
    assert code == 0
    t = _tables(out / "2025-06-30")
    acc = t["accounts"].set_index("account_id")
    assert acc.loc["A1", "tier"] == "Perfect" and acc.loc["A1", "model_tier"] == "Moderate"
    assert (
        acc.loc["A1", "override_reason"]
        == "forced Perfect (model: Moderate) by ana on 2025-06-15: strategic logo"
    )
    assert t["tier_changes"][["account_id", "previous_tier", "tier"]].values.tolist() == [
        ["A1", "Moderate", "Perfect"]
    ]
    assert t["tier_changes"]["previous_scoring_date"].tolist() == ["2025-06-01"]
    history = pd.read_parquet(out / "history.parquet")
    assert history.groupby("scoring_date").size().to_dict() == {"2025-06-01": 3, "2025-06-30": 3}
    printed = capsys.readouterr().err
    assert "NOPE: not in the scored accounts" in printed and "1 tier change(s)" in printed


def test_score_sql_output(project, monkeypatch):
    root, config = project
    url = f"sqlite:///{root}/crm.db"
    assert _score(monkeypatch, "--config", str(config), "--output", url) == 0
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.connect() as conn:
        leads = pd.read_sql_table("icp_open_leads", conn)
        history = pd.read_sql_table("icp_score_history", conn)
    engine.dispose()
    assert leads["lead_id"].tolist() == ["L1", "L3"] and len(history) == 3


def test_score_without_a_scorer_exits_2(project, monkeypatch, capsys):
    root, config = project
    monkeypatch.setattr(score_cli, "load_model", _fake_models(missing=("icp-scorer",)))
    assert _score(monkeypatch, "--config", str(config), "--output", str(root / "out")) == 2
    assert "no icp-scorer@champion" in capsys.readouterr().err
    assert not (root / "out").exists()


def test_score_missing_outcome_model_skips_its_table_and_says_so(project, monkeypatch, capsys):
    root, config = project
    monkeypatch.setattr(score_cli, "load_model", _fake_models(missing=("icp-conversion",)))
    assert _score(monkeypatch, "--config", str(config), "--output", str(root / "out")) == 0
    assert not (root / "out" / "2025-06-30" / "open_leads.parquet").exists()
    assert "open_leads: not scored, no conversion model" in capsys.readouterr().err


def test_score_too_many_unseen_exits_2_with_counts(project, monkeypatch, capsys):
    root, config = project
    (root / "crm" / "accounts.csv").write_text(
        "account_id,industry,employees\nA1,Mining,5\nA2,Oil,5\nA3,Retail,5\nA4,Banking,5\n"
    )
    code = _score(
        monkeypatch,
        "--config",
        str(config),
        "--output",
        str(root / "out"),
        "--set",
        "scoring.max_unseen_share=0.25",
    )
    assert code == 2
    assert "industry: 2" in capsys.readouterr().err


def test_score_version_flags_parse():
    assert score_cli._requested_versions(["7", "win=3"]) == {"scorer": "7", "win": "3"}
    from icpkit.errors import ICPKitError

    with pytest.raises(ICPKitError, match="OUTCOME=N"):
        score_cli._requested_versions(["win=latest"])


def test_score_help_imports_no_mlflow_or_lightgbm():
    code = (
        "import runpy, sys\n"
        "sys.argv = ['pipelines.score', '--help']\n"
        "try:\n    runpy.run_module('pipelines.score', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('mlflow', 'lightgbm', 'pyspark'))\n"
        "print('HEAVY', heavy)\n"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, check=True)
    assert "--engine" in out.stdout and "HEAVY []" in out.stdout
