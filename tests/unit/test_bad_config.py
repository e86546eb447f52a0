"""Configuration and suites are checked as strictly as data: one line naming the setting, exit 2,
no batch judged by a suite that cannot judge it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from driftloop import cli, data, validation
from driftloop.config import load_config
from driftloop.errors import ConfigError
from tests.conftest import SHIPPED_CONFIG


def _shipped() -> str:
    return SHIPPED_CONFIG.read_text()


def _with(**changes) -> str:
    raw = yaml.safe_load(_shipped())
    for dotted, value in changes.items():
        *parents, key = dotted.split("__")
        node = raw
        for parent in parents:
            node = node.setdefault(parent, {})
        node[key] = value
    return yaml.safe_dump(raw, sort_keys=False)


TEXT_CASES = {
    "empty section": (lambda: _shipped() + "\nexecution:\n", "section execution is empty; give it settings or remove it"),
    "list for a section": (lambda: _shipped().replace("ledger:\n  url: sqlite:///data/ledger.db", "ledger:\n  - sqlite:///data/ledger.db"),
                           "section ledger must be a mapping of settings (key: value), not a list"),
    "duplicated key": (lambda: _shipped().replace("ledger:\n", "ledger:\n  url: sqlite:///other.db\n", 1),
                       "key 'url' is given twice (lines"),
    "negative max_distance": (lambda: _with(drift__max_distance={"wasserstein": -0.1}),
                              "max_distance.wasserstein is -0.1, but a wasserstein distance is 0 or more"),
    "share above one": (lambda: _with(drift__max_distance={"linf": 1.5}), "max_distance.linf is 1.5, but a linf distance is from 0 to 1"),
    "column distance above one": (lambda: _with(drift__columns={"region": {"max_distance": 2.0}}),
                                  "drift.columns.region.max_distance is 2.0, but a linf distance is from 0 to 1"),
    "AUC floor of 1.5": (lambda: _with(evaluation__thresholds={"roc_auc": {"floor": 1.5}}),
                         "evaluation.thresholds.roc_auc.floor is 1.5, but roc_auc is from 0 to 1"),
    "gate minimum of 2": (lambda: _with(gate__rules={"roc_auc": {"min_value": 2}}),
                          "gate.rules.roc_auc.min_value is 2, but roc_auc is from 0 to 1"),
    "drop larger than the scale": (lambda: _with(evaluation__thresholds={"accuracy": {"max_drop": 3}}),
                                   "evaluation.thresholds.accuracy.max_drop is 3, but accuracy cannot change by more than 1"),
    # A quarantined file inside data.incoming would be taken as a batch by the next run.
    "quarantine inside incoming": (lambda: _with(data__quarantine="data/incoming/held"), "data.quarantine ("),
    "labels where the batches are": (lambda: _with(data__labels="data/incoming"), "is the same folder as data.incoming"),
    "reference inside incoming": (lambda: _with(data__reference="data/incoming/reference.parquet"),
                                  "incoming/reference.parquet) is inside data.incoming; keep it apart"),
    # The prediction log writes a column of that name: the user's would be overwritten silently.
    "passthrough named prediction": (lambda: _with(columns__passthrough=["prediction"]),
                                     "column 'prediction' has a name driftloop writes into the prediction log"),
    "feature named like a probability": (lambda: _with(columns__numeric=["probability.yes", "age"]),
                                         "column 'probability.yes' has a name driftloop writes"),
}


@pytest.mark.parametrize("case", list(TEXT_CASES))
def test_a_malformed_config_is_one_line_saying_what_is_wrong(tmp_path, capsys, case):
    write, message = TEXT_CASES[case]
    path = tmp_path / "driftloop.yaml"
    path.write_text(write())
    assert cli.main(["--config", str(path), "status"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"config file {path} is invalid: " in err and message in err, err


def test_a_config_that_is_not_utf8_is_one_line(tmp_path):
    path = tmp_path / "driftloop.yaml"
    path.write_bytes(_shipped().replace("churn-classifier", "churn-classifier-é").encode("latin-1"))
    with pytest.raises(ConfigError, match=r"is invalid: not UTF-8 text \(invalid continuation byte at byte \d+\); save it as UTF-8"):
        load_config(path)


def test_a_folder_where_the_config_belongs_is_named_as_a_folder(tmp_path):
    with pytest.raises(ConfigError, match=f"config file {tmp_path} is a folder; pass the YAML file in it"):
        load_config(tmp_path)


def test_a_yaml_anchor_merged_twice_is_not_a_duplicated_key(tmp_path):
    path = tmp_path / "driftloop.yaml"
    path.write_text(_shipped().replace("evaluation:\n", "x-defaults: &defaults {}\nevaluation:\n  <<: *defaults\n", 1))
    with pytest.raises(ConfigError, match="x-defaults"):  # refused as an unknown section, not as a duplicate
        load_config(path)


def _suite_with(cfg, tmp_path, expectation: dict):
    suite = json.loads(cfg.validation.suite.read_text())
    suite["expectations"].append(expectation)
    path = tmp_path / "suite.json"
    path.write_text(json.dumps(suite))
    return cfg.model_copy(update={"validation": cfg.validation.model_copy(update={"suite": path})})


SUITE_CASES = {
    "unknown expectation type": ({"type": "expect_column_values_to_be_positive", "kwargs": {"column": "age"}},
                                 "GX has no expectation type 'expect_column_values_to_be_positive'"),
    "unknown column": ({"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "incme"}},
                       "column 'incme' is not a column of the batches"),
    "unknown column in a set": ({"type": "expect_table_columns_to_match_set", "kwargs": {"column_set": ["age", "agee"]}},
                                "column 'agee' is not a column of the batches"),
}


@pytest.mark.parametrize("case", list(SUITE_CASES))
def test_a_suite_that_cannot_judge_a_batch_is_a_suite_error_caught_at_load(demo_project, tmp_path, case):
    cfg, generated = demo_project
    expectation, message = SUITE_CASES[case]
    cfg = _suite_with(cfg, tmp_path, expectation)
    with pytest.raises(ConfigError) as raised:
        validation.check_suite(cfg.validation, cfg.columns)
    assert message in str(raised.value) and str(cfg.validation.suite) in str(raised.value) and "\n" not in str(raised.value)


def test_validate_refuses_an_unknown_expectation_instead_of_dropping_it(demo_project, tmp_path):
    cfg, generated = demo_project
    cfg = _suite_with(cfg, tmp_path, SUITE_CASES["unknown expectation type"][0])
    batch = data.read_batch(cfg.data, generated.days[0].batch_id)
    with pytest.raises(ConfigError, match="GX has no expectation type"):
        validation.validate(batch, cfg.validation, generated.days[0].batch_id)


def test_driftloop_validate_with_a_broken_suite_exits_2_and_quarantines_nothing(demo_project, tmp_path, capsys):
    cfg, generated = demo_project
    config_path = Path(cfg.data.incoming).parent.parent / "driftloop.yaml"
    raw = yaml.safe_load(config_path.read_text())
    broken = _suite_with(cfg, tmp_path, SUITE_CASES["unknown column"][0]).validation.suite
    raw["validation"]["suite"] = str(broken)
    bad_config = tmp_path / "driftloop.yaml"
    bad_config.write_text(yaml.safe_dump(raw))
    batch = data.batch_path(cfg.data, generated.days[0].batch_id)
    before = batch.read_bytes()
    assert cli.main(["--config", str(bad_config), "validate", str(batch)]) == 2
    err = capsys.readouterr().err
    assert "column 'incme' is not a column of the batches" in err and err.count("\n") == 1
    assert batch.read_bytes() == before
    assert not cfg.data.quarantine.exists() or not any(cfg.data.quarantine.iterdir())
