"""A monitor run on a real Dask cluster (a scheduler and two workers on 127.0.0.1, started here)
gets the drift verdicts and the figures of the same run in process, through the command users run
(`driftloop run monitor`, called in this process on the session's Prefect API)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time

import pytest

from driftloop import cli
from driftloop.config import DASK_ADDRESS_ENV, load_config
from driftloop.demo import generate
from driftloop.ledger import Ledger
from tests.conftest import write_project
from tests.integration.conftest import free_port

pytestmark = pytest.mark.integration
PARTITION_ROWS = 300  # an 800-row batch is three partitions: two on one worker, one on the other


@pytest.fixture
def dask_cluster(tmp_path):
    """`dask scheduler` and two `dask worker`s, each its own process (no nanny), stopped by PID."""
    scheduler_file = tmp_path / "scheduler.json"
    log = (tmp_path / "dask.log").open("w")
    started = []
    common = ["--host", "127.0.0.1", "--no-dashboard"]
    try:
        started.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--port", "0",
                                         "--scheduler-file", str(scheduler_file), *common], stdout=log, stderr=subprocess.STDOUT))
        for name in ("w1", "w2"):
            started.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", "--scheduler-file", str(scheduler_file),
                                             "--nthreads", "1", "--no-nanny", "--name", name, *common],
                                            stdout=log, stderr=subprocess.STDOUT))
        from distributed import Client

        deadline = time.monotonic() + 60
        while not scheduler_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        address = json.loads(scheduler_file.read_text())["address"]
        with Client(address, timeout=30) as client:
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        for process in reversed(started):
            process.terminate()
        for process in started:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:  # a worker still closing its connections: it is ours to end
                process.kill()
                process.wait(timeout=10)
        log.close()
        assert all(p.poll() is not None for p in started)


def _driftloop(*args: str) -> int:
    """A `driftloop` command, in this process, on the session's Prefect API (so each command does
    not start one of its own); the Dask scheduler and workers are processes of their own."""
    return cli.main(list(args))


def _same(a, b, path: str = "") -> list[str]:
    """Where two report records differ beyond 1e-9 (relative), by key path; model versions and timings aside."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in a.keys() | b.keys() for d in _same(a.get(k), b.get(k), f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _same(x, y, f"{path}[{i}]")]
    if isinstance(a, float) and isinstance(b, float):
        return [] if math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) or (math.isnan(a) and math.isnan(b)) else [f"{path}: {a} != {b}"]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def test_a_monitor_run_on_dask_matches_the_run_in_process(tmp_path, dask_cluster, prefect_harness, monkeypatch, capsys):
    path = write_project(tmp_path, demo={"n_batches": 7}, execution={"partition_rows": PARTITION_ROWS, "connect_timeout_seconds": 5})
    cfg = load_config(path)
    days = generate(cfg.demo, cfg.data).days
    monkeypatch.delenv(DASK_ADDRESS_ENV, raising=False)
    assert _driftloop("run", "bootstrap", "--config", str(path)) == 0
    in_process = _driftloop("run", "monitor", "--retrain-on-server", "--config", str(path))  # no retrain: not compared
    assert in_process == 3, capsys.readouterr().err  # the quality-incident day is quarantined; the rest run
    # The covariate shift's day (features drift) and the last (two labelled days evaluated, estimated performance).
    checked = [d.batch_id for d in days if d.day in (cfg.demo.covariate_shift_batch, cfg.demo.n_batches)]
    local = {b: json.loads((cfg.data.reports / f"{b}.json").read_text()) for b in checked}

    monkeypatch.setenv(DASK_ADDRESS_ENV, dask_cluster)
    on_dask = _driftloop("run", "monitor", *checked, "--force", "--config", str(path))
    assert on_dask == 0, capsys.readouterr()
    for batch_id in checked:
        remote = json.loads((cfg.data.reports / f"{batch_id}.json").read_text())
        health = remote["service_health"]
        assert (health["partitions"], health["where"]) == (-(-cfg.demo.rows_per_batch // PARTITION_ROWS), dask_cluster)
        assert local[batch_id]["service_health"]["partitions"] == 1
        for section in ("drift", "prediction_drift", "target_drift", "performance", "labels", "estimated", "estimated_matured"):
            assert _same(local[batch_id][section], remote[section]) == [], f"{batch_id} {section}"
    shifted = json.loads((cfg.data.reports / f"{checked[0]}.json").read_text())
    assert any(c["drifted"] for c in shifted["drift"]), "the shift's day must drift, or this compares nothing"
    assert json.loads((cfg.data.reports / f"{checked[1]}.json").read_text())["performance"], "the last day evaluates labels"


def test_an_unreachable_scheduler_fails_the_run_in_one_line_before_it_touches_the_batch(tmp_path, prefect_harness, monkeypatch,
                                                                                         capfd):
    path = write_project(tmp_path, demo={"n_batches": 2}, execution={"connect_timeout_seconds": 2})
    cfg = load_config(path)
    batch_id = generate(cfg.demo, cfg.data).days[0].batch_id
    dead = f"tcp://127.0.0.1:{free_port()}"
    monkeypatch.setenv(DASK_ADDRESS_ENV, dead)
    assert _driftloop("run", "monitor", batch_id, "--config", str(path)) == 2
    printed = capfd.readouterr()
    assert f"cannot reach the Dask scheduler at {dead} within 2 s" in printed.out + printed.err
    assert "Traceback" not in printed.out + printed.err
    assert (cfg.data.incoming / f"{batch_id}.parquet").exists()
    assert Ledger(cfg.ledger).state(batch_id) is None  # not received: the next run takes it from the start
