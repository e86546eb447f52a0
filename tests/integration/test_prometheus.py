"""A real Prometheus (Debian's package) scraping `driftloop serve-metrics` after real monitor runs:
the series it stores are the last report's figures."""

from __future__ import annotations

import json
import shutil
import time

import httpx
import pytest

from driftloop.config import load_config
from ops import stack
from tests.integration.conftest import free_port

pytestmark = pytest.mark.integration
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"


def test_make_up_serves_the_metrics_endpoint_beside_the_servers(made_up):
    text = httpx.get(made_up["metrics"], timeout=10).text
    # the README project's: its first run evaluated three batches through the worker and quarantined the fourth
    assert 'driftloop_batches{model="churn-classifier",state="evaluated"} 3.0' in text
    assert 'driftloop_batches{model="churn-classifier",state="quarantined"} 1.0' in text


@pytest.fixture(scope="module")
def monitored(made_up):
    """The README project after its first run on the server (``made_up``): bootstrapped and three clean
    days monitored by the worker's runs, its ledger and history in the project, its models on the stack's MLflow."""
    workspace, _, _ = made_up["first_run"]
    tmp = made_up["tmp"] / "prometheus"
    tmp.mkdir()
    config = workspace / "driftloop.yaml"
    cfg = load_config(config)
    last = max(p.name.removesuffix(".json") for p in cfg.data.reports.glob("2026-*.json") if ".validation" not in p.name)
    return tmp, config, cfg, json.loads((cfg.data.reports / f"{last}.json").read_text())


def _query(api: str, promql: str, timeout: float = 60) -> dict[str, float]:
    """PromQL through Prometheus's HTTP API, waiting for a scrape to have stored the series."""
    deadline = time.monotonic() + timeout
    while True:
        result = httpx.get(f"{api}/api/v1/query", params={"query": promql}, timeout=10).json()["data"]["result"]
        if result or time.monotonic() > deadline:
            return {json.dumps(r["metric"], sort_keys=True): float(r["value"][1]) for r in result}
        time.sleep(0.5)


def test_prometheus_stores_the_last_reports_metrics_drift_decision_and_coverage(monitored):
    tmp, config, cfg, report = monitored
    run_dir, metrics_port, prometheus_port = tmp / "run", free_port(), free_port()
    (tmp / "prometheus.yml").write_text(
        f"global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: driftloop\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{metrics_port}']\n")
    api, started = f"http://127.0.0.1:{prometheus_port}", []
    try:  # whatever was started is stopped, even if the next start fails
        started.append(endpoint := stack.start_metrics(stack.base_env(), run_dir, config, metrics_port))
        started.append(prometheus := stack.start(
            "prometheus", [PROMETHEUS, f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'tsdb'}",
                           f"--web.listen-address=127.0.0.1:{prometheus_port}"], stack.base_env(), run_dir))
        stack.wait_until_up(endpoint.url, timeout=60, pid=endpoint.pid)
        stack.wait_until_up(f"{api}/-/ready", timeout=60, pid=prometheus.pid)
        model = cfg.registry.model_name

        estimated = _query(api, f'driftloop_metric_value{{model="{model}",source="estimated",metric="roc_auc",segment=""}}')
        assert list(estimated.values()) == [pytest.approx(report["estimated"]["metrics"]["roc_auc"])]
        low, high = report["estimated"]["intervals"]["roc_auc"]
        assert list(_query(api, f'driftloop_metric_lower{{model="{model}",source="estimated",metric="roc_auc"}}').values()) == [pytest.approx(low)]
        assert list(_query(api, f'driftloop_metric_upper{{model="{model}",source="estimated",metric="roc_auc"}}').values()) == [pytest.approx(high)]
        distances = _query(api, f'driftloop_drift_distance{{model="{model}",family="features"}}')
        assert {json.loads(k)["column"]: v for k, v in distances.items()} == pytest.approx(
            {c["column"]: c["distance"] for c in report["drift"] if c["distance"] is not None})
        decision = _query(api, f'driftloop_decision{{model="{model}"}} == 1')
        assert [json.loads(k)["action"] for k in decision] == [report["decision"]["action"]]
        coverage = _query(api, f'driftloop_label_coverage{{model="{model}"}}')
        assert list(coverage.values()) == [pytest.approx(report["labels"]["coverage"])]
        if report["performance"]:  # labels arrived within the three days: realized metrics too
            realized = _query(api, f'driftloop_metric_value{{model="{model}",source="realized",metric="roc_auc",segment=""}}')
            assert list(realized.values()) == [pytest.approx(report["performance"]["metrics"]["roc_auc"])]
        assert _query(api, f'driftloop_batches{{model="{model}",state="evaluated"}}') and _query(
            api, f'driftloop_seconds_since_last_evaluated_batch{{model="{model}"}} < 600')
    finally:
        for service in started:
            stack.stop(run_dir, service.name)
    assert not any(stack._alive(service.pid) for service in started)
