"""`make bench-cycle`: the real monitor flow at 100k, 1M and 5M rows per batch, stage by stage.

For each size the demo scenario is generated with that many rows per daily batch (clean days;
labels one day late), the bootstrap flow trains the champion once, and the monitor flow runs
days 1..3 (day 2 evaluates one labelled day, day 3 two), each day in a process of its own with
its Prefect API already up, as a worker runs it. Per stage (read, validate, score, evaluate,
estimate, drift, publish; `orchestration` is the flow's wall time outside all its tasks): wall
seconds, CPU seconds and peak RSS, from driftloop.stages. Some tasks run side by side, so stage
walls can sum to more than the run's, and a stage's CPU seconds (the process's) include the work
of the stages beside it. The *floor* is the work no monitor can skip, reading the batch, one
scoring pass and the drift engine, measured twice: warm, in the same process right after the
run (the champion already loaded, every import done), and in a new process of its own that
loads the champion from the registry first, as the monitor run itself does (each process imports
the driftloop modules it uses before its clock starts; what they import lazily, such as skops for
the model or GX for validation, is on the clock). The table is printed and written as JSON under
bench/results/.

With ``--against REV`` it compares instead: the last day's monitor run of this checkout and of git
revision REV, alternately, from one copy of the project, so the machine's drift in speed falls on
both alike (bench/results/against-<date>.json).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"

# task name -> stage of the table
STAGES = {
    "check file names": "read", "claim batch": "read", "read batch": "read", "receive batch": "read",
    "validate batch": "validate",
    "load model": "score", "connect to Dask": "score", "score batch": "score", "append prediction log": "score",
    "match new label files": "evaluate", "match labels": "evaluate", "evaluate matured labels": "evaluate",
    "retrain history": "evaluate",
    "estimate performance": "estimate",
    "measure drift": "drift",
    "publish report": "publish", "publish artifacts": "publish", "record history": "publish", "draw charts": "publish", "log charts": "publish",
    "ledger: request retrain": "publish", "finish batch": "publish", "release batch": "publish",
}
ORDER = ("read", "validate", "score", "evaluate", "estimate", "drift", "publish", "orchestration")


def write_config(folder: Path, rows: int, days: int) -> Path:
    raw = yaml.safe_load((ROOT / "driftloop.yaml").read_text())
    suite = json.loads((ROOT / raw["validation"]["suite"]).read_text())
    for expectation in suite["expectations"]:  # the shipped suite expects demo volumes: a team sets its own
        if expectation["type"] == "expect_table_row_count_to_be_between":
            expectation["kwargs"] |= {"min_value": rows // 2, "max_value": rows * 2}
    (folder / "suite.json").write_text(json.dumps(suite, indent=2))
    raw["validation"]["suite"] = str(folder / "suite.json")
    # clean days only: an incident would quarantine a day, drift would retrain
    raw["demo"] |= {"rows_per_batch": rows, "n_batches": days, "label_delay_days": 1,
                    "quality_incident_batch": days + 1, "covariate_shift_batch": days + 1, "concept_drift_batch": days + 1}
    path = folder / "driftloop.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _in_process(kind: str, config: Path, batch_id: str | None, out: Path) -> None:
    """One flow run in this process (the parent starts one process per run), measured; or the floor alone."""
    if kind == "floor":
        out.write_text(json.dumps({"floor": _floor(config, batch_id)}))
        return
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:  # start the API before the clock: a worker's is already up
        client.api_healthcheck()
    from driftloop import stages

    if kind == "bootstrap":
        from driftloop_flows.bootstrap import bootstrap

        assert bootstrap(config_path=str(config), return_state=True).is_completed()
        return
    from driftloop_flows.monitor import monitor

    if kind == "small":  # one long-lived process, one monitor run per batch: what orchestration costs per run
        walls = []
        for batch in batch_id.split(","):
            started = time.perf_counter()
            assert monitor(batch_id=batch, config_path=str(config), retrain_inline=False, return_state=True).is_completed()
            walls.append(time.perf_counter() - started)
        out.write_text(json.dumps({"walls": walls}))
        return
    stages.RECORDED.clear()
    wall, cpu = time.perf_counter(), time.process_time()
    state = monitor(batch_id=batch_id, config_path=str(config), retrain_inline=False, return_state=True)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert state.is_completed(), state.message
    recorded = list(stages.RECORDED)
    peak = max([s.peak_rss_mb for s in recorded] + [stages.peak_rss_mb()])

    floor = _floor(config, batch_id)
    out.write_text(json.dumps({"wall": wall, "cpu": cpu, "peak_rss_mb": peak, "floor": floor,
                               "stages": [s.__dict__ for s in recorded]}))


def _floor(config: Path, batch_id: str) -> dict[str, float]:
    """Read the batch, score it once, run the drift engine: seconds of each (and of loading the
    champion, when this process has not loaded it yet)."""
    from driftloop import drift, training
    from driftloop.config import load_config
    from driftloop.data import batch_path, read_table
    from driftloop.registry import CHAMPION, Registry

    cfg = load_config(config)
    floor, started = {}, time.perf_counter()
    champion = Registry(cfg.registry).load(CHAMPION)
    floor["load"] = time.perf_counter() - started
    started = time.perf_counter()
    frame = read_table(batch_path(cfg.data, batch_id))
    floor["read"] = time.perf_counter() - started
    started = time.perf_counter()
    scored = training.score(champion.model, frame, cfg.columns, cfg.evaluation.decision_threshold).frame
    floor["score"] = time.perf_counter() - started
    started = time.perf_counter()
    drift.detect_drift(champion.profile, scored, cfg.columns.features, cfg.drift)
    floor["drift"] = time.perf_counter() - started
    return floor


def _run(kind: str, config: Path, batch_id: str | None = None, root: Path = ROOT) -> dict:
    """One run in a process of its own, with the code of the checkout at ``root``."""
    out = config.parent / f"{kind}-{batch_id}.json"
    env = os.environ | {"PREFECT_HOME": str(config.parent / ".prefect"), "PREFECT_LOGGING_LEVEL": "WARNING",
                        "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1", "MLFLOW_DISABLE_TELEMETRY": "true",
                        "GX_ANALYTICS_ENABLED": "false", "PYTHONPATH": os.pathsep.join([str(root / "src"), str(root)])}
    subprocess.run([sys.executable, "-m", "bench.cycle_bench", "--in-process", kind, "--config", str(config),
                    "--batch", batch_id or "", "--out", str(out)], check=True, cwd=root, env=env)
    return json.loads(out.read_text()) if out.exists() else {}


def day_rows(n: int, day: int, found: dict) -> list[dict]:
    """Table rows of one monitor day: its tasks summed into stages, the run's total and the floor."""
    by_stage = {}
    for s in found["stages"]:
        stage = by_stage.setdefault(STAGES.get(s["name"], "other"), {"wall": 0.0, "cpu": 0.0, "peak": 0.0})
        stage["wall"] += s["wall_seconds"]
        stage["cpu"] += s["cpu_seconds"]
        stage["peak"] = max(stage["peak"], s["peak_rss_mb"])
    # Outside every task: the wall not covered by any stage's interval (stages overlap).
    by_stage["orchestration"] = {"wall": found["wall"] - covered([(s["started"], s["started"] + s["wall_seconds"]) for s in found["stages"]]),
                                 "cpu": None, "peak": None}
    shown = lambda v, digits=2: "" if v is None else round(v, digits) if digits else round(v)  # noqa: E731
    rows = [{"rows": n, "day": day, "stage": stage, "wall s": shown(by_stage[stage]["wall"]),
             "CPU s": shown(by_stage[stage]["cpu"]), "peak RSS MB": shown(by_stage[stage]["peak"] or None, 0)}
            for stage in sorted(by_stage, key=lambda s: ORDER.index(s) if s in ORDER else len(ORDER))]
    warm = sum(found["floor"][step] for step in ("read", "score", "drift"))
    new = sum(found["new_process_floor"].values())
    rows.append({"rows": n, "day": day, "stage": "monitor run (total)", "wall s": round(found["wall"], 2),
                 "CPU s": round(found["cpu"], 2), "peak RSS MB": round(found["peak_rss_mb"])})
    rows.append({"rows": n, "day": day, "stage": "floor: read + score + drift", "wall s": round(warm, 2),
                 "CPU s": "", "peak RSS MB": "", "ratio": round(found["wall"] / warm, 2)})
    rows.append({"rows": n, "day": day, "stage": "floor in a new process (+ load champion)", "wall s": round(new, 2),
                 "CPU s": "", "peak RSS MB": "", "ratio": round(found["wall"] / new, 2)})
    return rows


