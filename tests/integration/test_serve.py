"""`driftloop serve` as a real process on 127.0.0.1, under a bounded load of real HTTP requests."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import httpx
import orjson
import pytest

from bench import loadgen
from driftloop import cli, data, requestlog
from driftloop.config import load_config
from driftloop.demo import generate
from driftloop.registry import CHALLENGER, CHAMPION, Registry
from tests.conftest import register, write_project
from tests.integration.conftest import free_port

pytestmark = pytest.mark.integration
DRIFTLOOP = Path(sys.executable).parent / "driftloop"


@pytest.fixture
def project(tmp_path, candidate):
    """A project whose champion is the session's candidate, its alias read twice a second."""
    path = write_project(tmp_path, serve={"poll_seconds": 0.5})
    cfg = load_config(path)
    generate(cfg.demo, cfg.data)
    register(Registry(cfg.registry), candidate, CHAMPION)
    return path, cfg


@contextlib.contextmanager
def serving(path: Path, port: int, *args: str, ready: str = "/health"):
    """`driftloop serve` on ``port`` until the block ends (then SIGTERM, or SIGKILL'd by the test itself),
    from when ``ready`` answers 200."""
    log = open(path.parent / f"serve-{port}.log", "w")
    server = subprocess.Popen([str(DRIFTLOOP), "--config", str(path), "serve", "--port", str(port), *args],
                              stdout=log, stderr=subprocess.STDOUT, env=os.environ | {"PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None, (path.parent / f"serve-{port}.log").read_text()
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}{ready}", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline, f"the server did not answer {ready} in 90 s"
            time.sleep(0.3)
        yield server
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        log.close()


def _rows(cfg, n: int, start: int = 0) -> list[dict]:
    """``n`` rows of the demo's first batch, as JSON records with ids of the test's own."""
    frame = data.read_batch(cfg.data, data.incoming_batches(cfg.data)[0]).head(n)
    records = frame[list(cfg.columns.features)].to_dict("records")
    return [r | {cfg.columns.id_column: f"t-{start + i}"} for i, r in enumerate(records)]


def _bodies(cfg, n_requests: int, rows_per_request: int = 1, start: int = 0) -> list[bytes]:
    rows = _rows(cfg, rows_per_request)
    return [orjson.dumps([r | {cfg.columns.id_column: f"t-{start + k * rows_per_request + j}"} for j, r in enumerate(rows)])
            for k in range(n_requests)]


def _acknowledged(load: loadgen.Load) -> set[str]:
    return {p["id"] for a in load.ok for p in orjson.loads(a.body)["predictions"]}


def _logged(cfg) -> "pyarrow.Table":  # noqa: F821
    today = datetime.now(timezone.utc).date().isoformat()
    return requestlog.read_folder(cfg.data.request_log / today, requestlog.log_schema(cfg.columns))


def _metric(port: int, name: str, **labels) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


def test_a_request_that_does_not_fit_the_columns_is_a_422_naming_the_field_counted_and_never_scored(project):
    path, cfg = project
    port = free_port()
    with serving(path, port):
        good = _rows(cfg, 2)
        bad = [good[0], good[1] | {"age": "forty"}]
        refused = httpx.post(f"http://127.0.0.1:{port}/predict", json=bad, timeout=10)
        answered = httpx.post(f"http://127.0.0.1:{port}/invocations", json={"dataframe_records": good}, timeout=10)

        assert refused.status_code == 422
        assert refused.json()["field"] == "age" and "forty" in refused.json()["error"]
        assert answered.status_code == 200 and answered.json()["ids"] == ["t-0", "t-1"]
        assert answered.json()["predictions"] == [int(p) for p in answered.json()["predictions"]]  # predict's classes, as MLflow
        assert _metric(port, "driftloop_requests_total", status="invalid") == 1
        assert _metric(port, "driftloop_requests_total", status="ok") == 1
        assert _metric(port, "driftloop_request_duration_seconds_count") == 1
    statuses = _logged(cfg).column(requestlog.STATUS).to_pylist()
    assert sorted(statuses) == [requestlog.INVALID, requestlog.OK, requestlog.OK]  # the refused rows never reached the model


def test_a_sigkill_under_load_loses_no_answered_request_and_the_period_is_one_batch(project):
    path, cfg = project
    port = free_port()
    bodies = _bodies(cfg, 3000, rows_per_request=2)
    with serving(path, port) as server:
        found = {}
        client = threading.Thread(target=lambda: found.update(load=loadgen.run(f"http://127.0.0.1:{port}/predict", bodies, 16)))
        client.start()
        while len(_logged(cfg)) < 400:  # under load: answers are flowing
            time.sleep(0.05)
        server.kill()
        client.join(timeout=60)
    load = found["load"]
    acknowledged = _acknowledged(load)
    assert 200 <= len(acknowledged) < 6000 and any(a.status == 0 for a in load.answers)  # killed mid-run

    restarted = free_port()
    with serving(path, restarted):  # a restarted server writes on beside what the killed one left
        again = loadgen.run(f"http://127.0.0.1:{restarted}/predict", _bodies(cfg, 10, start=50_000), 2)
    assert len(again.ok) == 10
    logged = set(_logged(cfg).column(cfg.columns.id_column).to_pylist())
    assert acknowledged <= logged

    tomorrow = datetime.now(timezone.utc).date() + timedelta(days=1)
    closes = datetime.combine(tomorrow, datetime.min.time(), timezone.utc) + timedelta(minutes=cfg.serve.close_grace_minutes)
    (period,) = requestlog.close_periods(cfg.data, cfg.columns, cfg.serve, now=closes)
    batch = data.check_batch(data.read_batch(cfg.data, period.batch_id), cfg.columns, period.batch_id)
    assert acknowledged <= set(batch[cfg.columns.id_column]) and batch[cfg.columns.id_column].is_unique
    assert period.writers == 2 and period.latency_p99_ms is not None


def test_a_promotion_during_load_fails_no_request_and_each_row_names_the_version_that_scored_it(project, candidate):
    path, cfg = project
    port = free_port()
    second = register(Registry(cfg.registry), candidate, CHALLENGER)
    with serving(path, port):
        found = {}
        client = threading.Thread(target=lambda: found.update(load=loadgen.run(
            f"http://127.0.0.1:{port}/predict", _bodies(cfg, 1200), 8)))
        client.start()
        while len(_logged(cfg)) < 200:
            time.sleep(0.05)
        assert cli.main(["--config", str(path), "promote", second, "--reviewer", "dana", "--override", "--reason", "test"]) == 0
        client.join(timeout=120)
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).json()["version"] == second
    load = found["load"]
    assert len(load.answers) == 1200 and {a.status for a in load.answers} == {200}
    versions = [p["model_version"] for a in load.answers for p in orjson.loads(a.body)["predictions"]]
    assert set(versions) == {"1", second} and versions[-1] == second
    logged = _logged(cfg)
    assert set(logged.column(requestlog.VERSION).to_pylist()) == {"1", second}


