"""`make bench-serve`: `driftloop serve` (request log on, and off) against `mlflow models serve` on the same model.

The demo scenario is generated in a temp folder and its champion bootstrapped; then three servers run
side by side on 127.0.0.1: `driftloop serve` logging every request, `driftloop serve` with
``serve.log_requests: false``, and `mlflow models serve -m models:/<name>@champion --env-manager local`.
Each is sent the same fixed list of ``POST /invocations`` bodies (MLflow's ``dataframe_split``, rows drawn
from the reference data) by the bounded client of bench/loadgen.py, at each concurrency and request size,
the servers taken in turn and the turn's order rotated every repeat, so the machine's drift in speed falls
on all three alike. Per cell: p50 and p99 latency (from the request's first byte sent to its answer's last
byte read) and answers per second, the ratios that the targets name, and the model-only floor (one
``predict_proba`` call on the same rows, in this process). Last, a served period of ``--close-rows``
requests is written to the request log as the server writes it and closed into its batch in a process of
its own: seconds and peak memory. The table is printed and written as JSON under bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import orjson
import yaml

from bench import loadgen
from bench.cycle_bench import RESULTS, bootstrapped
from ops import stack

SERVERS = ("driftloop", "driftloop-nolog", "mlflow")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_servers(folder: Path, config: Path) -> tuple[dict[str, str], list[subprocess.Popen]]:
    """The three servers, up and answering: their /invocations URLs and processes."""
    from driftloop.config import load_config

    raw = yaml.safe_load(config.read_text())
    off = folder / "driftloop-nolog.yaml"
    off.write_text(yaml.safe_dump(raw | {"serve": (raw.get("serve") or {}) | {"log_requests": False}}, sort_keys=False))
    cfg = load_config(config)
    bin_dir = Path(sys.executable).parent
    # mlflow runs `uvicorn` by name: the venv's, as an activated venv would find it
    env = os.environ | {"MLFLOW_TRACKING_URI": cfg.registry.tracking_uri, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    ports = {name: _free_port() for name in SERVERS}
    commands = {
        "driftloop": [str(bin_dir / "driftloop"), "serve", "--config", str(config), "--port", str(ports["driftloop"])],
        "driftloop-nolog": [str(bin_dir / "driftloop"), "serve", "--config", str(off), "--port", str(ports["driftloop-nolog"])],
        "mlflow": [str(bin_dir / "mlflow"), "models", "serve", "-m", f"models:/{cfg.registry.model_name}@champion",
                   "--env-manager", "local", "--host", "127.0.0.1", "--port", str(ports["mlflow"])],
    }
    processes, urls = [], {}
    logs = folder / "server-logs"
    logs.mkdir(exist_ok=True)
    # MLflow loads a skops file only when told to trust the types the file itself lists (driftloop checks them
    # against the pin it recorded at registration): the bench's own model, so it is told to.
    trusted = {"mlflow": {"MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "true"}}
    for name, command in commands.items():
        out = (logs / f"{name}.log").open("w")
        processes.append(subprocess.Popen(command, cwd=folder, env=env | trusted.get(name, {}), stdout=out, stderr=subprocess.STDOUT))
    try:
        for (name, port), process in zip(ports.items(), processes):
            stack.wait_until_up(f"http://127.0.0.1:{port}/health", timeout=120, pid=process.pid)
            urls[name] = f"http://127.0.0.1:{port}/invocations"
    except BaseException:
        stop_servers(processes)
        raise
    return urls, processes


def stop_servers(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def request_bodies(config: Path, rows: int, count: int, seed: int = 0) -> tuple[list[bytes], object]:
    """``count`` dataframe_split bodies of ``rows`` reference rows each, and one such frame for the floor."""
    from driftloop import data
    from driftloop.config import load_config

    cfg = load_config(config)
    features = list(cfg.columns.features)
    reference = data.read_reference(cfg.data, cfg.columns)[features]
    rng = np.random.default_rng(seed)
    records = reference.astype(object).where(reference.notna(), None).to_numpy().tolist()
    bodies = []
    for _ in range(count):
        picked = rng.integers(0, len(records), rows)
        bodies.append(orjson.dumps({"dataframe_split": {"columns": features, "data": [records[i] for i in picked]}}))
    return bodies, reference.iloc[rng.integers(0, len(reference), rows)].reset_index(drop=True)


def model_floor(config: Path, frames: dict[int, object], repeats: int = 300) -> dict[int, float]:
    """Milliseconds of one ``predict_proba`` call on ``rows`` rows, in process (the median of ``repeats``)."""
    from driftloop.config import load_config
    from driftloop.promotion import CHAMPION
    from driftloop.registry import Registry

    cfg = load_config(config)
    model = Registry(cfg.registry).load(CHAMPION, code_path=cfg.training.estimator_path).model
    predict = model.predict_proba if hasattr(model, "predict_proba") else model.predict
    floor = {}
    for rows, frame in frames.items():
        times = []
        for _ in range(repeats):
            began = time.perf_counter()
            predict(frame)
            times.append(time.perf_counter() - began)
        floor[rows] = float(np.median(times) * 1000)
    return floor


def measure(urls: dict[str, str], bodies: dict[int, list[bytes]], concurrencies: list[int], rounds: int) -> list[dict]:
    """Every (request rows, concurrency) cell in ``rounds`` rounds; in each, every server gets its share
    of the cell's requests in turn, the order rotated from round to round."""
    results = []
    for url in urls.values():  # warm: first connections, first model calls, imports done lazily
        loadgen.run(url, bodies[min(bodies)][:200], 4)
    turn = 0
    for rows, sent in bodies.items():
        share = max(concurrency * 4 for concurrency in concurrencies)
        share = max(share, len(sent) // rounds)
        for concurrency in concurrencies:
            for round_ in range(rounds):
                order = SERVERS[turn % 3:] + SERVERS[:turn % 3]
                turn += 1
                part = sent[(round_ * share) % len(sent):][:share]
                for name in order:
                    load = loadgen.run(urls[name], part, concurrency)
                    results.append({"server": name, "rows": rows, "concurrency": concurrency, "round": round_,
                                    "requests": len(load.answers), "failed": len(load.answers) - len(load.ok),
                                    "seconds": load.seconds, "per_second": load.per_second,
                                    "latencies_ms": [round(a.seconds * 1000, 3) for a in load.ok]})
            cell = [r for r in results if (r["rows"], r["concurrency"]) == (rows, concurrency)]
            print(f"  {rows:>3} rows x {concurrency:>2} clients  " + "  ".join(
                f"{name} {np.median([r['per_second'] for r in cell if r['server'] == name]):7.1f} req/s" for name in SERVERS), flush=True)
    return results


def summary(results: list[dict], floor: dict[int, float]) -> list[dict]:
    """One row per (rows, concurrency): each server's answers per second (the median of its rounds) and
    latency percentiles (over every answer of the cell), and the ratios the targets name."""
    table = []
    for rows, concurrency in sorted({(r["rows"], r["concurrency"]) for r in results}):
        row: dict = {"rows": rows, "concurrency": concurrency, "model_floor_ms": floor[rows]}
        for name in SERVERS:
            runs = [r for r in results if (r["server"], r["rows"], r["concurrency"]) == (name, rows, concurrency)]
            latencies = np.concatenate([r["latencies_ms"] for r in runs])
            row[f"{name}.per_second"] = float(np.median([r["per_second"] for r in runs]))
            row[f"{name}.p50_ms"], row[f"{name}.p99_ms"] = (float(v) for v in np.percentile(latencies, [50, 99]))
            row[f"{name}.failed"] = sum(r["failed"] for r in runs)
        row["throughput_vs_mlflow"] = row["driftloop.per_second"] / row["mlflow.per_second"]
        row["p99_vs_mlflow"] = row["driftloop.p99_ms"] / row["mlflow.p99_ms"]
        row["logging_cost"] = 1 - row["driftloop.per_second"] / row["driftloop-nolog.per_second"]
        table.append(row)
    return table


def write_period(config: Path, rows: int, day: str = "2026-01-05", per_write: int = 10_000) -> None:
    """A served period of ``rows`` one-row answers in the request log, written as the server writes them."""
    import threading

    from driftloop import requestlog
    from driftloop.config import load_config

    cfg = load_config(config)
    schema, rng = cfg.columns, np.random.default_rng(0)
    log = requestlog.GroupCommitLog(cfg.data.request_log, requestlog.log_schema(schema), lambda f: np.full(len(f), day))
    for start in range(0, rows, per_write):
        n = min(per_write, rows - start)
        received = np.datetime64(f"{day}T00:00:00", "us") + (np.arange(start, start + n) * 80).astype("timedelta64[ms]")
        columns = {schema.id_column: np.array([f"r{i}" for i in range(start, start + n)], dtype=object), schema.timestamp_column: received}
        columns |= {c: rng.normal(size=n) for c in schema.numeric} | {c: rng.choice(["a", "b", "c"], n).astype(object) for c in schema.categorical}
        columns |= {"probability": rng.uniform(size=n), "prediction": rng.integers(0, 2, n), requestlog.RECEIVED: received,
                    requestlog.STATUS: np.full(n, requestlog.OK, dtype=object), requestlog.VERSION: np.full(n, "1", dtype=object),
                    requestlog.LATENCY: rng.uniform(0.001, 0.05, n)}
        done = threading.Event()
        log.commit(requestlog.log_table(columns, n, log.schema), lambda error: done.set())
        done.wait()
    log.close()


def _close_in_process(config: Path, out: Path) -> None:
    """Close the written period in this process: seconds and the process's peak RSS."""
    import resource
    from datetime import datetime, timezone

    from driftloop import requestlog
    from driftloop.config import ServeConfig, load_config

    cfg = load_config(config)
    began = time.perf_counter()
    (period,) = requestlog.close_periods(cfg.data, cfg.columns, ServeConfig(close_grace_minutes=0),
                                         now=datetime(2026, 1, 7, tzinfo=timezone.utc))
    out.write_text(json.dumps({"rows": period.rows, "seconds": time.perf_counter() - began,
                               "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def period_close(config: Path, rows: int) -> dict:
    """A period of ``rows`` requests written to the log, then closed into its batch in a process of its own."""
    from driftloop.config import load_config

    write_period(config, rows)
    log_mb = sum(p.stat().st_size for p in load_config(config).data.request_log.rglob("*.arrows")) / 1e6
    out = config.parent / "close.json"
    subprocess.run([sys.executable, "-m", "bench.serve_bench", "--close-in-process", str(config), str(out)], check=True,
                   cwd=Path(__file__).resolve().parent.parent)
    return json.loads(out.read_text()) | {"log_mb": log_mb}


def print_table(table: list[dict]) -> None:
    head = (f"{'rows':>4} {'clients':>7} | {'driftloop req/s  p50  p99':>27} | {'no log req/s  p50  p99':>24} | "
            f"{'mlflow req/s  p50  p99':>24} | {'x mlflow':>8} {'p99/mlflow':>10} {'log cost':>8} | {'model ms':>8}")
    print(head)
    print("-" * len(head))
    for row in table:
        cells = [f"{row[f'{n}.per_second']:9.0f} {row[f'{n}.p50_ms']:6.1f} {row[f'{n}.p99_ms']:6.1f}" for n in SERVERS]
        print(f"{row['rows']:>4} {row['concurrency']:>7} | {cells[0]:>27} | {cells[1]:>24} | {cells[2]:>24} | "
              f"{row['throughput_vs_mlflow']:8.2f} {row['p99_vs_mlflow']:10.2f} {row['logging_cost']:8.1%} | "
              f"{row['model_floor_ms']:8.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--rows", type=int, nargs="+", default=[1, 100], help="rows per request")
    parser.add_argument("--requests", type=int, default=2000, help="1-row requests per server and cell (fewer for bigger ones)")
    parser.add_argument("--rounds", type=int, default=8, help="rounds each cell's requests are split into, servers alternating")
    parser.add_argument("--close-rows", type=int, default=1_000_000, help="requests in the period closed into a batch (0: none)")
    parser.add_argument("--keep", action="store_true", help="keep the temp project")
    parser.add_argument("--close-in-process", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.close_in_process:
        _close_in_process(*args.close_in_process)
        return

    folder, config, _ = bootstrapped("serve", 2_000, 1)
    bodies, frames = {}, {}
    for rows in args.rows:
        bodies[rows], frames[rows] = request_bodies(config, rows, max(800, args.requests // max(1, rows // 10)))
    floor = model_floor(config, frames)
    urls, processes = start_servers(folder, config)
    try:
        print(f"servers up: {', '.join(f'{n} {u}' for n, u in urls.items())}", flush=True)
        results = measure(urls, bodies, args.concurrency, args.rounds)
    finally:
        stop_servers(processes)
    table = summary(results, floor)
    print()
    print_table(table)
    closed = None
    if args.close_rows:
        closed = period_close(config, args.close_rows)
        print(f"\na served period of {closed['rows']:,} requests ({closed['log_mb']:.0f} MB of log) closed into its batch in "
              f"{closed['seconds']:.1f} s, peak RSS {closed['peak_rss_mb']:.0f} MB")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"serve-{date.today()}.json"
    out.write_text(json.dumps({"machine": {"cores": os.cpu_count(), "python": platform.python_version()},
                               "args": {k: v for k, v in vars(args).items() if k != "close_in_process"}, "table": table,
                               "period_close": closed,
                               "runs": [{k: v for k, v in r.items() if k != "latencies_ms"} for r in results]}, indent=2))
    print(f"\nwritten to {out.relative_to(Path.cwd()) if out.is_relative_to(Path.cwd()) else out}")
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
