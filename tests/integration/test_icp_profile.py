"""The ICP profile of the session's training: written whole and atomically, readable, versioned.

On shuffled labels, an ICP that names nothing and is never champion.
"""

from __future__ import annotations

import json

import mlflow
import pytest

from icpkit.icp import result as icp_result
from icpkit.registry import champion_version
from tests.integration.conftest import small_config, train_and_publish

pytestmark = pytest.mark.slow


def test_profile_is_written_whole_and_atomically(trained, tmp_path, monkeypatch):
    _, _, run, _, folder = trained
    profile = json.loads((folder / "icp_profile.json").read_text())
    assert profile["evidence"]["status"] == "sufficient"
    md = (folder / "icp_profile.md").read_text()
    title = md.splitlines()[0]
    assert title.startswith(f"# Ideal Customer Profile — {run.dataset}") and "data of 2025-12-31" in title
    first_page = md.split("\n---\n")[0]
    assert "How sure we are" in first_page and "What to avoid" in first_page and "plots/tiers.png" in first_page
    assert (folder / "plots" / "tiers.png").is_file()
    assert (folder / "models" / "fitted_icp" / "model.json").is_file()
    assert folder.parent.parent.joinpath("latest").resolve() == folder.parent.resolve()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(icp_result.FittedICP, "save", broken)
    with pytest.raises(OSError):
        run.icp.write(folder)
    assert json.loads((folder / "icp_profile.json").read_text()) == profile


def test_the_profile_is_logged_with_the_run(trained):
    cfg, _, _, published, _ = trained
    client = mlflow.MlflowClient(cfg.tracking.tracking_uri)
    names = {a.path for a in client.list_artifacts(published.run_id, "icp")}
    assert {"icp/icp_profile.json", "icp/icp_profile.md"} <= names
    assert client.get_run(published.run_id).data.tags["icp.evidence"] == "sufficient"


def test_shuffled_labels_give_an_icp_that_names_nothing_and_is_never_champion(crm_folder, tmp_path):
    # On noise an outcome is still called a signal with the family-wise rate of the Holm-corrected
    # test (icp.significance_level, 5 %): this checks one shuffle, the rate is the README's claim.
    from icpkit.data.loading import load_crm
    from tests.integration.conftest import EXTRACT

    cfg = small_config(crm_folder, tmp_path)
    noise = load_crm(cfg.data, EXTRACT).with_shuffled_labels(seed=0)
    run, published, _ = train_and_publish(cfg, tmp_path, crm=noise)
    p = run.icp.profile
    assert p["evidence"]["status"] == "insufficient", p["evidence"]["by_outcome"]
    assert p["weights"]["icp"] == [] and p["negative_icp"]["exclusions"] == []
    assert "profiles" not in p["segments"] and p["cohorts"].get("traits", []) == []
    aliases = {k: (r.alias, r.reason) for k, r in published.registrations.items()}
    assert all(alias == "challenger" for alias, _ in aliases.values()), (aliases, p["evidence"]["by_outcome"])
    for name in published.registrations:
        assert champion_version(cfg.tracking.tracking_uri, f"icp-{name}") is None
