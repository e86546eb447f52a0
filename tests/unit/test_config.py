from pathlib import Path

import pytest
import yaml

from driftloop.config import load_config
from driftloop.errors import ConfigError
from tests.conftest import ROOT, SHIPPED_CONFIG


def test_shipped_config_loads_and_resolves_paths_against_its_folder():
    cfg = load_config(SHIPPED_CONFIG)
    assert cfg.data.incoming == ROOT / "data" / "incoming"
    assert cfg.validation.suite == ROOT / "expectations" / "churn_batch.json"
    assert cfg.registry.tracking_uri == f"sqlite:///{ROOT / 'mlruns' / 'mlflow.db'}"
    assert len(cfg.columns.features) == 15


def test_a_typo_in_a_key_is_one_line_naming_the_key(tmp_path: Path):
    raw = yaml.safe_load(SHIPPED_CONFIG.read_text())
    raw["drift"]["alpah"] = 0.05
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert "drift.alpah" in message and "Extra inputs are not permitted" in message
    assert "\n" not in message


def test_an_out_of_range_threshold_is_refused(tmp_path: Path):
    raw = yaml.safe_load(SHIPPED_CONFIG.read_text())
    raw["drift"]["alpha"] = 1.5
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="drift.alpha"):
        load_config(path)


def test_a_missing_config_file_says_how_to_fix_it(tmp_path: Path):
    with pytest.raises(ConfigError, match="not found: pass --config"):
        load_config(tmp_path / "nope.yaml")


def test_segments_must_be_categorical_features(tmp_path: Path):
    raw = yaml.safe_load(SHIPPED_CONFIG.read_text())
    raw["columns"]["segments"] = ["age"]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="segments must be categorical"):
        load_config(path)


def test_tracking_uri_from_the_environment_wins(monkeypatch):
    monkeypatch.setenv("DRIFTLOOP_TRACKING_URI", "http://127.0.0.1:5999")
    assert load_config(SHIPPED_CONFIG).registry.tracking_uri == "http://127.0.0.1:5999"


def _with(tmp_path: Path, section: str, values: dict) -> Path:
    raw = yaml.safe_load(SHIPPED_CONFIG.read_text())
    raw[section].update(values)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_a_setting_renamed_to_what_it_counts_names_its_new_name(tmp_path: Path):
    with pytest.raises(ConfigError, match="policy: cooldown_days is now cooldown_batches: it counts batches"):
        load_config(_with(tmp_path, "policy", {"cooldown_days": 3}))


def test_the_cadence_sets_how_many_days_a_batch_covers(tmp_path: Path):
    from datetime import date

    cfg = load_config(_with(tmp_path, "data", {"cadence": "14d"}))
    assert cfg.data.period_days == 14 and cfg.data.batches_between(date(2026, 1, 1), date(2026, 2, 12)) == 3
    assert load_config(_with(tmp_path, "data", {"cadence": "weekly"})).data.period_days == 7
    with pytest.raises(ConfigError, match="cadence 'fortnightly' is not daily, weekly or a number of days like 14d"):
        load_config(_with(tmp_path, "data", {"cadence": "fortnightly"}))


def test_a_segment_tolerance_belongs_to_its_metric(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"max_segment_loss is now set per metric, in its own units: gate.rules.<metric>.max_segment_loss"):
        load_config(_with(tmp_path, "gate", {"max_segment_loss": 0.05}))
    cfg = load_config(SHIPPED_CONFIG)
    assert cfg.gate.rules["roc_auc"].max_segment_loss == 0.05