def covered(intervals: list[tuple[float, float]]) -> float:
    """Seconds inside at least one of the (start, end) intervals."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


def bootstrapped(kind: str, rows: int, days: int) -> tuple[Path, Path, list]:
    """A temp folder holding the demo scenario at ``rows`` per batch over ``days`` days, its champion
    bootstrapped: the folder, its config and the days' plans."""
    from driftloop.config import load_config
    from driftloop.demo import generate

    folder = Path(tempfile.mkdtemp(prefix=f"driftloop-bench-{kind}-{rows}-"))
    config = write_config(folder, rows, days)
    cfg = load_config(config)
    started = time.perf_counter()
    plans = generate(cfg.demo, cfg.data).days
    print(f"{rows:,} rows per batch: data generated in {time.perf_counter() - started:.0f} s under {folder}", flush=True)
    _run("bootstrap", config)
    return folder, config, plans


def against(sizes: list[int], days: int, revision: str, repeat: int) -> list[dict]:
    """The last day's monitor run of this checkout and of ``revision`` (a git worktree), alternately and
    ``repeat`` times each, each from the same copy of the project after the days before it: the machine's
    drift from run to run falls on both alike."""
    worktree = Path(tempfile.mkdtemp(prefix="driftloop-bench-against-"))
    subprocess.run(["git", "worktree", "add", "--detach", str(worktree), revision], check=True, cwd=ROOT)
    named = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=worktree, capture_output=True, text=True).stdout.strip()
    rows = []
    try:
        for n in sizes:
            folder, config, plans = bootstrapped("against", n, days)
            for plan in plans[:-1]:
                _run("monitor", config, plan.batch_id)
            kept = folder.with_name(folder.name + "-before-last-day")
            shutil.copytree(folder, kept, symlinks=True)
            for attempt in range(1, repeat + 1):
                for label, root in (("this checkout", ROOT), (f"{revision} ({named})", worktree)):
                    shutil.rmtree(folder)
                    shutil.copytree(kept, folder, symlinks=True)
                    found = _run("monitor", config, plans[-1].batch_id, root=root)
                    rows.append({"rows": n, "day": plans[-1].day, "code": label, "run": attempt,
                                 "wall s": round(found["wall"], 2), "CPU s": round(found["cpu"], 2), "peak RSS MB": round(found["peak_rss_mb"])})
                    print(f"  {n:,} rows, day {plans[-1].day}, {label}: {found['wall']:.1f} s, {found['peak_rss_mb']:.0f} MB", flush=True)
            shutil.rmtree(folder)
            shutil.rmtree(kept)
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], check=False, cwd=ROOT)
    return rows


