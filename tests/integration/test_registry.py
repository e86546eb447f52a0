"""The MLflow adapter against a real MLflow store under tmp_path (no mocks)."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import mlflow
import pytest

from driftloop import cli, training
from driftloop.errors import RegistryError, RegistryUnavailable
from driftloop.registry import CHALLENGER, CHAMPION, Registry
from tests.conftest import register


def _cli(config_path, *args) -> int:
    return cli.main(["--config", str(config_path), *args])


@pytest.fixture
def registry(cfg) -> Registry:
    return Registry(cfg.registry)


def test_loading_from_an_empty_store_says_to_bootstrap(registry):
    with pytest.raises(RegistryError, match="no 'champion' alias .* run the bootstrap flow first"):
        registry.load(CHAMPION)


def test_a_registered_champion_loads_with_its_profile_and_holdout_metrics(cfg, registry, candidate):
    version = register(registry, candidate, CHAMPION)
    loaded = registry.load(CHAMPION)
    assert loaded.ref.version == version
    assert loaded.reference_metrics["roc_auc"] == pytest.approx(candidate.holdout_metrics["roc_auc"])
    assert set(loaded.profile.numeric) == set(cfg.columns.numeric) | {training.PROBABILITY}
    assert loaded.ref.tags["driftloop.holdout_roc_auc"] == f"{candidate.holdout_metrics['roc_auc']:.4f}"
    assert loaded.ref.tags["driftloop.registration"] == "complete"


def test_reject_tags_the_version_drops_the_alias_and_blocks_promotion(config_path, registry, candidate, capsys):
    register(registry, candidate, CHAMPION)
    challenger = register(registry, candidate, CHALLENGER)
    assert _cli(config_path, "reject", challenger, "--reason", "worse on south", "--reviewer", "bob") == 0
    assert registry.by_alias(CHALLENGER) is None
    assert registry.version(challenger).tags["driftloop.rejection_reason"] == "worse on south"
    assert _cli(config_path, "promote", challenger, "--reviewer", "bob") == 2
    assert "was rejected" in capsys.readouterr().err
    assert registry.by_alias(CHAMPION).version == "1"


def test_a_version_that_failed_the_gate_needs_an_override_with_a_reason(config_path, registry, candidate, capsys):
    register(registry, candidate, CHAMPION)
    failed = register(registry, candidate, CHALLENGER, gate_verdict="failed", gate_failed="roc_auc on region=south")
    capsys.readouterr()
    assert _cli(config_path, "promote", failed, "--reviewer", "carol") == 2
    assert "failed the promotion gate (roc_auc on region=south)" in capsys.readouterr().err
    assert _cli(config_path, "promote", failed, "--reviewer", "carol", "--override") == 2
    assert "--override needs a written --reason" in capsys.readouterr().err
    assert registry.by_alias(CHAMPION).version == "1"

    assert _cli(config_path, "promote", failed, "--reviewer", "carol", "--override", "--reason", "south is 2% of revenue") == 0
    tags = registry.version(failed).tags
    assert registry.by_alias(CHAMPION).version == failed
    assert tags["driftloop.override_reason"] == "south is 2% of revenue"
    assert tags["driftloop.overridden"].startswith(f"v{failed} failed the promotion gate")
    assert "reason: south is 2% of revenue" in registry.history()[-1].why


def test_an_older_version_cannot_take_the_champion_back_without_an_override(config_path, registry, candidate, capsys):
    # v6 waited for review while v8 was trained on later data and approved: approving v6 now would roll back
    register(registry, candidate, CHAMPION, data_window="2026-01-01..2026-01-10")
    older = register(registry, candidate, CHALLENGER, data_window="2026-02-08..2026-02-12", gate_verdict="passed")
    newer = register(registry, candidate, CHALLENGER, data_window="2026-02-11..2026-02-15", gate_verdict="passed")
    assert _cli(config_path, "promote", newer, "--reviewer", "erin") == 0
    capsys.readouterr()
    assert _cli(config_path, "promote", older, "--reviewer", "erin") == 2
    error = capsys.readouterr().err
    assert f"v{older} is not the challenger awaiting review (no version is)" in error
    assert f"v{older} was trained on data up to 2026-02-12, not newer than champion v{newer}'s (up to 2026-02-15)" in error
    assert "--override with a written --reason" in error and "\n" not in error.rstrip("\n")
    assert registry.by_alias(CHAMPION).version == newer


def test_a_version_registered_without_an_alias_is_listed_and_audited_but_not_offered(config_path, registry, candidate, capsys):
    register(registry, candidate, CHAMPION)
    ref = registry.register(
        model=candidate.model, input_example=candidate.input_example, profile=candidate.profile, params={}, metrics={},
        artifacts={}, run_name="retrain", tags={"gate_verdict": "failed", "offered": "no",
                                                "offer": "failed the promotion gate (roc_auc improvement): registered, not offered"},
        description="", alias=None, why="gate failed",
    )
    assert ref.aliases == () and registry.by_alias(CHALLENGER) is None
    assert registry.history()[-1].alias == "-" and registry.history()[-1].to_version is None
    capsys.readouterr()
    assert _cli(config_path, "status") == 0
    assert "not offered: failed the promotion gate (roc_auc improvement)" in capsys.readouterr().out
    assert registry.unaudited_aliases() == ()


def test_an_alias_moved_in_the_mlflow_ui_is_flagged_by_status_and_history(config_path, registry, candidate, capsys):
    register(registry, candidate, CHAMPION)
    other = register(registry, candidate, CHALLENGER)
    registry.client.set_registered_model_alias(registry.name, CHAMPION, other)  # what MLflow's alias editor does
    capsys.readouterr()
    for command in ("status", "history"):
        assert _cli(config_path, command) == 0
        warning = capsys.readouterr().err
        assert f"alias champion points to v{other} but driftloop's audit trail says v1" in warning
    assert [(m.alias, m.expected, m.actual) for m in registry.unaudited_aliases()] == [(CHAMPION, "1", other)]


def test_promote_then_rollback_move_aliases_and_write_the_audit_trail(config_path, registry, candidate, capsys):
    register(registry, candidate, CHAMPION)
    challenger = register(registry, candidate, CHALLENGER)
    assert _cli(config_path, "promote", challenger, "--reviewer", "alice", "--comment", "better on holdout") == 0
    assert (registry.by_alias(CHAMPION).version, registry.by_alias(CHALLENGER)) == (challenger, None)

    assert _cli(config_path, "rollback", "--reviewer", "dave", "--reason", "complaints from support") == 0
    assert registry.by_alias(CHAMPION).version == "1"
    assert registry.version(challenger).tags["driftloop.rolled_back_by"] == "dave"
    assert _cli(config_path, "rollback", "--reason", "again") == 2  # v1 replaced nothing

    moves = [(e.action, e.alias, e.from_version, e.to_version, e.who) for e in registry.history()]
    assert moves == [
        ("register", CHAMPION, None, "1", "test"),
        ("register", CHALLENGER, None, challenger, "test"),
        ("promote", CHAMPION, "1", challenger, "alice"),
        ("rollback", CHAMPION, challenger, "1", "dave"),
    ]
    capsys.readouterr()
    assert _cli(config_path, "history") == 0
    printed = capsys.readouterr().out
    assert "complaints from support" in printed and "better on holdout" in printed


def test_promoting_the_champion_or_an_unknown_version_is_a_one_line_error(config_path, registry, candidate, capsys):
    register(registry, candidate, CHAMPION)
    with pytest.raises(RegistryError, match="already the champion"):
        registry.promote("1", "alice")
    capsys.readouterr()
    assert _cli(config_path, "promote", "99") == 2
    assert capsys.readouterr().err == "driftloop: error: churn-classifier has no version 99; `driftloop status` lists the versions\n"


def test_a_crash_while_logging_leaves_a_failed_run_and_no_version(registry, candidate, monkeypatch):
    register(registry, candidate, CHAMPION)

    def crash(*args, **kwargs):
        raise RuntimeError("worker killed while uploading the model")

    monkeypatch.setattr(mlflow.sklearn, "log_model", crash)  # fault injection: the upload dies
    with pytest.raises(RuntimeError):
        register(registry, candidate, CHALLENGER, trigger_id="monitor:x@2026-02-10")
    assert [v.version for v in registry.versions()] == ["1"]
    assert registry.find_by_tag("trigger_id", "monitor:x@2026-02-10") is None
    runs = mlflow.search_runs(experiment_names=[registry.cfg.experiment], filter_string="attributes.status = 'FAILED'")
    assert len(runs) == 1


def test_status_lists_versions_with_aliases_and_gate(config_path, registry, candidate, capsys):
    register(registry, candidate, CHAMPION)
    register(registry, candidate, CHALLENGER, gate_verdict="passed")
    capsys.readouterr()
    assert _cli(config_path, "status") == 0
    lines = capsys.readouterr().out.splitlines()
    assert "champion" in lines[1] and "challenger" in lines[2] and "passed" in lines[2]


def test_an_unreachable_tracking_server_is_reported_as_such(cfg, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    down = cfg.registry.model_copy(update={"tracking_uri": f"http://127.0.0.1:{port}"})
    with pytest.raises(RegistryUnavailable, match="unreachable; start it"):
        Registry(down).by_alias(CHAMPION)


def test_a_local_store_that_cannot_be_written_says_so_and_is_not_called_unreachable(cfg, candidate, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the artifact folder should be")
    broken = cfg.registry.model_copy(update={"artifact_root": blocker / "artifacts", "experiment": "unwritable"})
    with pytest.raises(RegistryError) as caught:
        register(Registry(broken), candidate, CHAMPION)
    message = str(caught.value)
    assert not isinstance(caught.value, RegistryUnavailable) and "unreachable" not in message
    assert "local MLflow store failed" in message and str(blocker / "artifacts") in message and "\n" not in message


def test_a_teams_own_pipeline_is_registered_and_loads_back_with_the_trust_it_needs(cfg, registry, candidate, tmp_path):
    import pandas as pd
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    from tests.unit.test_training import USER_MODULE

    (tmp_path / "teamregistry.py").write_text(USER_MODULE)
    own = training.TrainingConfig(min_train_rows=10, estimator="teamregistry:make_pipeline", estimator_path=tmp_path)
    frame = candidate.input_example.assign(churned=[0, 1, 0, 1, 1])
    model = training.fit(pd.concat([frame] * 10, ignore_index=True), cfg.columns, own)
    version = registry.register(model=model, input_example=candidate.input_example, profile=candidate.profile, params={},
                                metrics={}, artifacts={}, run_name="own", tags={}, description="", alias=CHAMPION, why="test").version
    loaded = registry.load(CHAMPION)
    assert loaded.ref.version == version
    assert type(loaded.model.steps[-1][1]).__name__ == "LogisticRegression"
    assert loaded.model.predict_proba(candidate.input_example).shape == (5, 2)

    def script_only(x):
        return x

    local = make_pipeline(FunctionTransformer(script_only)).fit(candidate.input_example)
    with pytest.raises(RegistryError, match="script_only, which could not be imported where the model is loaded"):
        registry.register(model=local, input_example=candidate.input_example, profile=candidate.profile, params={},
                          metrics={}, artifacts={}, run_name="local", tags={}, description="", alias=CHALLENGER, why="test")
    assert [v.version for v in registry.versions()] == [version]  # nothing logged for it


def test_a_damaged_mlflow_store_is_one_line_naming_it_and_the_fix(config_path, cfg, capsys):
    store = cfg.registry.tracking_uri.removeprefix("sqlite:///")
    Path(store).parent.mkdir(parents=True, exist_ok=True)
    Path(store).write_bytes(b"this is not a database" * 100)
    before = Path(store).read_bytes()
    assert _cli(config_path, "status") == 2
    err = capsys.readouterr().err
    assert f"the MLflow store {cfg.registry.tracking_uri} cannot be read" in err and "restore it from a backup" in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert Path(store).read_bytes() == before  # not "repaired" into an empty store


def test_a_version_whose_files_were_deleted_names_the_version_and_what_is_missing(cfg, registry, candidate):
    version = register(registry, candidate, CHAMPION)
    shutil.rmtree(Path(registry.client.get_model_version_download_uri(registry.name, version).removeprefix("file://")))
    with pytest.raises(RegistryError) as raised:
        registry.load(CHAMPION)
    message = str(raised.value)
    assert f"{registry.name} v{version} (champion) is registered but its files are missing from" in message
    assert "No such artifact: ''" not in message and "\n" not in message


def test_a_long_lived_process_loads_each_version_once_and_follows_the_alias_when_it_moves(config_path, registry, candidate):
    first = register(registry, candidate, CHAMPION)
    loaded = registry.load(CHAMPION)
    assert registry.load(CHAMPION).model is loaded.model  # the same version: not read from the store again
    second = register(registry, candidate, CHALLENGER)
    assert cli.main(["--config", str(config_path), "promote", second, "--reviewer", "dana"]) == 0
    moved = registry.load(CHAMPION)
    assert (moved.ref.version, loaded.ref.version) == (second, first) and moved.model is not loaded.model
    assert CHAMPION in moved.ref.aliases  # the reference is read afresh: aliases and tags as they are now
