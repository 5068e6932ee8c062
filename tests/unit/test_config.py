from pathlib import Path

import pytest

from icpkit.config import Config, LabelRule, config_from_dict, load_config
from icpkit.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_default_config_loads_and_resolves_source_relative_to_file():
    cfg = load_config(ROOT / "pipelines" / "configs" / "default.yaml")
    assert isinstance(cfg, Config)
    assert Path(cfg.data.source) == (ROOT / "data" / "synthetic").resolve()
    assert cfg.training.outcomes == ["conversion", "win", "expansion", "renewal"]
    assert cfg.attributes.dimension_of("industry") == "firmographic"
    assert cfg.attributes.dimension_of("unknown_column") == "other"


def test_config_unknown_key_is_an_error_naming_the_key(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("data: {source: x}\ntraining: {tunning: {n_trials: 3}}\n")
    with pytest.raises(ConfigError, match=r"training\.tunning: unknown key"):
        load_config(p)


def test_config_wrong_type_is_an_error_naming_the_key(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("data: {source: x}\ntraining: {min_rows: lots}\n")
    with pytest.raises(ConfigError, match=r"training\.min_rows"):
        load_config(p)


def test_config_overrides_use_dotted_keys(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("data: {source: sqlite:///crm.db}\n")
    cfg = load_config(p, {"training.tuning.n_trials": 3, "seed": 5})
    assert cfg.training.tuning.n_trials == 3 and cfg.seed == 5
    assert cfg.data.source == "sqlite:///crm.db"  # SQL URLs are not resolved as paths


def test_config_all_tables_present_even_when_some_are_mapped():
    cfg = config_from_dict({"data": {"source": "/x", "tables": {"leads": {"rename": {"a": "lead_id"}}}}})
    assert set(cfg.data.tables) == {
        *("accounts", "leads", "opportunities", "subscriptions", "activities", "account_history")
    }
    assert cfg.data.tables["leads"].rename == {"a": "lead_id"}


def test_label_rule_rejects_value_in_two_sets():
    with pytest.raises(ValueError, match="both positive and negative"):
        LabelRule(column="stage", positive=["Won"], negative=["Won", "Lost"])


def test_attribute_tagged_twice_is_an_error():
    with pytest.raises(ConfigError, match="tagged both"):
        config_from_dict(
            {"data": {"source": "/x"}, "attributes": {"dimensions": {"firmographic": ["a"], "growth": ["a"]}}}
        )


def test_missing_config_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("cutoffs", "message"),
    [
        ("{Perfect: 60, Strong: 80, Moderate: 40}", r"icp\.tiers\.cutoffs.*'Strong' \(80\.0\) is not below 'Perfect'"),
        ("{Perfect: 120, Strong: 60, Moderate: 40}", r"icp\.tiers\.cutoffs.*within 0-100"),
    ],
)
def test_tier_cutoffs_are_checked_when_the_config_loads(tmp_path, cutoffs, message):
    p = tmp_path / "c.yaml"
    p.write_text(f"data: {{source: x}}\nicp: {{tiers: {{cutoffs: {cutoffs}}}}}\n")
    with pytest.raises(ConfigError, match=message):
        load_config(p)


def test_set_pairs_are_parsed_as_yaml_values_and_reach_the_config(tmp_path):
    from pipelines._cli import parse_overrides

    pairs = parse_overrides(["training.tuning.n_trials=5", "icp.high_fit = 70.5", "training.outcomes=[win]"])
    assert pairs == {"training.tuning.n_trials": 5, "icp.high_fit": 70.5, "training.outcomes": ["win"]}
    p = tmp_path / "c.yaml"
    p.write_text("data: {source: x}\n")
    cfg = load_config(p, pairs)
    assert (cfg.training.tuning.n_trials, cfg.icp.high_fit, cfg.training.outcomes) == (5, 70.5, ["win"])


def test_set_without_equals_sign_is_a_clear_error():
    from pipelines._cli import parse_overrides

    with pytest.raises(ConfigError, match="--set expects KEY=VALUE, got 'training.seed'"):
        parse_overrides(["training.seed"])