def run(sizes: list[int], days: int, keep: bool = False) -> list[dict]:
    rows = []
    for n in sizes:
        folder, config, plans = bootstrapped("cycle", n, days)
        for plan in plans:
            found = _run("monitor", config, plan.batch_id)
            found["new_process_floor"] = _run("floor", config, plan.batch_id)["floor"]
            rows += day_rows(n, plan.day, found)
            print(f"  day {plan.day}: monitor {found['wall']:.1f} s wall, peak RSS {found['peak_rss_mb']:.0f} MB; floor "
                  + "; in a new process ".join(f"{sum(f.values()):.1f} s ({', '.join(f'{k} {v:.1f}' for k, v in f.items())})"
                                               for f in (found["floor"], found["new_process_floor"])), flush=True)
        if not keep:  # gigabytes at 5M rows
            shutil.rmtree(folder)
    return rows


def small_batches(rows: int, days: int = 6) -> dict:
    """Monitor runs of ``rows``-row batches one after another in one process (a long-lived worker's
    situation): the first pays for the lazy imports (GX, the MLflow model flavour), the rest do not."""
    _, config, plans = bootstrapped("small", rows, days)
    walls = _run("small", config, ",".join(p.batch_id for p in plans))["walls"]
    found = {"rows": rows, "runs": len(walls), "first run s": round(walls[0], 2),
             "later runs, mean s": round(sum(walls[1:]) / len(walls[1:]), 2), "later runs, max s": round(max(walls[1:]), 2)}
    print(f"{rows:,}-row batches in one process: {found}", flush=True)
    return found


