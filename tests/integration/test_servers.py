"""driftloop as a team runs it: Prefect server, MLflow server, worker, deployments, automations.

Both servers and the ledger run on PostgreSQL (the production setup) in databases made for
this test, on free ports of 127.0.0.1. Everything is started and stopped here, even when a
check fails.
"""

from __future__ import annotations

import html
import re
import time

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType
from prefect.deployments import run_deployment
from prefect.flow_runs import resume_flow_run
from prefect.settings import PREFECT_API_URL, temporary_settings

from driftloop.config import ALERT_WEBHOOK_ENV, TRACKING_URI_ENV, load_config
from driftloop.demo import generate
from driftloop.ledger import Ledger
from driftloop.registry import CHALLENGER, CHAMPION, Registry
from ops import stack
from tests.conftest import (INLINE_RETRAIN_DAYS, POSTGRES_ENV, postgres_databases, postgres_problem, stored_events,
                            write_project)
from tests.integration.conftest import WebhookReceiver, chromium, free_port, prefect_api_at, runs_of, stop_all, wait_for_run

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """A Prefect server, an MLflow server (both on fresh PostgreSQL databases) and a worker."""
    if postgres_problem():
        pytest.fail(f"{postgres_problem()}; start it, or point {POSTGRES_ENV} at one", pytrace=False)
    tmp = tmp_path_factory.mktemp("servers")
    run_dir = tmp / "run"
    receiver = WebhookReceiver()
    with postgres_databases("prefect", "mlflow", "ledger") as urls:
        env = stack.base_env() | {
            "PREFECT_HOME": str(tmp / "prefect-home"),
            "PREFECT_SERVER_DATABASE_CONNECTION_URL": urls["prefect"].replace("+psycopg", "+asyncpg"),
            "PREFECT_WORKER_QUERY_SECONDS": "2",
        }
        try:
            prefect, api = stack.start_prefect_server(env, run_dir, free_port())
            mlflow = stack.start_mlflow_server(env, run_dir, free_port(), urls["mlflow"], tmp / "artifacts")
            stack.wait_until_up(f"{api}/health", timeout=180, pid=prefect.pid)
            stack.wait_until_up(f"{mlflow.url}/health", timeout=120, pid=mlflow.pid)
            env |= {"PREFECT_API_URL": api, TRACKING_URI_ENV: mlflow.url, "MLFLOW_TRACKING_URI": mlflow.url}
            stack.deploy(env)
            # The alerts of `make up`, sent to a receiver of the test's own: the demo model's automations.
            stack.install_alerts(env | {ALERT_WEBHOOK_ENV: receiver.url}, write_project(tmp))
            stack.start_worker(env, run_dir)
            with prefect_api_at(api):
                yield {"api": api, "mlflow": mlflow.url, "tmp": tmp, "ledger": urls["ledger"], "webhook": receiver}
        finally:
            receiver.close()
            leftovers = stop_all(run_dir)
            assert not leftovers, f"processes left running after stop: {leftovers}"


def _run(name: str, parameters: dict, timeout: float = 300):
    """Run a deployment through the worker and wait for its final state."""
    return run_deployment(name, parameters=parameters, timeout=timeout)