def test_two_server_processes_on_one_request_log_make_one_batch_with_every_row_once(project):
    path, cfg = project
    ports = free_port(), free_port()
    loads = {}
    with serving(path, ports[0]), serving(path, ports[1]):
        clients = [threading.Thread(target=lambda i=i, port=port: loads.update({i: loadgen.run(
            f"http://127.0.0.1:{port}/predict", _bodies(cfg, 300, start=10_000 * i), 4)})) for i, port in enumerate(ports)]
        for client in clients:
            client.start()
        for client in clients:
            client.join(timeout=120)
    sent = {f"t-{10_000 * i + k}" for i in range(2) for k in range(300)}
    assert set().union(*map(_acknowledged, loads.values())) == sent

    tomorrow = datetime.now(timezone.utc).date() + timedelta(days=1)
    (period,) = requestlog.close_periods(cfg.data, cfg.columns, cfg.serve,
                                         now=datetime.combine(tomorrow, datetime.min.time(), timezone.utc) + timedelta(hours=1))
    batch = data.read_batch(cfg.data, period.batch_id)
    assert period.writers == 2 and len(batch) == 600 and set(batch[cfg.columns.id_column]) == sent


def test_a_served_period_is_monitored_like_a_batch_with_its_feedback_and_real_latency(project, prefect_harness):
    from driftloop_flows.monitor import monitor

    path, cfg = project
    schema = cfg.columns
    first = data.incoming_batches(cfg.data)[0]
    delivered = data.read_batch(cfg.data, first).head(600)
    truth = data.read_labels(cfg.data, schema, date.max).set_index(schema.id_column)[schema.target]
    port = free_port()
    with serving(path, port):
        records = [r | {schema.id_column: f"s-{i}"} for i, r in enumerate(delivered[list(schema.features)].to_dict("records"))]
        load = loadgen.run(f"http://127.0.0.1:{port}/predict", [orjson.dumps(records[k:k + 10]) for k in range(0, 600, 10)], 4)
        assert len(load.ok) == 60
        labels = [{schema.id_column: f"s-{i}", schema.target: int(truth[original])} for i, original in enumerate(delivered[schema.id_column])]
        assert httpx.post(f"http://127.0.0.1:{port}/feedback", json=labels, timeout=10).json() == {"received": 600}

    today = datetime.now(timezone.utc).date()
    (period,) = requestlog.close_periods(cfg.data, schema, cfg.serve, now=datetime.combine(
        today + timedelta(days=1), datetime.min.time(), timezone.utc) + timedelta(hours=1))
    assert (cfg.data.labels / f"{today}.parquet").exists()  # the feedback, as the day's label file

    outcome = monitor(batch_id=period.batch_id, config_path=str(path), retrain_inline=False)

    report = outcome.report
    assert report.n_rows == 600 and report.served.rows == 600 and report.served.versions == {"1": 600}
    assert 0 < report.served.latency_p50_ms <= report.served.latency_p99_ms == period.latency_p99_ms
    assert report.performance is not None and report.performance.n_rows == 600  # judged on the posted ground truth
    assert f"p99 {period.latency_p99_ms:.1f} ms" in report.to_markdown()


