"""The first run a new user makes: bootstrap on their reference, failing in one line when it cannot."""

from __future__ import annotations

import time

from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from prefect.settings import get_current_settings

import shutil

import pandas as pd

from driftloop.config import load_config
from driftloop.demo import generate
from driftloop_flows.bootstrap import bootstrap
from driftloop_flows.common import training_key
from tests.conftest import ROOT, write_project


def _logs(flow_run_id, expect: str, timeout: float = 20.0) -> list[str]:
    """The run's log lines as the API stored them (they arrive in batches, so wait for ``expect``)."""
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            lines = [log.message for log in client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))]
            if any(expect in line for line in lines) or time.monotonic() > deadline:
                return lines


def test_a_run_against_a_throwaway_api_has_no_heartbeat_to_wait_for():
    @flow
    def heartbeat_frequency():
        return get_current_settings().flows.heartbeat_frequency  # what Prefect's flow engine reads

    assert "heartbeat_frequency" in type(get_current_settings().flows).model_fields
    assert heartbeat_frequency() is None  # the fixture's API runs flows as the CLI's own does (heartbeats_off)


def test_a_copied_project_keeps_its_training_cache_key_unless_it_brings_its_own_estimator(tmp_path):
    rows = pd.DataFrame({"tenure": [1.0, 2.0]})
    copies = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        copies.append(load_config(write_project(tmp_path / name)))
    assert len({training_key("bootstrap", cfg, rows) for cfg in copies}) == 1  # same rows, same settings: same model
    own = []
    for name in ("own-a", "own-b"):  # the example's own pipeline, its module beside each copy
        shutil.copytree(ROOT / "examples" / "loans", tmp_path / name, ignore=shutil.ignore_patterns("data", "mlruns"))
        own.append(load_config(tmp_path / name / "driftloop.yaml"))
    assert own[0].training.estimator and len({training_key("bootstrap", cfg, rows) for cfg in own}) == 2


def test_a_bootstrap_without_a_reference_file_says_where_it_looked_and_how_to_get_one(tmp_path):
    state = bootstrap(config_path=str(write_project(tmp_path)), return_state=True)  # no data written
    assert state.is_failed() and "\n" not in state.message
    assert state.message.endswith("reference.parquet: file not found; the first champion trains on the reference period: "
                                  "put it there (data.reference), or run `driftloop demo-data` to write the demo's")


def test_a_user_error_inside_a_task_is_logged_in_one_line_without_a_traceback(tmp_path):
    path = write_project(tmp_path, training={"min_train_rows": 100_000})
    generate(load_config(path).demo, load_config(path).data)
    state = bootstrap(config_path=str(path), return_state=True)
    assert state.is_failed() and "need training.min_train_rows=100000" in state.message
    logs = _logs(state.state_details.flow_run_id, "Task run failed")
    failed = [line for line in logs if "Task run failed" in line]
    assert failed and "DataError" in failed[0]
    assert not any("Traceback" in line for line in logs)


def test_a_second_bootstrap_leaves_the_champion_unless_told_to_replace_it_and_the_audit_says_so(tmp_path):
    from driftloop.registry import CHAMPION, Registry

    path = write_project(tmp_path)
    cfg = load_config(path)
    generate(cfg.demo, cfg.data)
    assert bootstrap(config_path=str(path), return_state=True).is_completed()
    again = bootstrap(config_path=str(path), return_state=True)
    assert again.is_failed() and "\n" not in again.message
    assert "already has a champion (v1); a bootstrap would replace it with no review: run it with --replace-champion" in again.message
    registry = Registry(cfg.registry)
    assert [v.version for v in registry.versions()] == ["1"]  # nothing registered by the refused run

    assert bootstrap(config_path=str(path), replace_champion=True, return_state=True).is_completed()
    assert registry.by_alias(CHAMPION).version == "2"
    moved = [e for e in registry.history() if e.alias == CHAMPION][-1]
    assert (moved.from_version, moved.to_version) == ("1", "2") and "replacing champion v1 (--replace-champion)" in moved.why