def _all_retrains_done(expected: int, timeout: float = 300) -> list:
    """Wait until the automation-started retrains have all run (they queue, one at a time)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = runs_of("retrain/on-demand")
        done = [r for r in runs if r.state and r.state.is_final()]
        if len(done) >= expected and len(done) == len(runs):
            return sorted(runs, key=lambda r: r.parameters["as_of"])
        time.sleep(2)
    raise AssertionError(f"retrains not done in {timeout}s: {[(r.parameters.get('as_of'), r.state.type) for r in runs_of('retrain/on-demand')]}")


def test_a_server_backfill_retrains_once_per_episode_like_the_inline_run_and_waits_for_review(servers):
    # The ledger on PostgreSQL too: everything a team shares lives in the production database.
    project = write_project(servers["tmp"], ledger={"url": servers["ledger"]})
    cfg = load_config(project)
    days = generate(cfg.demo, cfg.data).days

    assert _run("bootstrap/first-champion", {"config_path": str(project)}).state.is_completed()
    # Through the second retrain's day: the days after it repeat what the inline run shows.
    backfill = _run("backfill/range", {"start": days[0].batch_id, "end": INLINE_RETRAIN_DAYS[-1], "config_path": str(project)}, timeout=600)
    assert backfill.state.is_completed(), backfill.state.message

    # The retrains run later, through the automation; the cooldown counted each from its request.
    degraded = stored_events(servers["api"], "driftloop.model.degraded", at_least=len(INLINE_RETRAIN_DAYS))
    assert sorted(e["payload"]["as_of"] for e in degraded) == list(INLINE_RETRAIN_DAYS)
    assert all(e["resource"]["driftloop.retrain"] == "deployment" for e in degraded)
    # The automations `make up` creates told a person, naming the model, the batch and the reasons.
    model = cfg.registry.model_name
    said = lambda day, words: lambda messages: any(  # noqa: E731
        all(w in html.unescape(m["text"]) for w in (model, day, *words)) for m in messages)
    for event in degraded:
        day, reason = event["payload"]["as_of"], event["payload"]["reasons"][0]
        assert said(day, ("degraded", reason))(servers["webhook"].wait_for(said(day, ("degraded", reason)))), (day, servers["webhook"].received)
    quarantined = next(d.batch_id for d in days if d.quality_incident)
    assert said(quarantined, ("failed", "quarantined"))(servers["webhook"].wait_for(said(quarantined, ("failed", "quarantined"))))
    retrains = _all_retrains_done(len(INLINE_RETRAIN_DAYS))
    assert [r.parameters["as_of"] for r in retrains] == list(INLINE_RETRAIN_DAYS)
    assert all(r.state.is_completed() for r in retrains), [r.state.message for r in retrains]
    assert isinstance(retrains[0].parameters["reasons"], list)  # the automation kept the list a list
    assert {r.as_of: r.state for r in Ledger(cfg.ledger).retrains()} == dict.fromkeys(INLINE_RETRAIN_DAYS, "registered")

    with pytest.MonkeyPatch.context() as env:
        env.setenv(TRACKING_URI_ENV, servers["mlflow"])
        registry = Registry(load_config(project).registry)
        first, second = (registry.find_by_tag("trigger_id", f"monitor:{day}@{day}") for day in INLINE_RETRAIN_DAYS)
        # as inline, and numbered in the same order: the first retrain (one day of post-drift labels)
        # fails the gate and is not offered; the second becomes the challenger
        assert (first.version, second.version) == ("2", "3")
        assert first.tags["driftloop.gate_verdict"] == "failed" and first.aliases == ()
        assert second.tags["driftloop.gate_verdict"] == "passed" and second.aliases == (CHALLENGER,)
        assert second.tags["driftloop.monitor_run_id"] and registry.by_alias(CHAMPION).version == "1"

    assert [e["payload"]["version"] for e in stored_events(servers["api"], "driftloop.challenger.registered")] == [second.version]
    review = wait_for_run("promote/review", StateType.PAUSED)
    assert review.name == f"review {cfg.registry.model_name} v{second.version}" and review.state.name == "Suspended"
    resume_flow_run(review.id, run_input={"decision": "approve", "reviewer": "dana", "comment": "recovers AUC"})
    wait_for_run("promote/review", StateType.COMPLETED)  # the worker reran it with the answer
    with pytest.MonkeyPatch.context() as env:
        env.setenv(TRACKING_URI_ENV, servers["mlflow"])
        registry = Registry(load_config(project).registry)
        assert registry.by_alias(CHAMPION).version == second.version
        assert registry.version(second.version).tags["driftloop.promoted_by"] == "dana"

    with get_client(sync_client=True) as client:
        artifacts = {a.key: a for a in client.read_artifacts(limit=200) if a.key}
    assert {"monitor-report", "feature-drift", "challenger-review", "monitor-progress", "monitor-summary", "review-outcome"} <= set(artifacts)
    # The monitor report links its validation page in the MLflow UI (a file:// link would be blocked by the browser).
    link = re.search(r"validation page: \[[^]]+\]\((http[^)]+)\)", artifacts["monitor-report"].data)
    assert link, artifacts["monitor-report"].data[-400:]
    with chromium() as page:
        page.goto(link.group(1))
        page.frame_locator("iframe").first.get_by_text(re.compile(r"Batch \d{4}-\d\d-\d\d: PASSED")).wait_for(timeout=30_000)
