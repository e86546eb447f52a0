"""The MLflow adapter against a real MLflow store under tmp_path (no mocks)."""

from __future__ import annotations

import socket

import pytest

from driftloop import cli, data, training
from driftloop.errors import RegistryError, RegistryUnavailable
from driftloop.registry import CHALLENGER, CHAMPION, Registry


@pytest.fixture(scope="module")
def candidate(tmp_path_factory):
    from tests.conftest import write_project
    from driftloop.config import load_config
    from driftloop.demo import generate

    cfg = load_config(write_project(tmp_path_factory.mktemp("fit")))
    generate(cfg.demo, cfg.data)
    train, holdout = training.split_by_time(data.read_reference(cfg.data, cfg.columns), cfg.columns, 0.2)
    return training.train_candidate(train, holdout, cfg.columns.timestamp_column, cfg.columns, cfg.training, cfg.drift, 0.5)


def _register(registry: Registry, candidate, alias: str, **tags) -> str:
    ref = registry.register(
        model=candidate.model, input_example=candidate.input_example, profile=candidate.profile,
        params={"p": 1}, metrics={f"holdout_{k}": v for k, v in candidate.holdout_metrics.items()},
        artifacts={}, run_name="test", tags={"trigger": "test", **tags}, description="test version", alias=alias,
    )
    return ref.version


def test_loading_from_an_empty_store_says_to_bootstrap(cfg):
    with pytest.raises(RegistryError, match="no 'champion' alias .* run the bootstrap flow first"):
        Registry(cfg.registry).load(CHAMPION)


def test_a_registered_champion_loads_with_its_profile_and_holdout_metrics(cfg, candidate):
    registry = Registry(cfg.registry)
    version = _register(registry, candidate, CHAMPION)
    loaded = registry.load(CHAMPION)
    assert loaded.ref.version == version
    assert loaded.reference_metrics["roc_auc"] == pytest.approx(candidate.holdout_metrics["roc_auc"])
    assert set(loaded.profile.numeric) == set(cfg.columns.numeric) | {training.PROBABILITY}
    assert loaded.ref.tags["driftloop.holdout_roc_auc"] == f"{candidate.holdout_metrics['roc_auc']:.4f}"


def test_reject_tags_the_version_drops_the_alias_and_blocks_promotion(cfg, candidate, capsys):
    registry = Registry(cfg.registry)
    _register(registry, candidate, CHAMPION)
    challenger = _register(registry, candidate, CHALLENGER)
    assert cli.main(["--config", str(cfg_path(cfg)), "reject", challenger, "--reason", "worse on south", "--reviewer", "bob"]) == 0
    assert registry.by_alias(CHALLENGER) is None
    assert registry.version(challenger).tags["driftloop.rejection_reason"] == "worse on south"
    assert cli.main(["--config", str(cfg_path(cfg)), "promote", challenger, "--reviewer", "bob"]) == 2
    assert "was rejected" in capsys.readouterr().err
    assert registry.by_alias(CHAMPION).version == "1"


def test_promoting_the_champion_or_an_unknown_version_is_a_one_line_error(cfg, candidate, capsys):
    registry = Registry(cfg.registry)
    _register(registry, candidate, CHAMPION)
    with pytest.raises(RegistryError, match="already the champion"):
        registry.promote("1", "alice")
    capsys.readouterr()
    assert cli.main(["--config", str(cfg_path(cfg)), "promote", "99"]) == 2
    err = capsys.readouterr().err
    assert err == "driftloop: error: churn-classifier has no version 99; `driftloop status` lists the versions\n"


def test_status_lists_versions_with_aliases(cfg, candidate, capsys):
    registry = Registry(cfg.registry)
    _register(registry, candidate, CHAMPION)
    _register(registry, candidate, CHALLENGER)
    assert cli.main(["--config", str(cfg_path(cfg)), "status"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "champion" in lines[1] and "challenger" in lines[2]


def test_an_unreachable_tracking_server_is_reported_as_such(cfg, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    down = cfg.registry.model_copy(update={"tracking_uri": f"http://127.0.0.1:{port}"})
    with pytest.raises(RegistryUnavailable, match="unreachable; start it"):
        Registry(down).by_alias(CHAMPION)


def cfg_path(cfg) -> str:
    # The config fixture's file sits next to the data folders it names.
    return cfg.data.incoming.parent.parent / "driftloop.yaml"
