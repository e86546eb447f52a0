"""The stack as `make up` starts it (SQLite, the user's default), in folders and on ports of its own."""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
from prefect.client.schemas.objects import StateType
from prefect.client.schemas.sorting import FlowRunSort
from prefect.events.worker import EventsWorker
from prefect.settings import PREFECT_API_URL, temporary_settings

from driftloop.config import TRACKING_URI_ENV
from ops import stack
from tests.conftest import ROOT

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

# What a fresh checkout holds (git ls-files' top level), without the data and stores a session may have made.
PROJECT = ("Makefile", "pyproject.toml", "constraints.txt", "driftloop.yaml", "prefect.yaml", "expectations", "flows", "ops", "mlruns")
FIRST_RUN_LAST_DAY = "2026-02-04"  # the README backfills 18 days; four show the same path at a quarter of the cost


def readme_first_run() -> list[str]:
    """The two bash blocks of the README's "First run on the server": setting up, then the terminal's."""
    section = (ROOT / "README.md").read_text(encoding="utf-8").split("### First run on the server", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)```", section, re.S)[:2]


def _bash(script: str, cwd, env, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", f"set -euo pipefail\n{script}"], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="session")
def made_up(tmp_path_factory):
    """The README's "First run on the server", run literally by bash in a fresh copy of the project: its
    `make up` (SQLite, the user's default) on free ports, its demo data, its bootstrap and backfill through
    the worker (a few days of it, on a smaller demo). The tests of that section read what its blocks
    printed (``first_run``); the others use the stack it left running, with the README's project in it.
    Stopped after the last test that uses it (they run one after another: tests/conftest.py orders and
    schedules them together), not at the end of the session: idle, it still takes CPU."""
    installed = ROOT / ".venv" / ".installed"
    stale = [name for name in ("pyproject.toml", "constraints.txt")
             if not installed.exists() or (ROOT / name).stat().st_mtime > installed.stat().st_mtime]
    if stale:  # the copy's `make up` would reinstall, through the symlink, into this checkout's .venv
        pytest.fail(f"{' and '.join(stale)} changed after the last `make install`: run it first", pytrace=False)
    tmp = tmp_path_factory.mktemp("made-up")
    workspace = tmp / "driftloop"
    workspace.mkdir()
    for name in PROJECT:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, workspace / name, ignore=shutil.ignore_patterns("mlflow.db", "artifacts", "__pycache__"))
        else:
            shutil.copy2(source, workspace / name)  # keeps mtimes: make sees the installed .venv as up to date
    (workspace / ".venv").symlink_to(ROOT / ".venv")
    raw = yaml.safe_load((workspace / "driftloop.yaml").read_text())
    raw["demo"] |= {"reference_rows": 4000, "rows_per_batch": 500, "n_batches": 4}
    (workspace / "driftloop.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))

    env = {k: v for k, v in os.environ.items()
           if k not in ("PREFECT_HOME", "PREFECT_API_URL", TRACKING_URI_ENV, "MLFLOW_TRACKING_URI", "MAKEFLAGS", "MAKELEVEL")}
    metrics_port, serve_port = free_port(), free_port()
    env |= {"DRIFTLOOP_PREFECT_PORT": str(free_port()), "DRIFTLOOP_MLFLOW_PORT": str(free_port()),
            "DRIFTLOOP_METRICS_PORT": str(metrics_port), "DRIFTLOOP_SERVE_PORT": str(serve_port), "PREFECT_WORKER_QUERY_SECONDS": "2",
            # A deployment made after the server started gets its schedule's runs at the scheduler's next visit.
            "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "5"}
    setup, terminal = readme_first_run()
    with contextlib.ExitStack() as cleanup:
        _MADE_UP.append(cleanup)
        cleanup.callback(_stopped_clean, workspace / ".run")
        cleanup.callback(subprocess.run, ["make", "down"], cwd=workspace, env=env, capture_output=True, timeout=120)
        started = _bash(setup, workspace, env, timeout=300)
        assert started.returncode == 0, f"the README's first block failed:\n{started.stdout[-2000:]}\n{started.stderr[-2000:]}"
        followed = _bash("source .run/env\n" + terminal.replace("end=2026-02-18", f"end={FIRST_RUN_LAST_DAY}"), workspace, env, timeout=420)
        # The shell `source .run/env` gives the README's user, given to this process and its children.
        pointed = dict(re.findall(r"^export (\w+)=(.*)$", (workspace / ".run" / "env").read_text(), re.M))
        env = stack.base_env() | {"PREFECT_HOME": str(workspace / ".prefect")} | pointed
        cleanup.enter_context(prefect_api_at(pointed["PREFECT_API_URL"]))
        yield {"api": pointed["PREFECT_API_URL"], "mlflow": pointed[TRACKING_URI_ENV], "tmp": tmp, "run_dir": workspace / ".run",
               "env": env, "metrics": f"http://127.0.0.1:{metrics_port}/metrics", "serve": f"http://127.0.0.1:{serve_port}",
               "first_run": (workspace, started, followed)}


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