def test_worker_processes_share_the_port_and_a_scrape_of_any_counts_them_all(project):
    path, cfg = project
    port = free_port()
    folder = cfg.data.request_log / datetime.now(timezone.utc).date().isoformat()
    counters = lambda: set(Path(tempfile.gettempdir()).glob("driftloop-serve-metrics-*"))  # noqa: E731
    before = counters()
    with serving(path, port, "--workers", "2"):
        assert len(counters() - before) == 1  # the workers' shared counters
        sent = 0
        # A new connection per request, until both processes have answered some (the kernel picks the acceptor).
        while len(list(folder.glob("*.arrows"))) < 2 and sent < 300:
            assert httpx.post(f"http://127.0.0.1:{port}/predict", json=_rows(cfg, 1, start=sent), timeout=10).status_code == 200
            sent += 1
        scraped = [_metric(port, "driftloop_requests_total", status="ok") for _ in range(6)]
    assert len(list(folder.glob("*.arrows"))) == 2 and len(_logged(cfg)) == sent
    assert scraped == [float(sent)] * 6  # whichever process answers a scrape sums every worker's counters
    assert counters() == before  # and they went with the server


def test_a_server_started_before_the_first_champion_answers_503_until_the_alias_names_one(tmp_path, candidate):
    path = write_project(tmp_path, serve={"poll_seconds": 0.5})
    cfg = load_config(path)
    generate(cfg.demo, cfg.data)
    port = free_port()
    with serving(path, port, ready="/ping"):
        waiting = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
        refused = httpx.post(f"http://127.0.0.1:{port}/predict", json=_rows(cfg, 1), timeout=5)
        assert waiting.status_code == 503 and waiting.json()["status"] == "waiting"
        assert refused.status_code == 503 and "no 'champion' alias" in refused.json()["error"]

        version = register(Registry(cfg.registry), candidate, CHAMPION)
        deadline = time.monotonic() + 30
        while httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code != 200:
            assert time.monotonic() < deadline, "the server did not pick up the new champion in 30 s"
            time.sleep(0.2)
        answered = httpx.post(f"http://127.0.0.1:{port}/predict", json=_rows(cfg, 1), timeout=5)
        assert answered.status_code == 200 and answered.json()["predictions"][0]["model_version"] == version
        assert _metric(port, "driftloop_requests_total", status="error") == 1  # the request refused while waiting



def test_a_multiclass_model_answers_its_own_class_names_with_a_probability_each_and_logs_them(tmp_path):
    from driftloop import training
    from driftloop.demo import PLAN_CHANGE, PLAN_CHANGES

    path = write_project(tmp_path, columns={"target": PLAN_CHANGE, "task": "multiclass_classification", "classes": list(PLAN_CHANGES)},
                         evaluation={"thresholds": {"macro_f1": {"max_drop": 0.05}}, "fairness_columns": []},
                         gate={"rules": {"macro_f1": {"min_improvement": 0.0}}})
    cfg = load_config(path)
    generate(cfg.demo, cfg.data, target=PLAN_CHANGE)
    train, holdout = training.split_by_time(data.read_reference(cfg.data, cfg.columns), cfg.columns, 0.2)
    fitted = training.train_candidate(train, holdout, cfg.columns.timestamp_column, cfg.columns, cfg.training, cfg.drift, 0.5)
    register(Registry(cfg.registry), fitted, CHAMPION)
    port = free_port()
    with serving(path, port):
        rows = _rows(cfg, 20)
        predicted = httpx.post(f"http://127.0.0.1:{port}/predict", json=rows, timeout=10).json()["predictions"]
        mlflow_style = httpx.post(f"http://127.0.0.1:{port}/invocations", json={"dataframe_records": rows}, timeout=10).json()
        counted = {c: _metric(port, "driftloop_predicted_class_total", **{"class": c}) for c in PLAN_CHANGES}

    assert {p["prediction"] for p in predicted} <= set(PLAN_CHANGES)
    assert all(set(p["probabilities"]) == set(PLAN_CHANGES) and sum(p["probabilities"].values()) == pytest.approx(1.0) for p in predicted)
    assert all(p["prediction"] == max(p["probabilities"], key=p["probabilities"].get) for p in predicted)
    assert mlflow_style["predictions"] == [p["prediction"] for p in predicted]  # predict's class names, as MLflow answers
    assert sum(counted.values()) == 40  # both requests' rows, by predicted class
    logged = _logged(cfg)
    assert {f"probability.{c}" for c in PLAN_CHANGES} <= set(logged.column_names)
    assert sorted(logged.column("prediction").to_pylist()) == sorted([p["prediction"] for p in predicted] * 2)
