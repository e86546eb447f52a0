"""`make demo`: generate the scenario, bootstrap a champion, monitor every simulated day.

Each step is a real Prefect flow run (the ephemeral API unless PREFECT_API_URL points at
a server), exactly as scheduled runs would be; this script only sequences them and
prints a table at the end.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from driftloop import demo
from driftloop.cli import exit_on_sigterm
from driftloop.config import Config, load_config
from driftloop.errors import DriftloopError
from driftloop.redaction import redact
from driftloop.registry import CHALLENGER, CHAMPION, Registry
from driftloop.report import detection_timeline
from driftloop_flows.bootstrap import bootstrap
from driftloop_flows.common import run_settings
from driftloop_flows.monitor import monitor, summarize


def _row(plan: demo.DayPlan, state) -> dict:
    events = ", ".join(e for e, on in (("quality incident", plan.quality_incident), ("covariate shift", plan.covariate_shift),
                                       ("concept drift", plan.concept_drift)) if on) or "-"
    return {"day": plan.day, "batch": plan.batch_id, "scenario": events} | summarize(state)


def _table(rows: list[dict]) -> str:
    columns = ["day", "batch", "scenario", "validation", "drift", "performance", "decision", "registered"]
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    line = lambda values: "  ".join(str(v).ljust(widths[c]) for c, v in zip(columns, values))  # noqa: E731
    return "\n".join([line(columns), line("-" * widths[c] for c in columns), *(line(r[c] for c in columns) for r in rows)])


_CONCEPT_DRIFT = {"churn": "a competitor's campaign", "loans": "rising rates: long, leveraged loans default more"}


def _timeline(cfg: Config, reports: dict) -> str:
    """Which signal saw the concept drift first: the label-free ones on the batch, the rest once labels came."""
    event, unit = cfg.demo.concept_drift_batch, "day" if cfg.data.period_days == 1 else "batch"
    delay = -(-cfg.demo.label_delay_days // cfg.data.period_days)  # in batches, rounded up
    lines = [f"Concept drift from {unit} {event} ({_CONCEPT_DRIFT[cfg.demo.scenario]}); its labels arrive "
             f"{cfg.demo.label_delay_days} days later. First {unit} each signal flagged something new:"]
    for d in detection_timeline(reports, event):
        when = "never" if d.day is None else f"{unit} {d.day} (+{d.lag_days}{', before any of its labels' if d.lag_days < delay else ''})"
        shown = ", ".join(d.new[:3]) + (f" and {len(d.new) - 3} more" if len(d.new) > 3 else "")
        what = f": {shown}" if d.new else ""
        earlier = f"  [already on before: {', '.join(d.already_on)}]" if d.already_on else ""
        lines.append(f"  {d.signal:<22} {when}{what}{earlier}")
        if d.signal == "estimated performance" and d.day is None:
            lines.append(" " * 25 + "(CBPE trusts the model's calibration, P(y | score); a concept drift is a change of exactly that)")
    return "\n".join(lines)


def run(config_path: Path, keep: bool = False) -> int:
    cfg = load_config(config_path)
    started = time.perf_counter()
    step = lambda n, text: print(f"[{n}/4] {text}  (+{time.perf_counter() - started:.0f}s)", flush=True)  # noqa: E731

    if keep:
        demo.claim(cfg, config_path.resolve().parent)
    else:
        demo.reset(cfg, config_path.resolve().parent)  # refuses, deleting nothing, if a folder is not the demo's own
    step(1, f"generating the {cfg.demo.scenario} scenario: {cfg.demo.reference_rows} reference rows, {cfg.demo.n_batches} {cfg.data.cadence} batches")
    generated = demo.generate(cfg.demo, cfg.data)

    step(2, "bootstrap flow: training the first champion on the reference period "
            "(the first flow run starts a local Prefect API: about 20 s on a new machine)")
    state = bootstrap(config_path=str(config_path), replace_champion=keep, return_state=True)  # --keep: the demo's own store
    if not state.is_completed():
        print(f"bootstrap failed: {state.message}", file=sys.stderr)
        return 1
    champion = state.result()
    print(f"      champion is {champion.name} v{champion.version}", flush=True)

    step(3, f"monitor flow over {len(generated.days)} days (one flow run per batch)")
    rows, reports = [], {}
    with Progress(TextColumn("      monitoring"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()) as progress:
        task = progress.add_task("days", total=len(generated.days))
        for plan in generated.days:
            state = monitor(batch_id=plan.batch_id, config_path=str(config_path), return_state=True)
            row = _row(plan, state)
            if state.is_completed() and state.result() is not None:
                reports[plan.day] = state.result().report
            rows.append(row)
            progress.console.print(
                f"      day {row['day']:>2} {row['batch']}: {row['validation']}, {row['drift']}, {row['performance']}, "
                f"{row['decision']} {'' if row['registered'] == '-' else row['registered']}",
                highlight=False, soft_wrap=True)  # one line per day, however narrow the terminal (or a CI log)
            progress.advance(task)

    step(4, "done")
    print()
    print(_table(rows))
    print()
    print(_timeline(cfg, reports))
    registry = Registry(cfg.registry)
    champ, chall = registry.by_alias(CHAMPION), registry.by_alias(CHALLENGER)
    print()
    print(f"{cfg.registry.model_name}: {CHAMPION} = v{champ.version if champ else '-'}, "
          f"{CHALLENGER} = v{chall.version if chall else '-'} (awaiting review)")
    quarantined = sorted(p.name for p in cfg.data.quarantine.glob("*.validation.md")) if cfg.data.quarantine.exists() else []
    if quarantined:
        print(f"quarantined: {', '.join(quarantined)} in {cfg.data.quarantine}")
    cli = ".venv/bin/driftloop" + ("" if config_path == Path("driftloop.yaml") else f" --config {config_path}")
    print()
    print("Review the models in the MLflow UI (each monitor run's charts are under its charts/):")
    print(f"  .venv/bin/mlflow ui --backend-store-uri {redact(cfg.registry.tracking_uri)} --host 127.0.0.1 --port 5000")
    print("See the trend without a server:")
    print(f"  {cli} history --metrics            # a batch per line: metrics with intervals, drift, coverage, decision")
    print(f"  {cli} report --out model.html      # one offline page: status, trends, newest drift, versions")
    if chall:
        gate = chall.tags.get("driftloop.gate_verdict", "not run")
        print(f"The challenger v{chall.version} {'passed' if gate == 'passed' else 'did not pass'} the promotion gate "
              f"(its MLflow version page lists every rule). Approve it (moves the champion alias), or reject it:")
        override = "" if gate == "passed" else " --override --reason '...'"
        print(f"  {cli} promote {chall.version} --reviewer $USER{override}")
        print(f"  {cli} reject {chall.version} --reviewer $USER --reason '...'")
        print(f"  {cli} rollback --reason '...'    # later: champion back to the one it replaced")
        print(f"  {cli} history                    # every alias move: who, when, from, to, why")
    print(f"demo finished in {time.perf_counter() - started:.0f}s")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m driftloop_flows.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("driftloop.yaml"))
    parser.add_argument("--keep", action="store_true", help="keep the previous demo's data and MLflow store")
    args = parser.parse_args(argv)
    logging.getLogger("mlflow").setLevel(logging.WARNING)  # our table says what it would
    exit_on_sigterm()
    try:
        with run_settings():
            return run(args.config, args.keep)
    except DriftloopError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
