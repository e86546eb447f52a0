"""The stack as `make up` starts it (SQLite, the user's default), in folders and on ports of its own."""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import json
import socket
import threading
import time
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
from prefect.client.schemas.objects import StateType
from prefect.client.schemas.sorting import FlowRunSort
from prefect.events.worker import EventsWorker
from prefect.settings import PREFECT_API_URL, temporary_settings

from driftloop.config import TRACKING_URI_ENV
from ops import stack
from tests.conftest import write_project

CHROMIUM = "/usr/bin/chromium"
# Chromium on a machine with no network: no background calls home, no sandbox as root.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WebhookReceiver:
    """An HTTP endpoint on 127.0.0.1 that keeps every JSON body POSTed to it (a Slack or generic webhook's stand-in)."""

    def __init__(self):
        received = self.received = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (the http.server API)
                received.append(json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}"))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):  # quiet: the test reads self.received
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(self, predicate, timeout: float = 90) -> list[dict]:
        """The messages received so far once ``predicate(messages)`` holds (the server sends them asynchronously)."""
        deadline = time.monotonic() + timeout
        while not predicate(list(self.received)) and time.monotonic() < deadline:
            time.sleep(1)
        return list(self.received)

    def close(self) -> None:
        self.server.shutdown()
        self.thread.join(timeout=5)


def stop_all(run_dir: Path) -> list[int]:
    """Stop what the fixture started; returns the PIDs still alive afterwards (none, or a bug)."""
    started = [m for name in stack.SERVICES if (run_dir / f"{name}.pid").exists()
               for m in stack.process_tree(int((run_dir / f"{name}.pid").read_text().split()[0]))]
    for name in stack.SERVICES:
        stack.stop(run_dir, name)
    return [m for m in started if stack._alive(m)]


@contextlib.contextmanager
def prefect_api_at(api: str):
    """This process's Prefect client, events included, talking to the server at ``api``.

    Prefect keeps one events worker per process, bound to the server it first connected to;
    drained on the way in and out, the events go where the setting says (the flow tests'
    own API sits beneath this one in the same pytest worker).
    """
    EventsWorker.drain_all(timeout=30)
    try:
        with temporary_settings(updates={PREFECT_API_URL: api}):
            yield
    finally:
        EventsWorker.drain_all(timeout=30)


_MADE_UP: list[contextlib.ExitStack] = []  # what stops `made_up`'s stack, for pytest_runtest_teardown


@pytest.fixture(scope="session")
def made_up(tmp_path_factory):
    """`make up`'s own code path (ops.stack.up) on SQLite: Prefect server, MLflow server, deployments,
    worker. Stopped after the last test that uses it (they run one after another: tests/conftest.py
    orders and schedules them together), not at the end of the session: idle, it still takes CPU."""
    tmp = tmp_path_factory.mktemp("made-up")
    run_dir = tmp / "run"
    env = stack.base_env() | {"PREFECT_HOME": str(tmp / "prefect-home"), "PREFECT_WORKER_QUERY_SECONDS": "2"}
    for name in (TRACKING_URI_ENV, "MLFLOW_TRACKING_URI", "PREFECT_API_URL"):
        env.pop(name, None)
    (tmp / "prefect-home").mkdir()
    with contextlib.ExitStack() as cleanup:
        _MADE_UP.append(cleanup)
        cleanup.callback(_stopped_clean, run_dir)
        # The metrics endpoint and the alerts are those of a project of the fixture's own (its history starts empty).
        config, metrics_port = write_project(tmp), free_port()
        env = stack.up(run_dir, free_port(), free_port(), env=env, mlflow_store=tmp / "mlruns", config=config, metrics_port=metrics_port)
        cleanup.enter_context(prefect_api_at(env["PREFECT_API_URL"]))
        yield {"api": env["PREFECT_API_URL"], "mlflow": env[TRACKING_URI_ENV], "tmp": tmp, "run_dir": run_dir, "env": env,
               "metrics": f"http://127.0.0.1:{metrics_port}/metrics"}


def _stopped_clean(run_dir: Path) -> None:
    leftovers = stop_all(run_dir)
    assert not leftovers, f"processes left running after stop: {leftovers}"


def pytest_runtest_teardown(item, nextitem) -> None:
    if "made_up" in item.fixturenames and (nextitem is None or "made_up" not in nextitem.fixturenames):
        while _MADE_UP:
            _MADE_UP.pop().close()


def emit(api: str, event: str, resource: dict, payload: dict) -> None:
    """Send an event to the server at ``api``, as a flow run would.

    Not prefect.events.emit_event: its worker is shared by the whole test process and keeps
    sending to the first API it was made for (the flow tests' temporary server)."""
    from prefect.events import Event
    from prefect.events.clients import PrefectEventsClient

    async def send() -> None:
        async with PrefectEventsClient(api_url=api) as client:
            await client.emit(Event(event=event, resource=resource, payload=payload))

    asyncio.run(send())


def runs_of(deployment: str, limit: int = 50) -> list:
    """Flow runs of ``flow/deployment``, newest first."""
    _, _, deployment_name = deployment.partition("/")
    with get_client(sync_client=True) as client:
        return client.read_flow_runs(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[deployment_name])),
            sort=FlowRunSort.ID_DESC, limit=limit,
        )


def wait_for_run(deployment: str, state: StateType, timeout: float = 240, where=lambda run: True):
    """The newest run of ``deployment`` in ``state`` (and matching ``where``); fails fast on a failed run."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = runs_of(deployment)
        found = [r for r in runs if r.state and r.state.type == state and where(r)]
        if found:
            return found[0]
        failed = [r for r in runs if r.state and r.state.type in (StateType.FAILED, StateType.CRASHED) and where(r)]
        assert not failed, f"{deployment} run ended {failed[0].state.type}: {failed[0].state.message}"
        time.sleep(1)
    raise AssertionError(f"no {deployment} run reached {state.value} within {timeout}s: {[(r.name, r.state.type) for r in runs_of(deployment)]}")


@contextlib.contextmanager
def chromium():
    """Debian's chromium driven by Playwright for Python (`make browser` installs it).

    Open it only around the browser steps: Playwright's sync API runs an event loop, and inside it
    Prefect's dual sync/async functions (run_deployment, resume_flow_run) return coroutines."""
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: `make browser` installs Debian's chromium"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport={"width": 1400, "height": 1200})
        finally:
            browser.close()
