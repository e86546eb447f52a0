"""A real Prometheus (Debian's package) scraping `driftloop serve-metrics` after real monitor runs (the
series it stores are the last report's figures), and the `driftloop serve` that `make up` started
(the dashboard's serving panels return data)."""

from __future__ import annotations

import json
import math
import re
import shutil
import time
from pathlib import Path

import httpx
import orjson
import pytest

from bench import loadgen
from driftloop import data
from driftloop.config import load_config
from driftloop.exporter import LATENCY_BUCKETS
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


@pytest.fixture
def prometheus(monitored):
    """Debian's Prometheus, scraping the given targets every second: ``start(*targets) -> its API``."""
    tmp, started = monitored[0], []

    def start(*targets: str) -> str:
        port = free_port()
        folder = tmp / f"prometheus-{port}"
        folder.mkdir()
        (folder / "prometheus.yml").write_text(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: driftloop\n"
            f"    static_configs:\n      - targets: [{', '.join(repr(t) for t in targets)}]\n")
        started.append(server := stack.start(
            f"prometheus-{port}", [PROMETHEUS, f"--config.file={folder / 'prometheus.yml'}", f"--storage.tsdb.path={folder / 'tsdb'}",
                                   f"--web.listen-address=127.0.0.1:{port}"], stack.base_env(), tmp / "run"))
        stack.wait_until_up(f"http://127.0.0.1:{port}/-/ready", timeout=60, pid=server.pid)
        return f"http://127.0.0.1:{port}"

    yield start
    for server in started:
        stack.stop(tmp / "run", server.name)
    assert not any(stack._alive(server.pid) for server in started)


def _query(api: str, promql: str, timeout: float = 60) -> dict[str, float]:
    """PromQL through Prometheus's HTTP API, waiting for a scrape to have stored the series."""
    deadline = time.monotonic() + timeout
    while True:
        result = httpx.get(f"{api}/api/v1/query", params={"query": promql}, timeout=10).json()["data"]["result"]
        if result or time.monotonic() > deadline:
            return {json.dumps(r["metric"], sort_keys=True): float(r["value"][1]) for r in result}
        time.sleep(0.5)


def test_prometheus_stores_the_last_reports_metrics_drift_decision_and_coverage(monitored, prometheus):
    tmp, config, cfg, report = monitored
    run_dir, metrics_port = tmp / "run", free_port()
    endpoint = stack.start_metrics(stack.base_env(), run_dir, config, metrics_port)
    try:
        stack.wait_until_up(endpoint.url, timeout=60, pid=endpoint.pid)
        api = prometheus(f"127.0.0.1:{metrics_port}")
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
        stack.stop(run_dir, endpoint.name)
    assert not stack._alive(endpoint.pid)


def test_make_up_serves_the_champion_it_waited_for_and_prometheus_graphs_its_requests(made_up, monitored, prometheus):
    tmp, config, cfg, _ = monitored
    serve, model = made_up["serve"], cfg.registry.model_name
    champion = httpx.get(f"{made_up['mlflow']}/api/2.0/mlflow/registered-models/alias", params={"name": model, "alias": "champion"},
                         timeout=10).json()["model_version"]["version"]
    health = httpx.get(f"{serve}/health", timeout=10).json()
    started = (made_up["run_dir"] / "serve.log").read_text()
    # `make up` started it before the README's bootstrap: it waited (503), then followed the alias
    assert "has no 'champion' alias" in started and f"now serving {model} v" in started
    assert (health["status"], health["version"]) == ("ok", champion)

    api = prometheus(serve.removeprefix("http://"))
    assert _query(api, 'up{job="driftloop"} == 1')
    features = list(cfg.columns.features)
    rows = data.read_reference(cfg.data, cfg.columns)[features].head(200).to_dict("records")
    answered = loadgen.run(f"{serve}/predict", [orjson.dumps(r) for r in rows], 4)
    refused = loadgen.run(f"{serve}/predict", [orjson.dumps({features[0]: 1.0})] * 5, 1)
    assert len(answered.ok) == 200 and {a.status for a in refused.answers} == {422}

    ok = _query(api, f'sum(driftloop_requests_total{{model="{model}",route="predict",status="ok"}}) == 200')
    invalid = _query(api, f'sum(driftloop_requests_total{{model="{model}",route="predict",status="invalid"}}) == 5')
    assert list(ok.values()) == [200] and list(invalid.values()) == [5]
    time.sleep(3)  # a few scrapes after the load, so every rate sees it
    dashboard = json.loads((Path(stack.ROOT) / "ops" / "grafana" / "driftloop-dashboard.json").read_text())
    serving = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])
               if re.search(r"driftloop_(requests|request_duration|model_duration|model_batch|predicted)", t["expr"])]
    assert len(serving) >= 8
    for expr in serving:
        found = _query(api, expr.replace("$model", model).replace("$__rate_interval", "1m"))
        assert found and all(math.isfinite(v) for v in found.values()), expr
    p50, p99 = (next(iter(_query(api, f'histogram_quantile({q}, sum by (le) (rate(driftloop_request_duration_seconds_bucket'
                                         f'{{model="{model}"}}[1m])))').values())) for q in (0.5, 0.99))
    # the server times less than the client does: its p99 is within the bucket holding the client's slowest
    assert 0 < p50 <= p99 <= min(b for b in LATENCY_BUCKETS if b >= answered.percentile_ms(100) / 1000)
