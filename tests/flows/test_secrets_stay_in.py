"""No password leaves the process: with credentials in both the ledger's and MLflow's URL, nothing a
succeeding or a failing run prints, logs, stores in Prefect, writes to a report or page, or puts in
MLflow holds them."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import httpx
import pytest
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL

from driftloop import cli
from driftloop.config import load_config
from driftloop.demo import generate
from driftloop.registry import Registry
from tests.conftest import write_project
from tests.integration.conftest import free_port

SECRET = "s3cr3t-Pw9"


def _with_password(url: str, port: int | None = None) -> str:
    found = url.replace("postgres@", f"postgres:{SECRET}@")
    return found.replace(":5432/", f":{port}/") if port else found


def _everything_prefect_kept() -> str:
    """Every flow run's and task run's state message, every log line, artifact and event of the test API."""
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(limit=200)
        tasks = client.read_task_runs(limit=200)
        logs = client.read_logs(limit=200)
        artifacts = client.read_artifacts(limit=200)
    events = httpx.post(f"{PREFECT_API_URL.value()}/events/filter", json={"filter": {"event": {"prefix": ["driftloop."]}}, "limit": 50}, timeout=10).json()["events"]
    return "\n".join([*(f"{r.state.message} {r.parameters}" for r in runs if r.state), *(str(t.state.message) for t in tasks if t.state),
                      *(log.message for log in logs), *(f"{a.data} {a.description}" for a in artifacts), *map(str, events)])


def _everything_mlflow_kept(cfg) -> str:
    registry = Registry(cfg.registry)
    runs = registry.client.search_runs([e.experiment_id for e in registry.client.search_experiments()])
    versions = registry.versions()
    return "\n".join([*(f"{v.description} {v.tags}" for v in versions), *(f"{r.data.params} {r.data.tags}" for r in runs),
                      str(registry.client.get_registered_model(registry.name).tags)])


@pytest.fixture
def secret_project(tmp_path, postgres_url):
    url = _with_password(postgres_url)
    path = write_project(tmp_path, demo={"n_batches": 4}, ledger={"url": url}, registry={"tracking_uri": url})
    cfg = load_config(path)
    return path, cfg, [d.batch_id for d in generate(cfg.demo, cfg.data).days]


def test_a_succeeding_run_prints_logs_and_stores_no_password(secret_project, tmp_path, capfd):
    path, cfg, days = secret_project
    config = ["--config", str(path)]
    assert cli.main([*config, "run", "bootstrap"]) == 0
    assert cli.main([*config, "run", "monitor", *days[:3]]) in (0, 3)
    assert cli.main([*config, "history", "--metrics"]) == 0
    assert cli.main([*config, "status"]) == 0
    assert cli.main([*config, "report", "--out", str(tmp_path / "page.html")]) == 0
    printed = capfd.readouterr()
    assert "postgres:***@127.0.0.1" in printed.out  # the store is still named, its password is not

    exporter = subprocess.Popen([sys.executable, "-m", "driftloop.cli", *config, "serve-metrics", "--port", str(port := free_port())],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        first_line = exporter.stdout.readline()
        scraped = _scrape(f"http://127.0.0.1:{port}/metrics")
    finally:
        exporter.send_signal(signal.SIGTERM)
        exporter.wait(timeout=20)
    assert "serving driftloop_* metrics" in first_line and "driftloop_drifted_share" in scraped

    written = "\n".join(p.read_text(errors="replace") for p in [*cfg.data.reports.rglob("*.md"), *cfg.data.reports.rglob("*.json"),
                                                                 tmp_path / "page.html"])
    kept = {"printed": printed.out + printed.err, "serve-metrics": first_line + scraped, "reports and page": written,
            "prefect": _everything_prefect_kept(), "mlflow": _everything_mlflow_kept(cfg)}
    assert {where: SECRET in text for where, text in kept.items()} == dict.fromkeys(kept, False)


def test_a_failing_run_names_its_store_without_the_password(tmp_path, postgres_url, capfd):
    closed = free_port()
    down = {"ledger": {"url": _with_password(postgres_url, port=closed)},
            "registry": {"tracking_uri": f"http://team:{SECRET}@127.0.0.1:{closed}", "http_retries": 0}}
    for setting, override in down.items():
        (tmp_path / setting).mkdir()
        path = write_project(tmp_path / setting, demo={"n_batches": 2}, **{setting: override})
        generate(load_config(path).demo, load_config(path).data)
        assert cli.main(["--config", str(path), "run", "monitor", "2026-02-01"]) == 2
    printed = capfd.readouterr()
    assert "the ledger database postgresql+psycopg://postgres:***@127.0.0.1" in printed.out
    assert f"MLflow at http://team:***@127.0.0.1:{closed} is unreachable" in printed.out
    kept = {"printed": printed.out + printed.err, "prefect": _everything_prefect_kept()}
    assert {where: SECRET in text for where, text in kept.items()} == dict.fromkeys(kept, False)


def _scrape(url: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return httpx.get(url, timeout=5).text
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
