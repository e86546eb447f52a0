"""Faults: a worker killed mid-batch, MLflow down. The ledger makes the rerun finish each batch once."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from prefect.settings import PREFECT_API_URL

from driftloop import data
from driftloop.config import load_config
from driftloop.demo import generate
from driftloop.ledger import Ledger
from driftloop_flows.bootstrap import bootstrap
from driftloop_flows.monitor import monitor
from tests.conftest import ROOT, write_project


@pytest.fixture
def project(tmp_path):
    path = write_project(tmp_path)
    cfg = load_config(path)
    days = generate(cfg.demo, cfg.data).days
    assert bootstrap(config_path=str(path), return_state=True).is_completed()
    return path, cfg, days[0].batch_id


def test_a_monitor_run_killed_mid_batch_is_finished_exactly_once_by_the_rerun(project):
    path, cfg, batch = project
    ledger = Ledger(cfg.ledger)
    worker = subprocess.Popen(
        [sys.executable, "-c", f"from driftloop_flows.monitor import monitor; monitor(batch_id={batch!r}, config_path={str(path)!r})"],
        cwd=ROOT, env=os.environ | {"PREFECT_API_URL": PREFECT_API_URL.value()}, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while ledger.state(batch) not in ("validated", "scored"):
        assert worker.poll() is None, "the worker ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.killpg(worker.pid, signal.SIGKILL)  # the worker dies mid-batch
    worker.wait()
    assert ledger.state(batch) in ("validated", "scored") and batch in ledger.unfinished()

    assert monitor(batch_id=batch, config_path=str(path), return_state=True).is_completed()
    assert monitor(batch_id=batch, config_path=str(path), return_state=True).result() is None  # and never again
    states = [t.state for t in ledger.history(batch)]
    assert states.count("evaluated") == 1 and states[-1] == "evaluated"
    logged = data.read_predictions(cfg.data, [batch])
    assert len(logged) == cfg.demo.rows_per_batch and not logged[cfg.columns.id_column].duplicated().any()


def test_mlflow_down_fails_the_run_clearly_and_leaves_the_batch_pending(tmp_path, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = write_project(tmp_path, registry={"tracking_uri": f"http://127.0.0.1:{port}"})
    cfg = load_config(path)
    batch = generate(cfg.demo, cfg.data).days[0].batch_id
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "3")
    state = monitor(batch_id=batch, config_path=str(path), return_state=True)
    assert state.is_failed() and not state.is_crashed()
    assert f"MLflow at http://127.0.0.1:{port} is unreachable; start it (make up)" in state.message
    assert data.batch_path(cfg.data, batch).exists()  # nothing moved, nothing lost
    assert Ledger(cfg.ledger).unfinished() == [batch]  # the next run takes it again


def test_a_run_without_a_batch_id_takes_every_batch_not_done_oldest_first(project):
    path, cfg, first = project
    days = sorted(p.stem for p in cfg.data.incoming.glob("*.parquet"))  # the third is the quality incident
    ledger = Ledger(cfg.ledger)
    ledger.record(days[0], "received")
    ledger.record(days[0], "validated")  # an earlier run died after validating; the others were never taken
    state = monitor(config_path=str(path), return_state=True)  # what the scheduled deployment runs
    assert state.is_completed()
    assert [row["batch"] for row in state.result()] == days
    assert [ledger.state(d) for d in days[:4]] == ["evaluated", "evaluated", "quarantined", "evaluated"]
    finished = [t.batch_id for t in ledger.history() if t.state in ("evaluated", "quarantined")]
    assert finished == days  # oldest first, each once; a quarantined one does not stop the rest
    again = monitor(config_path=str(path), return_state=True)
    assert again.is_completed() and again.result() == []  # nothing new: an ok run, not a failure
