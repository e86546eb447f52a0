"""`make up` / `make down` / `make ps`: run driftloop as a team does on one machine.

`up` starts, on 127.0.0.1, a Prefect server (SQLite under .prefect/), an MLflow tracking
server (SQLite mlruns/mlflow.db, artifacts in mlruns/artifacts), a Prefect process worker and
the Prometheus metrics endpoint (`driftloop serve-metrics` on the config's monitoring history,
port 9753 or DRIFTLOOP_METRICS_PORT) and `driftloop serve` for the champion (the config's
serve.port, or DRIFTLOOP_SERVE_PORT; it answers 503 until the bootstrap makes a champion),
creates the work pool, deploys prefect.yaml and prints the addresses.
`down` stops exactly the processes `up` started (their PIDs are in .run/).

External servers: set PREFECT_API_URL and/or DRIFTLOOP_TRACKING_URI before `make up` and
that server is used instead of starting one (an MLflow server on PostgreSQL, say); the
worker is still started here.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from driftloop.config import METRICS_PORT, TRACKING_URI_ENV, load_config
from driftloop.errors import DriftloopError

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
POOL = "driftloop"
SERVICES = ("serve", "prefect-worker", "metrics", "mlflow-server", "prefect-server")  # in the order `down` stops them
_CHILDREN: dict[int, subprocess.Popen] = {}


@dataclass(frozen=True)
class Service:
    name: str
    pid: int
    url: str | None


def _pid_file(run_dir: Path, name: str) -> Path:
    return run_dir / f"{name}.pid"


def start(name: str, command: list[str], env: dict, run_dir: Path, url: str | None = None) -> Service:
    """Start a long-running process in its own session (so it can be stopped as a group)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    log = open(run_dir / f"{name}.log", "ab")
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    _CHILDREN[process.pid] = process
    _pid_file(run_dir, name).write_text(f"{process.pid}\n{url or ''}\n")
    return Service(name, process.pid, url)


def wait_until_up(url: str, timeout: float = 120.0, pid: int | None = None) -> float:
    """Seconds until ``url`` answers 200; fails early if the process died."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if pid is not None and not _alive(pid):
            raise RuntimeError(f"process {pid} for {url} exited; see its log in .run/")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f}s")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie child has exited even though kill(0) succeeds
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return True


def stop(run_dir: Path, name: str, grace: float = 10.0) -> bool:
    """Stop the process group started under ``name``; True if something was running.

    SIGINT first (the Prefect worker ignores SIGTERM), then SIGTERM, then SIGKILL.
    """
    pid_file = _pid_file(run_dir, name)
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text().split()[0])
    was_running = _alive(pid)
    # The worker starts each flow run in a session of its own (a paused review run would outlive
    # the worker's process group), so every descendant is found first and ended too.
    members = process_tree(pid) if was_running else []
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        alive = [m for m in members if _alive(m)]
        if not alive:
            break
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, sig)
        for member in alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(member, sig)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(_alive(m) for m in alive):
            time.sleep(0.2)
    if pid in _CHILDREN:  # started by this process: reap it so no zombie is left behind
        _CHILDREN.pop(pid).wait(timeout=grace)
    pid_file.unlink()
    return was_running


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants, whatever session or process group they put themselves in."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants, in MB."""
    total = 0
    for member in process_tree(pid):
        try:
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def base_env() -> dict:
    env = os.environ.copy()
    env.setdefault("PREFECT_HOME", str(ROOT / ".prefect"))
    env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    env.setdefault("DO_NOT_TRACK", "1")
    env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    env.setdefault("GX_ANALYTICS_ENABLED", "false")
    return env


