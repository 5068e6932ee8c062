"""The synthetic CRM: deterministic, valid against the contract, and honest about its truth."""

from __future__ import annotations

import datetime as dt
import filecmp

import numpy as np
import pandas as pd
import pytest

from icpkit.config import DataConfig, SyntheticConfig
from icpkit.data import synthetic
from icpkit.data.loading import load_crm
from icpkit.data.synthetic import ensure_synthetic_crm, generate_crm, read_truth, write_synthetic_crm
from icpkit.errors import ICPKitError

EXTRACT = dt.date(2025, 12, 31)


@pytest.fixture(scope="module")
def small():
    return generate_crm(2_000, seed=3, extract_date=EXTRACT)


def test_same_seed_gives_identical_tables_and_files(small, tmp_path):
    again = generate_crm(2_000, seed=3, extract_date=EXTRACT)
    for name, df in small.tables.items():
        pd.testing.assert_frame_equal(df, again.tables[name])
    write_synthetic_crm(small, tmp_path / "a")
    write_synthetic_crm(again, tmp_path / "b")
    cmp = filecmp.dircmp(tmp_path / "a", tmp_path / "b")
    assert not cmp.diff_files and not cmp.left_only and not cmp.right_only
    other = generate_crm(2_000, seed=4, extract_date=EXTRACT)
    assert not small.tables["accounts"].equals(other.tables["accounts"])


def test_truth_covers_every_row_and_importance_sums_to_100(small):
    ids = {"conversion": ("leads", "lead_id"), "win": ("opportunities", "opportunity_id")}
    subs = ("subscriptions", "subscription_id")
    ids |= {"renewal": subs, "expansion": subs}
    for outcome, (table, id_col) in ids.items():
        p = small.propensities[outcome]
        assert p[id_col].tolist() == small.tables[table][id_col].tolist()
        assert p["true_propensity"].between(0, 1).all()
    imp = small.importance
    assert sorted(imp["outcome"].unique()) == ["conversion", "expansion", "renewal", "win"]
    np.testing.assert_allclose(imp.groupby("outcome")["importance"].sum(), 100.0)
    # Noise attributes have no effect, so they are not in the truth at all.
    assert not imp["attribute"].isin(synthetic.NOISE_ATTRIBUTES).any()
    assert small.meta["top_attributes"]["renewal"][0] == "support_tickets_90d"
    seg = small.segments
    assert seg["account_id"].tolist() == small.tables["accounts"]["account_id"].tolist()
    assert set(seg["segment"]) == set(synthetic.SEGMENTS)


def test_labels_follow_the_true_propensities(small):
    leads = small.tables["leads"].merge(small.propensities["conversion"], on="lead_id")
    labelled = leads[leads["converted"].notna()]
    # The generator draws labels from the truth: rates agree, and the planted effect shows.
    assert abs(labelled["converted"].mean() - labelled["true_propensity"].mean()) < 0.03
    by_source = labelled.groupby("lead_source")["converted"].mean()
    assert by_source["referral"] > by_source["outbound"] + 0.15
    subs = small.tables["subscriptions"]
    due = subs["end_date"] <= pd.Timestamp(EXTRACT)
    assert subs.loc[due, "renewed"].notna().all() and subs.loc[~due, "renewed"].isna().all()


def test_written_crm_loads_and_validates_against_the_contract(small, tmp_path):
    write_synthetic_crm(small, tmp_path / "crm", file_format="parquet")
    crm = load_crm(DataConfig(source=str(tmp_path / "crm")), EXTRACT)
    assert crm.summary()["accounts"] == 2_000
    assert crm.summary()["activities"] == len(small.tables["activities"])
    truth = read_truth(tmp_path / "crm")
    assert truth.meta["seed"] == 3
    assert len(truth.propensities) == 4
    pd.testing.assert_frame_equal(truth.segments, small.segments, check_dtype=False)


def test_a_failed_write_keeps_the_previous_folder(small, tmp_path, monkeypatch):
    out = tmp_path / "crm"
    write_synthetic_crm(small, out)
    before = (out / "accounts.csv").read_bytes()

    def broken(df, path, file_format):
        raise OSError("disk full")

    monkeypatch.setattr(synthetic, "_write_table", broken)
    with pytest.raises(OSError):
        write_synthetic_crm(generate_crm(500, seed=9, extract_date=EXTRACT), out)
    assert (out / "accounts.csv").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["crm"]  # no temporary folder left behind


def test_ensure_generates_once_and_regenerates_when_settings_change(tmp_path):
    out = tmp_path / "crm"
    cfg = SyntheticConfig(n_accounts=300, seed=1)
    assert ensure_synthetic_crm(out, cfg, EXTRACT) is True
    assert ensure_synthetic_crm(out, cfg, EXTRACT) is False
    assert ensure_synthetic_crm(out, SyntheticConfig(n_accounts=400, seed=1), EXTRACT) is True
    assert read_truth(out).meta["n_accounts"] == 400
    parquet = SyntheticConfig(n_accounts=400, seed=1, file_format="parquet")
    assert ensure_synthetic_crm(out, parquet, EXTRACT) is True
    assert (out / "accounts.parquet").is_file() and not (out / "accounts.csv").exists()
    assert ensure_synthetic_crm(out, parquet, EXTRACT) is False


def test_ensure_refuses_to_overwrite_a_users_folder(tmp_path):
    (tmp_path / "accounts.csv").write_text("account_id\nA1\n")
    with pytest.raises(ICPKitError, match="not a generated synthetic CRM"):
        ensure_synthetic_crm(tmp_path, SyntheticConfig(n_accounts=300), EXTRACT)
    assert (tmp_path / "accounts.csv").read_text() == "account_id\nA1\n"


def test_too_small_is_a_clear_error():
    with pytest.raises(ICPKitError, match="at least 100"):
        generate_crm(10, seed=1, extract_date=EXTRACT)