def summary(rows: list[dict]) -> list[dict]:
    """The targets: the last day's wall against the floor and peak RSS per size, and how wall grows with rows."""
    last = {r["rows"]: r for r in rows if r["stage"] == "monitor run (total)"}
    warm = {r["rows"]: r for r in rows if r["stage"] == "floor: read + score + drift"}
    new = {r["rows"]: r for r in rows if r["stage"].startswith("floor in a new process")}
    found = [{"rows": n, "monitor wall s": last[n]["wall s"], "floor wall s": warm[n]["wall s"], "wall / floor": warm[n]["ratio"],
              "new-process floor s": new[n]["wall s"], "wall / new-process floor": new[n]["ratio"],
              "peak RSS MB": last[n]["peak RSS MB"]} for n in sorted(last)]
    for smaller, row in zip(found, found[1:]):
        row["wall / wall at smaller size"] = round(row["monitor wall s"] / smaller["monitor wall s"], 2)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000, 5_000_000])
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep each size's data, models and run records (temp folders)")
    parser.add_argument("--small-rows", type=int, default=2_000, help="rows per batch of the long-lived process run (0: skip it)")
    parser.add_argument("--against", metavar="REV", help="instead: the last day's monitor run of this checkout and of git "
                        "revision REV, alternately, from the same copy of the project (bench/results/against-<date>.json)")
    parser.add_argument("--repeat", type=int, default=4, help="runs of each with --against")
    parser.add_argument("--in-process", choices=("bootstrap", "monitor", "small", "floor"), help=argparse.SUPPRESS)
    parser.add_argument("--config", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--batch", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.in_process:
        _in_process(args.in_process, args.config, args.batch or None, args.out)
        return
    from bench.drift_bench import table

    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.against:
        compared = against(args.sizes, args.days, args.against, args.repeat)
        print(table(compared))
        out = RESULTS / f"against-{date.today().isoformat()}.json"
        out.write_text(json.dumps({"sizes": args.sizes, "days": args.days, "against": args.against, "cpu_count": os.cpu_count(),
                                   "runs": compared}, indent=2))
        print(f"written {out}")
        return
    small = small_batches(args.small_rows) if args.small_rows else None
    rows = run(args.sizes, args.days, args.keep)
    print(table([{k: r.get(k, "") for k in ("rows", "day", "stage", "wall s", "CPU s", "peak RSS MB", "ratio")} for r in rows]))
    totals = summary(rows)
    print(table([{k: r.get(k, "") for k in totals[-1]} for r in totals]))
    if small:
        print(table([small]))
    out = RESULTS / f"cycle-{date.today().isoformat()}.json"
    out.write_text(json.dumps({"sizes": args.sizes, "days": args.days, "cpu_count": os.cpu_count(),
                               "stages": rows, "summary": totals, "small_batches": small}, indent=2))
    print(f"written {out}")


if __name__ == "__main__":
    main()