def start_prefect_server(env: dict, run_dir: Path, port: int) -> tuple[Service, str]:
    api = f"http://127.0.0.1:{port}/api"
    # The UI it serves asks PREFECT_UI_API_URL for its API, which otherwise stays on the default port 4200.
    env = env | {"PREFECT_UI_API_URL": api}
    service = start("prefect-server", [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                    env, run_dir, f"http://127.0.0.1:{port}")
    return service, api


def start_mlflow_server(env: dict, run_dir: Path, port: int, backend: str, artifacts: Path) -> Service:
    artifacts.mkdir(parents=True, exist_ok=True)
    # Its GenAI job runner forks a pool of ~200 MB workers that driftloop never uses.
    env = env | {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": env.get("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")}
    command = [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
               "--backend-store-uri", backend, "--artifacts-destination", str(artifacts), "--serve-artifacts"]
    return start("mlflow-server", command, env, run_dir, f"http://127.0.0.1:{port}")


def start_worker(env: dict, run_dir: Path) -> Service:
    env = env | {"PREFECT_WORKER_QUERY_SECONDS": env.get("PREFECT_WORKER_QUERY_SECONDS", "5")}
    return start("prefect-worker", [str(BIN / "prefect"), "worker", "start", "--pool", POOL, "--type", "process"], env, run_dir)


def start_metrics(env: dict, run_dir: Path, config: Path, port: int) -> Service:
    command = [str(BIN / "driftloop"), "serve-metrics", "--config", str(config), "--port", str(port)]
    return start("metrics", command, env, run_dir, f"http://127.0.0.1:{port}/metrics")


def start_serving(env: dict, run_dir: Path, config: Path, port: int) -> Service:
    """`driftloop serve` for the config's champion, its registry the stack's (``env``)."""
    command = [str(BIN / "driftloop"), "serve", "--config", str(config), "--port", str(port)]
    return start("serve", command, env, run_dir, f"http://127.0.0.1:{port}")


def deploy(env: dict) -> None:
    """Create the process pool and register every deployment of prefect.yaml (with its triggers)."""
    prefect = str(BIN / "prefect")
    subprocess.run([prefect, "work-pool", "create", POOL, "--type", "process", "--overwrite"], cwd=ROOT, env=env,
                   check=True, capture_output=True, text=True)
    result = subprocess.run([prefect, "--no-prompt", "deploy", "--all"], cwd=ROOT, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"prefect deploy failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")


def install_alerts(env: dict, config: Path) -> None:
    """The notification block and automations of the config's `alerts` (driftloop_flows.alerts)."""
    result = subprocess.run([str(BIN / "python"), "-m", "driftloop_flows.alerts", "--config", str(config)], cwd=ROOT, env=env,
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"creating the alert automations failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    print(result.stdout.strip())


def up(run_dir: Path, prefect_port: int, mlflow_port: int, env: dict | None = None, mlflow_store: Path = ROOT / "mlruns",
       config: Path | None = None, metrics_port: int | None = None, serve_port: int | None = None) -> dict:
    """Start what is not already given by the environment, deploy, start the worker and, given a
    ``config``, create its alert automations, serve its metrics (on ``metrics_port``) and its champion
    (on ``serve_port``); returns the environment that points a client at the stack (tests call this
    exactly as `make up` does)."""
    env = base_env() if env is None else env
    began = time.monotonic()
    waits = []
    if env.get("PREFECT_API_URL"):
        print(f"using the Prefect server at {env['PREFECT_API_URL']}")
    else:
        server, env["PREFECT_API_URL"] = start_prefect_server(env, run_dir, prefect_port)
        waits.append((server, f"{env['PREFECT_API_URL']}/health"))
    external = env.get(TRACKING_URI_ENV) or env.get("MLFLOW_TRACKING_URI")
    if external:
        print(f"using the MLflow server at {external}")
    else:
        mlflow = start_mlflow_server(env, run_dir, mlflow_port, f"sqlite:///{mlflow_store / 'mlflow.db'}", mlflow_store / "artifacts")
        external = mlflow.url
        waits.append((mlflow, f"{mlflow.url}/health"))
    # Flows read DRIFTLOOP_TRACKING_URI; the mlflow CLI reads MLFLOW_TRACKING_URI.
    env[TRACKING_URI_ENV] = env["MLFLOW_TRACKING_URI"] = external
    if config is not None and metrics_port is not None:
        endpoint = start_metrics(env, run_dir, config, metrics_port)
        waits.append((endpoint, endpoint.url))
    for service, health in waits:
        seconds = wait_until_up(health, pid=service.pid)
        print(f"{service.name} answering at {service.url} after {time.monotonic() - began:.1f}s (its own wait {seconds:.1f}s)")
    if config is not None and serve_port is not None:  # it reads the champion alias at start: after MLflow is up
        serving = start_serving(env, run_dir, config, serve_port)
        seconds = wait_until_up(f"{serving.url}/ping", pid=serving.pid)
        print(f"serve answering at {serving.url} after {time.monotonic() - began:.1f}s (its own wait {seconds:.1f}s)")
    deploy(env)
    print("work pool 'driftloop' created and prefect.yaml deployed")
    if config is not None:
        install_alerts(env, config)
    start_worker(env, run_dir)
    (run_dir / "env").write_text(
        f"export PREFECT_API_URL={env['PREFECT_API_URL']}\nexport {TRACKING_URI_ENV}={external}\nexport MLFLOW_TRACKING_URI={external}\n"
    )
    print()
    print(f"Prefect UI:  {env['PREFECT_API_URL'].removesuffix('/api')}   (deployments, schedules, runs, the review form)")
    print(f"MLflow UI:   {env['MLFLOW_TRACKING_URI']}   (registered model, versions, gate tables)")
    if config is not None and metrics_port is not None:
        print(f"Metrics:     http://127.0.0.1:{metrics_port}/metrics   (driftloop_* series for Prometheus to scrape)")
    if config is not None and serve_port is not None:
        print(f"Serving:     http://127.0.0.1:{serve_port}/predict   (the champion, once there is one; /metrics for Prometheus too)")
    print(f"everything up in {time.monotonic() - began:.1f}s; `source .run/env` points the CLI at these servers; `make down` stops them")
    return env


def down(run_dir: Path) -> int:
    for name in SERVICES:
        print(f"{name}: {'stopped' if stop(run_dir, name) else 'not running'}")
    return 0


def ps(run_dir: Path) -> int:
    for pid_file in sorted(run_dir.glob("*.pid")):
        pid_text, _, url = pid_file.read_text().partition("\n")
        pid = int(pid_text)
        state = f"{rss_mb(pid):.0f} MB" if _alive(pid) else "not running"
        print(f"{pid_file.stem:<16} pid {pid:<8} {state:<12} {url.strip()}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.stack", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("up", "down", "ps"))
    parser.add_argument("--prefect-port", type=int, default=int(os.environ.get("DRIFTLOOP_PREFECT_PORT", 4200)))
    parser.add_argument("--mlflow-port", type=int, default=int(os.environ.get("DRIFTLOOP_MLFLOW_PORT", 5000)))
    parser.add_argument("--metrics-port", type=int, default=int(os.environ.get("DRIFTLOOP_METRICS_PORT", METRICS_PORT)))
    parser.add_argument("--serve-port", type=int, default=os.environ.get("DRIFTLOOP_SERVE_PORT"), help="default: serve.port")
    args = parser.parse_args(argv)
    run_dir = ROOT / ".run"
    if args.command == "up":
        if any(run_dir.glob("*.pid")):
            print("already up (PID files in .run/); `make down` first", file=sys.stderr)
            return 2
        try:
            config = Path(os.environ.get("DRIFTLOOP_CONFIG") or ROOT / "driftloop.yaml")
            serve_port = args.serve_port or load_config(config).serve.port
            up(run_dir, args.prefect_port, args.mlflow_port, config=config, metrics_port=args.metrics_port, serve_port=serve_port)
            return 0
        except (RuntimeError, TimeoutError, subprocess.CalledProcessError, DriftloopError) as exc:
            print(f"make up failed: {exc}; stopping what was started", file=sys.stderr)
            down(run_dir)
            return 1
    return down(run_dir) if args.command == "down" else ps(run_dir)


if __name__ == "__main__":
    sys.exit(main())
