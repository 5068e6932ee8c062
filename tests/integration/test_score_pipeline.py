"""``python -m pipelines.score`` on the session's trained synthetic CRM.

Open leads, open opportunities and due renewals scored with the registered champions equal the
in-memory models.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

import pipelines.score as score_cli
from icpkit.features import raw_rows
from tests.integration.conftest import EXTRACT

TABLES = {"open_leads": "conversion", "open_opportunities": "win", "renewals_due": "renewal"}


@pytest.fixture(scope="module")
def scored(trained, tmp_path_factory):
    cfg, _, run, _, _ = trained
    folder = tmp_path_factory.mktemp("score")
    config = folder / "config.yaml"
    config.write_text(yaml.safe_dump(cfg.model_dump(mode="json", exclude_none=True), sort_keys=False))
    code = score_cli.main(["--config", str(config), "--output", str(folder / "out")])
    assert code == 0
    out = folder / "out" / str(EXTRACT)
    return run, out, {p.stem: pd.read_parquet(p) for p in out.glob("*.parquet")}


@pytest.mark.parametrize("table", list(TABLES))
def test_scored_open_rows_equal_the_in_memory_model(scored, table):
    run, _, tables = scored
    report = run.training.reports[TABLES[table]]
    spec = report.dataset.spec
    got = tables[table]
    assert len(got) > 0, f"no rows in {table}"
    rows = raw_rows(run.crm, spec).set_index(spec.id_column).loc[got[spec.id_column]].reset_index()
    expected = report.model.predict_proba(spec.features(rows, reference_date=None))
    np.testing.assert_allclose(got[f"{TABLES[table]}_propensity"].to_numpy(), expected, atol=1e-12)
    assert got["model_versions"].str.contains(f"icp-{TABLES[table]}=").all()


def test_open_tables_hold_exactly_the_open_rows(scored):
    run, _, tables = scored
    leads, opps = run.crm["leads"], run.crm["opportunities"]
    assert sorted(tables["open_leads"]["lead_id"]) == sorted(leads.loc[leads["converted"].isna(), "lead_id"])
    open_opps = opps["won"].isna() & opps["closed_at"].isna()
    assert sorted(tables["open_opportunities"]["opportunity_id"]) == sorted(opps.loc[open_opps, "opportunity_id"])
    o = tables["open_opportunities"]
    np.testing.assert_allclose(o["expected_value"], o["win_propensity"] * o["amount"])
    subs, date = run.crm["subscriptions"], pd.Timestamp(EXTRACT)
    due = subs["renewed"].isna() & subs["end_date"].between(date, date + pd.Timedelta(days=90))
    assert sorted(tables["renewals_due"]["subscription_id"]) == sorted(subs.loc[due, "subscription_id"])


def test_accounts_scores_equal_what_training_wrote(scored, trained):
    _, _, _, _, folder = trained
    _, _, tables = scored
    written = pd.read_csv(folder / "tables" / "account_scores.csv", keep_default_na=False, na_values=[""])
    got = tables["accounts"].set_index("account_id").loc[written["account_id"]].reset_index()
    for col in ("fit_points", "fit_score", "tier", "engagement_score", "quadrant"):
        assert got[col].astype(str).tolist() == written[col].astype(str).tolist(), col


def test_accounts_scored_in_slices_with_their_own_times_equal_one_pass(trained, monkeypatch):
    # FittedICP.score slices large books (memory); each row's as-of time goes by position, so
    # rows whose index is not 0..n-1 (a filtered frame, a worker's chunk) keep their own times.
    import icpkit.icp.model as icp_model

    _, _, run, _, _ = trained
    fitted, book = run.icp.fitted, run.icp.derivation.book
    rows = book.iloc[1::3].head(600)
    days = pd.to_timedelta(np.arange(len(rows)) * 7 % 900, unit="D")
    as_of = pd.Series(pd.Timestamp(EXTRACT) - days, index=rows.index)
    whole = fitted.score(rows.reset_index(drop=True), as_of.reset_index(drop=True))
    assert len(whole) == 600 and whole["fit_points"].notna().all()
    monkeypatch.setattr(icp_model, "SCORE_CHUNK_ROWS", 70)
    pd.testing.assert_frame_equal(fitted.score(rows, as_of), whole)
