"""Faults: a worker killed or stopped mid-batch, two workers given one batch, MLflow down, a broken suite.
The ledger makes each batch finish exactly once."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prefect.settings import PREFECT_API_URL

from driftloop import data
from driftloop.config import load_config
from driftloop.demo import generate
from driftloop.errors import LedgerDamaged
from driftloop.ledger import Ledger
from driftloop_flows.bootstrap import bootstrap
from driftloop_flows.monitor import monitor
from tests.conftest import ROOT, write_project


@pytest.fixture
def project(tmp_path):
    path = write_project(tmp_path, demo={"n_batches": 4})  # the quality incident is the third
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


def test_mlflow_down_fails_the_run_clearly_within_a_minute_and_leaves_the_batch_pending(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = write_project(tmp_path, registry={"tracking_uri": f"http://127.0.0.1:{port}"})
    cfg = load_config(path)
    batch = generate(cfg.demo, cfg.data).days[0].batch_id
    started = time.monotonic()
    state = monitor(batch_id=batch, config_path=str(path), return_state=True)
    assert time.monotonic() - started < 60  # the default retry budget (registry.http_retries) answers a person
    assert state.is_failed() and not state.is_crashed()
    assert f"MLflow at http://127.0.0.1:{port} is unreachable; start it (make up)" in state.message
    assert data.batch_path(cfg.data, batch).exists()  # nothing moved, nothing lost
    assert Ledger(cfg.ledger).unfinished() == [batch]  # the next run takes it again


def test_a_release_that_fails_after_a_failed_batch_leaves_the_batchs_own_error_as_the_message(tmp_path, monkeypatch):
    path = write_project(tmp_path)  # never bootstrapped: the batch fails for want of a champion
    cfg = load_config(path)
    batch = generate(cfg.demo, cfg.data).days[0].batch_id

    def damaged(self, batch_id, owner):
        raise LedgerDamaged("ledger damaged while releasing")

    monkeypatch.setattr(Ledger, "release", damaged)
    state = monitor(batch_id=batch, config_path=str(path), return_state=True)
    assert state.is_failed() and "bootstrap" in state.message and "damaged" not in state.message
    assert data.batch_path(cfg.data, batch).exists()  # nothing moved: the next run takes it once the claim ends


def test_a_run_without_a_batch_id_takes_every_batch_not_done_oldest_first(project):
    path, cfg, first = project
    days = sorted(p.stem for p in cfg.data.incoming.glob("*.parquet"))
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


def test_a_suite_naming_an_unknown_column_fails_the_run_before_any_batch_is_received(tmp_path):
    """A suite error is the config's: no batch is received, quarantined or judged by it."""
    suite = json.loads((ROOT / "expectations" / "churn_batch.json").read_text())
    suite["expectations"].append({"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "incme"}})
    (tmp_path / "suite.json").write_text(json.dumps(suite))
    path = write_project(tmp_path, validation={"suite": str(tmp_path / "suite.json")})
    cfg = load_config(path)
    batch = generate(cfg.demo, cfg.data).days[0].batch_id
    before = data.batch_path(cfg.data, batch).read_bytes()

    state = monitor(batch_id=batch, config_path=str(path), return_state=True)

    assert state.is_failed() and "column 'incme' is not a column of the batches" in state.message
    assert data.batch_path(cfg.data, batch).read_bytes() == before
    assert Ledger(cfg.ledger).state(batch) is None
    assert not cfg.data.quarantine.exists() or not any(cfg.data.quarantine.iterdir())


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_two_runs_started_for_one_batch_at_once_process_it_exactly_once(tmp_path, store, request):
    """Two worker processes given the same batch: one claims and processes it, the other ends cleanly saying so."""
    from mlflow import MlflowClient

    overrides = {"ledger": {"url": request.getfixturevalue("postgres_url")}} if store == "postgresql" else {}
    path = write_project(tmp_path, **overrides)
    cfg = load_config(path)
    batch = generate(cfg.demo, cfg.data).days[0].batch_id
    assert bootstrap(config_path=str(path), return_state=True).is_completed()
    code = (f"from driftloop_flows.monitor import monitor; state = monitor(batch_id={batch!r}, config_path={str(path)!r}, "
            "return_state=True); print('FINAL', state.type.value, 'outcome' if state.result() else 'none')")
    env = os.environ | {"PREFECT_API_URL": PREFECT_API_URL.value(), "PREFECT_LOGGING_LEVEL": "INFO"}  # the loser says why at INFO
    workers = [subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True) for _ in range(2)]
    outputs = sorted(worker.communicate(timeout=300)[0] for worker in workers)

    assert [t.state for t in Ledger(cfg.ledger).history(batch)] == ["received", "validated", "scored", "evaluated"]
    finals = sorted(line for out in outputs for line in out.splitlines() if line.startswith("FINAL"))
    assert finals == ["FINAL COMPLETED none", "FINAL COMPLETED outcome"], outputs
    assert any(f"batch {batch} is being processed by monitor" in out or f"batch {batch} is already evaluated" in out
               for out in outputs), outputs
    client = MlflowClient(cfg.registry.tracking_uri)
    experiment = client.get_experiment_by_name(f"{cfg.registry.experiment}-monitoring")
    assert len(client.search_runs([experiment.experiment_id], f"tags.`driftloop.batch_id` = '{batch}'")) == 1
    assert Ledger(cfg.ledger).holder(batch) is None  # released by the run that held it


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone while we looked
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.parametrize("command", ["driftloop run bootstrap", "make demo"])
def test_sigterm_to_a_run_ends_it_and_the_local_prefect_api_it_started(tmp_path, command):
    path = write_project(tmp_path, new_store=not command.startswith("make"))  # the demo makes its own
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"} | {"PREFECT_HOME": str(tmp_path / "prefect-home")}
    if command.startswith("driftloop"):
        generate(load_config(path).demo, load_config(path).data)
        argv = [str(Path(sys.executable).parent / "driftloop"), "run", "bootstrap", "--config", str(path)]
    else:  # what `make demo` runs; it writes its own data
        argv = [sys.executable, "-m", "driftloop_flows.demo", "--config", str(path)]
    log = tmp_path / "run.log"
    with log.open("w") as out:
        run = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while not (children := _children(run.pid)) and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert children, f"the run never started its local Prefect API: {log.read_text()[-2000:]}"
    time.sleep(5)  # the bootstrap run is under way
    run.send_signal(signal.SIGTERM)
    assert run.wait(timeout=60) != 0
    deadline = time.monotonic() + 30
    while (alive := [c for c in children if Path(f"/proc/{c}").exists()]) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not alive, f"processes of the run left behind: {alive}"
