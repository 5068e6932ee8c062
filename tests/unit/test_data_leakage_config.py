"""The leakage deny list: user entries extend the defaults, a separate key replaces them, any case."""

from pathlib import Path

from icpkit.config import DEFAULT_DENY_COLUMNS, LeakageConfig, config_from_dict, load_config

ROOT = Path(__file__).resolve().parents[2]


def test_deny_columns_extend_the_defaults():
    leak = LeakageConfig(deny_columns=["sales_notes"])
    assert leak.deny_columns == [*DEFAULT_DENY_COLUMNS, "sales_notes"]
    assert leak.is_denied("stage") and leak.is_denied("sales_notes") and not leak.is_denied("industry")


def test_deny_columns_default_is_the_built_in_list():
    assert LeakageConfig().deny_columns == list(DEFAULT_DENY_COLUMNS)


def test_deny_columns_replace_replaces_the_defaults():
    leak = LeakageConfig(deny_columns_replace=["stage"], deny_columns=["notes"])
    assert leak.deny_columns == ["stage", "notes"] and not leak.is_denied("churn_date")


def test_deny_columns_replace_empty_list_denies_only_the_extensions():
    assert LeakageConfig(deny_columns_replace=[]).deny_columns == []


def test_deny_columns_match_ignoring_case():
    leak = LeakageConfig(deny_columns=["Sales_Notes"])
    assert leak.is_denied("Status") and leak.is_denied("STAGE") and leak.is_denied("sales_notes")
    assert len(LeakageConfig(deny_columns=["STATUS"]).deny_columns) == len(DEFAULT_DENY_COLUMNS)


def test_deny_columns_survive_a_dump_and_reload_unchanged():
    cfg = config_from_dict({"data": {"source": "/x"}, "leakage": {"deny_columns": ["notes"]}})
    again = config_from_dict(cfg.model_dump(mode="json"))
    assert again.leakage.deny_columns == cfg.leakage.deny_columns


def test_maven_config_keeps_every_default_and_adds_its_own():
    leak = load_config(ROOT / "pipelines" / "configs" / "maven_crm.yaml").leakage
    assert set(DEFAULT_DENY_COLUMNS) <= set(leak.deny_columns)
    assert leak.is_denied("amount") and leak.is_denied("close_value")
