"""The ``driftloop`` command: run the loop on a config, inspect the registry, approve or reject a
challenger, check files, make demo data.

It never imports prefect at startup: everything but ``driftloop run ...`` works with MLflow and
files alone. ``run`` hands over to the flow code (``driftloop_flows``, installed with driftloop)
through an import inside the command, as does a promotion or rejection when ``PREFECT_API_URL``
names a server (to cancel the review forms it made stale). The config is ``--config`` (anywhere
on the line), else ``$DRIFTLOOP_CONFIG``, else ``driftloop.yaml``.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

from driftloop.config import METRICS_PORT, SERVE_PORT, TASK_METRICS, load_config
from driftloop.errors import BatchRejected, DriftloopError
from driftloop.redaction import redact


def _registry(args):
    from driftloop.registry import Registry  # importing mlflow takes a second: only when needed

    return Registry(load_config(args.config).registry)


def cmd_status(args) -> int:
    from driftloop.registry import CHALLENGER, TAG, Registry

    cfg = load_config(args.config)
    registry = Registry(cfg.registry)
    headline = TASK_METRICS[cfg.columns.task][0]
    versions = registry.versions()
    if not versions:
        print(f"no versions of {registry.name} yet: run the bootstrap flow (make demo does)")
        return 0
    replaced_by = {e.from_version: e.to_version for e in registry.history() if e.action == "register" and e.alias == CHALLENGER}
    # Each version's holdout metric was measured on its own holdout rows: not comparable across versions.
    # The paired improvement over its parent, on one holdout both were scored on, is.
    print(f"{'version':>7}  {'aliases':<20} {'trigger':<24} {'data window':<24} {'own holdout ' + headline:>20}  "
          f"{'paired vs parent (improvement, 95% interval)':<46} {'gate':<8} review")
    for v in versions:
        tag = lambda key, default="": v.tags.get(TAG + key, default)  # noqa: E731
        # The latest decision on the version is its review status.
        decisions = [(tag(f"{verb}_at"), f"{verb.replace('_', ' ')} by {tag(f'{verb}_by')}")
                     for verb in ("promoted", "rolled_back", "rejected") if tag(f"{verb}_at")]
        review = max(decisions)[1] if decisions else ""
        if not review and tag("offered") == "no":
            review = "not offered: " + tag("offer").split(":")[0]
        elif not review and v.version in replaced_by and CHALLENGER not in v.aliases:
            review = f"superseded by v{replaced_by[v.version]}"
        elif not review and CHALLENGER in v.aliases:
            review = "awaiting review"
        print(f"{v.version:>7}  {','.join(v.aliases) or '-':<20} {tag('trigger', '-'):<24} {tag('data_window', '-'):<24} "
              f"{tag('holdout_' + headline):>20}  {tag('vs_parent', '-'):<46} {tag('gate_verdict', '-'):<8} {review}")
    _warn_unaudited(registry)
    return 0


def _warn_unaudited(registry) -> None:
    for moved in registry.unaudited_aliases():
        print(f"warning: {moved.warning}", file=sys.stderr)


def _close_stale_reviews(args, keep: str | None, because: str) -> None:
    """Cancel the review forms a CLI decision made stale, when a Prefect server is configured."""
    if not os.environ.get("PREFECT_API_URL"):
        return
    model = load_config(args.config).registry.model_name
    try:
        from driftloop_flows.reviews import cancel_waiting_reviews

        cancelled = cancel_waiting_reviews(model, keep, because)
    except Exception as exc:  # the decision stands; the forms can be cancelled by hand
        print(f"driftloop: warning: could not cancel waiting review runs at {os.environ['PREFECT_API_URL']} "
              f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); cancel them in the Prefect UI", file=sys.stderr)
        return
    for review in cancelled:
        print(f"cancelled the waiting review run '{review.name}' ({because})")


def cmd_promote(args) -> int:
    if args.override and not args.reason:
        raise DriftloopError("--override needs a written --reason; it is recorded on the version")
    previous, current = _registry(args).promote(
        args.version, args.reviewer, args.comment, override_reason=args.reason if args.override else None
    )
    print(f"champion moved from v{previous or '-'} to v{current} (approved by {args.reviewer})")
    _close_stale_reviews(args, None, f"v{current} was promoted by {args.reviewer} from the CLI")
    return 0


def cmd_reject(args) -> int:
    _registry(args).reject(args.version, args.reviewer, args.reason)
    print(f"version {args.version} rejected by {args.reviewer}: {args.reason}")
    _close_stale_reviews(args, None, f"v{args.version} was rejected by {args.reviewer} from the CLI")
    return 0


def cmd_rollback(args) -> int:
    old, new = _registry(args).rollback(args.reviewer, args.reason)
    print(f"champion rolled back from v{old} to v{new} by {args.reviewer}")
    return 0


def cmd_pin(args) -> int:
    registry = _registry(args)
    pin = registry.pin(args.version, args.reviewer, args.reason)
    print(f"pinned {registry.name} v{args.version}: {pin.file} (sha256 {pin.sha256[:12]}...) loads trusting exactly "
          f"{', '.join(pin.trusted_types) or 'no type beyond skops defaults'}")
    return 0


def cmd_history(args) -> int:
    if args.metrics:
        return _metric_history(args)
    registry = _registry(args)
    entries = registry.history()
    if not entries:
        print("no alias has moved yet")
        return 0
    print(f"{'when (UTC)':<25} {'action':<9} {'alias':<11} {'from':>5} {'to':>5}  {'who':<28} why")
    for e in entries:
        print(f"{e.at:<25} {e.action:<9} {e.alias:<11} {e.from_version or '-':>5} {e.to_version or '-':>5}  {e.who[:28]:<28} {e.why}")
    _warn_unaudited(registry)
    return 0


def _metric_history(args) -> int:
    """The model's trend, a batch per line: each thresholded metric with its interval (* past its
    threshold), the headline estimate, drift share, label coverage and the decision."""
    from driftloop.history import ESTIMATED, REALIZED, History

    cfg = load_config(args.config)
    history = History(cfg.ledger, cfg.registry.model_name)
    runs = history.runs(last=args.last)
    if not runs:
        print(f"no monitor run of {cfg.registry.model_name} recorded in {redact(cfg.ledger.url)} yet: run the monitor flow")
        return 0
    values = {(m.batch_id, m.source, m.metric): m for m in history.metrics(last=args.last)}
    thresholded = list(cfg.evaluation.thresholds)
    headline = TASK_METRICS[cfg.columns.task][0]

    def shown(m) -> str:
        if m is None or m.value is None:
            return "-"
        interval = f" [{m.low:.3f}, {m.high:.3f}]" if m.low is not None and m.high is not None else ""
        return f"{m.value:.3f}{interval}{'*' if m.breached else ''}"

    header = ["batch", "version", *(f"{m} (matured)" for m in thresholded), f"{headline} (estimated)", "drift share",
              "label coverage", "decision", "reasons"]
    rows = [[r.batch_id, r.model_version, *(shown(values.get((r.batch_id, REALIZED, m))) for m in thresholded),
             shown(values.get((r.batch_id, ESTIMATED, headline))), f"{r.drift_share:.0%}",
             "-" if r.label_coverage is None else f"{r.label_coverage:.0%}", r.decision, "; ".join(r.reasons)[:100]]
            for r in runs]
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header) - 1)]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)), row[-1])
    print(f"* past its threshold (the whole interval). Matured: realized on the labelled window the batch's run evaluated; "
          f"{len(runs)} batch(es) from {redact(cfg.ledger.url)}")
    return 0


def cmd_report(args) -> int:
    """The model's page: status, trends, the newest drift and the version timeline, one offline HTML file."""
    import tempfile

    from driftloop import charts, page
    from driftloop.history import History

    cfg = load_config(args.config)
    registry = _registry(args)
    versions = registry.versions()
    history = History(cfg.ledger, cfg.registry.model_name)
    runs = history.runs(last=args.last)
    with tempfile.TemporaryDirectory() as folder:
        drawn = charts.trend_charts(history, list(cfg.evaluation.thresholds), args.last, Path(folder))
        text = page.model_page(cfg.registry.model_name, runs, history.drift(last=1), versions, registry.history(),
                               drawn, redact(f"{cfg.ledger.url} and {cfg.registry.tracking_uri}"))
    try:
        args.out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise DriftloopError(f"cannot write {args.out} ({exc.strerror or exc}); pick another --out") from None
    print(f"wrote {args.out} ({len(text) // 1024} KB): {len(runs)} monitored batch(es), {len(versions)} version(s)")
    return 0


def cmd_serve_metrics(args) -> int:
    from driftloop import exporter

    cfg = load_config(args.config)
    try:
        exporter.serve(cfg.ledger, cfg.registry.model_name, args.host, args.port)
    except OSError as exc:  # the port is taken, or the address is not this machine's
        raise DriftloopError(f"cannot serve metrics on {args.host}:{args.port} ({exc.strerror or exc}); pick another --port") from None
    return 0


def cmd_serve(args) -> int:
    from driftloop import serving

    cfg = load_config(args.config)
    host, port = args.host or cfg.serve.host, args.port or cfg.serve.port
    serving.serve(cfg, host, port, args.workers or cfg.serve.workers, str(args.config))
    return 0


def cmd_close_periods(args) -> int:
    from driftloop import requestlog

    cfg = load_config(args.config)
    closed = requestlog.close_periods(cfg.data, cfg.columns, cfg.serve)
    for period in closed:
        print(f"{period.batch_id}: {period.rows} row(s), {period.requests_invalid} invalid request(s) -> "
              f"{period.batch or period.note}")
    if not closed:
        print(f"no ended period to close in {cfg.data.request_log} (a period closes serve.close_grace_minutes after it ends)")
    return 0


def cmd_validate(args) -> int:
    """Read, check and validate a batch file without moving it: the same rules as the monitor flow."""
    from driftloop import data, validation

    cfg = load_config(args.config)
    validation.check_suite(cfg.validation, cfg.columns)
    frame = data.check_batch(data.read_table(args.path), cfg.columns, args.path)
    if data.ISO_DATE.fullmatch(args.path.stem):  # a file named by its batch id: its rows must fall in that batch's period
        data.check_period(frame, cfg.columns, cfg.data, args.path.stem, args.path)
    report = validation.validate(frame, cfg.validation, args.path.stem)
    for warning in report.warnings:
        print(f"warning: {warning.column or 'table'}: {warning.expectation} {warning.detail}")
    if not report.passed:
        failed = "; ".join(f"{o.column or 'table'}: {o.expectation} {o.detail}" for o in report.critical_failures)
        raise BatchRejected(f"{args.path}: {report.summary} ({failed}); fix the batch or edit {cfg.validation.suite}")
    print(f"{args.path}: {report.summary} ({report.n_rows} rows, suite {report.suite})")
    return 0


def cmd_suite_init(args) -> int:
    from driftloop import data, validation

    cfg = load_config(args.config)
    target = args.out or cfg.validation.suite
    if target.exists() and not args.force:
        raise DriftloopError(f"{target} exists; pass --force to overwrite it or --out to write elsewhere")
    suite = validation.profile_suite(data.read_reference(cfg.data, cfg.columns), cfg.columns, target.stem, args.margin,
                                     cfg.data.period_days)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(suite, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {len(suite['expectations'])} expectations to {target}; review and edit them, then commit the file")
    return 0


def cmd_quarantine_list(args) -> int:
    cfg = load_config(args.config)
    reports = sorted(cfg.data.quarantine.glob("*.validation.json")) if cfg.data.quarantine.exists() else []
    if not reports:
        print(f"nothing in quarantine ({cfg.data.quarantine})")
    for path in reports:
        record = json.loads(path.read_text(encoding="utf-8"))
        attempt = path.name.split(".")[1] if ".attempt-" in path.name else ""
        print(f"{record.get('batch_id', path.name.split('.')[0])}{f' ({attempt}, kept)' if attempt else ''}  "
              f"{record.get('summary') or record.get('error', '')}")
    return 0


def cmd_quarantine_release(args) -> int:
    """Re-validate a quarantined batch and, if it now passes, put it back in incoming for the next monitor run."""
    from driftloop import data, validation
    from driftloop.ledger import Ledger

    cfg = load_config(args.config)
    held = cfg.data.quarantine / f"{args.batch}.{cfg.data.batch_format}"
    if not held.exists():
        raise DriftloopError(f"no quarantined batch {args.batch} in {cfg.data.quarantine}; `driftloop quarantine list` shows them")
    validation.check_suite(cfg.validation, cfg.columns)
    frame = data.check_batch(data.read_table(held), cfg.columns, held)
    data.check_period(frame, cfg.columns, cfg.data, args.batch, held)
    report = validation.validate(frame, cfg.validation, args.batch)
    if not report.passed:
        raise BatchRejected(f"{held}: still {report.summary}; fix the file in place, then release it again")
    target = data.batch_path(cfg.data, args.batch)
    if target.exists():
        raise DriftloopError(f"{target} exists (delivered again since {args.batch} was quarantined?); move one of the two "
                             f"aside, then release it again; nothing was moved")
    ledger = Ledger(cfg.ledger)  # opened first: a ledger that cannot be reached stops the release before anything moves
    held.replace(target)
    try:
        ledger.record(args.batch, "received", "released from quarantine")  # so the next monitor run takes it
    except Exception:
        target.replace(held)  # the file stays where the ledger says it is: in quarantine
        raise
    for stale in cfg.data.quarantine.glob(f"{args.batch}.validation.*"):
        stale.rename(stale.with_name(stale.name + ".released"))
    print(f"{args.batch} passed and is back in {target}; run the monitor flow for it (or wait for the schedule)")
    return 0


def cmd_demo_data(args) -> int:
    from driftloop import demo

    cfg = load_config(args.config)
    demo.claim(cfg, args.config.resolve().parent, stores=False)  # never into folders that hold someone's files
    generated = demo.generate(cfg.demo, cfg.data)
    print(f"wrote {generated.reference_rows} reference rows to {cfg.data.reference} and "
          f"{len(generated.days)} {cfg.data.cadence} batches to {cfg.data.incoming}")
    return 0


# -- running the loop ---------------------------------------------------------------------


# How long a SIGTERM'd run may take to end cleanly before it stops what it started and leaves.
SIGTERM_GRACE_SECONDS = 20


def exit_on_sigterm() -> None:
    """SIGTERM (a supervisor stopping the command, `kill`) becomes a normal exit, so the run ends and
    the local Prefect API this process started is stopped with it (Python's default would leave
    that server process running, orphaned). An exit that a busy thread holds up (interpreter exit
    joins every worker thread) ends after ``SIGTERM_GRACE_SECONDS`` all the same."""
    def leave(signum, frame) -> None:
        threading.Thread(target=_exit_after_grace, args=(128 + signum,), daemon=True).start()
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, leave)


def _exit_after_grace(code: int) -> None:
    time.sleep(SIGTERM_GRACE_SECONDS)
    import psutil

    children = psutil.Process().children(recursive=True)
    for child in children:
        child.terminate()
    _, alive = psutil.wait_procs(children, timeout=5)
    for child in alive:
        child.kill()
    print(f"driftloop: stopped {SIGTERM_GRACE_SECONDS} s after SIGTERM, the run unfinished", file=sys.stderr, flush=True)
    os._exit(code)


def _prepare_prefect() -> contextlib.AbstractContextManager:
    """Before prefect is imported: its per-task INFO lines are for the UI, not this terminal; and
    SIGTERM ends the run cleanly (``exit_on_sigterm``). Returns the context to run the flows in."""
    exit_on_sigterm()
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    if not os.environ.get("PREFECT_API_URL"):
        # A throwaway API in this process: no telemetry (its heartbeat races the run for the SQLite
        # file), and a first start on a new machine creates its database, which takes longer than 20 s.
        os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
        print("no PREFECT_API_URL: starting a local Prefect API for this run (about 15 s)", flush=True)
    from driftloop_flows.common import run_settings

    return run_settings()


def _outcome(state) -> int:
    """The exit code of a flow run's final state, with its one-line message on stderr."""
    if state.is_completed():
        return 0
    print(f"driftloop: error: {state.message}", file=sys.stderr)
    return 3 if state.name == "Quarantined" else 2 if state.is_failed() else 1


def _print_batches(rows: list[dict]) -> int:
    for row in rows:
        registered = "" if row["registered"] == "-" else f", registered {row['registered']}"
        what = row["message"] or f"{row['drift']}, {row['performance']}, decision {row['decision']}{registered}"
        print(f"{row['batch']}: {row['validation']}; {what}")
    kinds = {row["validation"] for row in rows}
    return 2 if "FAILED" in kinds else 3 if "QUARANTINED" in kinds else 0


def cmd_run_bootstrap(args) -> int:
    load_config(args.config)  # a bad config is one line now, not after starting an API
    local = _prepare_prefect()
    from driftloop_flows.bootstrap import bootstrap

    with local:
        state = bootstrap(config_path=str(args.config), replace_champion=args.replace_champion, return_state=True)
    if state.is_completed():
        ref = state.result()
        print(f"{ref.name} v{ref.version} is the champion ({ref.tags.get('driftloop.data_window', '')})")
    return _outcome(state)


def cmd_run_monitor(args) -> int:
    from driftloop import data

    load_config(args.config)  # before starting anything: the config, then the ids
    if args.force and not args.batch_ids:
        raise DriftloopError("--force processes named batches again: give their ids, e.g. "
                             "`driftloop run monitor 2026-02-03 --force` (without ids, only new batches are taken)")
    for batch_id in args.batch_ids:
        data.check_batch_id(batch_id)
    local = _prepare_prefect()
    from driftloop_flows.monitor import monitor, summarize

    inline = not args.retrain_on_server
    with local:
        if not args.batch_ids:  # every batch not done yet, oldest first
            state = monitor(config_path=str(args.config), retrain_inline=inline, return_state=True)
            if state.is_completed() and not state.result():
                print(f"no new batch in {load_config(args.config).data.incoming}")
            return _outcome(state) or _print_batches(state.result())
        rows = []
        for batch_id in args.batch_ids:
            state = monitor(batch_id=batch_id, config_path=str(args.config), retrain_inline=inline, force=args.force,
                            return_state=True)
            rows.append({"batch": batch_id} | summarize(state))
    return _print_batches(rows)


def cmd_run_backfill(args) -> int:
    load_config(args.config)
    if args.end < args.start:  # before a Prefect API is started for nothing
        raise DriftloopError(f"--end {args.end} is before --start {args.start}; swap them")
    local = _prepare_prefect()
    from driftloop_flows.backfill import backfill

    with local:
        state = backfill(start=args.start, end=args.end, config_path=str(args.config),
                         retrain_inline=not args.retrain_on_server, return_state=True)
    return _outcome(state) or _print_batches(state.result())


def cmd_run_retrain(args) -> int:
    from driftloop import data

    cfg = load_config(args.config)
    as_of = args.as_of or max(data.logged_batches(cfg.data), default=None)
    if as_of is None:
        raise DriftloopError(f"nothing monitored yet in {cfg.data.predictions}: run `driftloop run monitor` first")
    data.check_as_of(cfg.data, as_of)
    local = _prepare_prefect()
    from driftloop_flows.retrain import retrain

    with local:
        state = retrain(as_of=as_of, trigger="manual", reasons=[args.reason] if args.reason else [],
                        config_path=str(args.config), return_state=True)
    if state.is_completed():
        result = state.result()
        print(f"{cfg.registry.model_name} {result.summary}: {result.why or 'already registered for this trigger'}")
    return _outcome(state)


def _date(text: str):
    from datetime import date

    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _batches(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of batches; give 1 or more")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    # --config is accepted before or after the command: every parser knows it, none sets a default.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, default=argparse.SUPPRESS,
                        help="config file (default: $DRIFTLOOP_CONFIG, else driftloop.yaml)")
    # The description is the module docstring's first paragraph, whole: a help text never stops mid-sentence.
    parser = argparse.ArgumentParser(prog="driftloop", description=" ".join(__doc__.split("\n\n")[0].replace("``", "").split()), parents=[common])
    sub = parser.add_subparsers(dest="command", required=True)

    def add(group, name, **kw):  # a command's own --help opens with what the command list says of it
        return group.add_parser(name, parents=[common], description=kw.get("help"), **kw)

    run = add(sub, "run", help="run the loop's flows on your config (real Prefect flow runs)").add_subparsers(
        dest="flow", required=True)
    bootstrap = add(run, "bootstrap", help="train the first champion on data.reference")
    bootstrap.add_argument("--replace-champion", action="store_true",
                           help="replace a champion already registered, with no review (recorded in the audit trail)")
    bootstrap.set_defaults(run=cmd_run_bootstrap)
    monitor = add(run, "monitor", help="monitor the given batches, or every batch in data.incoming not done yet (oldest first)")
    monitor.add_argument("batch_ids", nargs="*", metavar="BATCH_ID", help="YYYY-MM-DD; default: every new batch")
    monitor.add_argument("--force", action="store_true", help="process the named batches again, though the ledger has them as done")
    monitor.set_defaults(run=cmd_run_monitor)
    backfill = add(run, "backfill", help="monitor every batch whose id falls from --start to --end")
    backfill.add_argument("--start", type=_date, required=True)
    backfill.add_argument("--end", type=_date, required=True)
    backfill.set_defaults(run=cmd_run_backfill)
    for runner in (monitor, backfill):
        runner.add_argument("--retrain-on-server", action="store_true",
                            help="leave retraining to the server's automation instead of retraining in this process")
    retrain = add(run, "retrain", help="fit a version on the latest labelled batches and put it through the gate")
    retrain.add_argument("--as-of", default=None, help="YYYY-MM-DD (default: the newest monitored batch)")
    retrain.add_argument("--reason", default="", help="why, recorded on the version")
    retrain.set_defaults(run=cmd_run_retrain)

    add(sub, "status", help="list model versions with their aliases and lineage").set_defaults(run=cmd_status)

    promote = add(sub, "promote", help="approve a version: the champion alias moves to it")
    promote.add_argument("version", help="the version to make the champion (driftloop status lists them)")
    promote.add_argument("--reviewer", default=getpass.getuser(), help="who approves (default: your user name)")
    promote.add_argument("--comment", default="", help="why, for the audit trail")
    promote.add_argument("--override", action="store_true",
                         help="promote a version that is not the challenger, failed the gate, or is older than the champion (needs --reason)")
    promote.add_argument("--reason", default="", help="written reason for --override, recorded on the version")
    promote.set_defaults(run=cmd_promote)

    reject = add(sub, "reject", help="reject a challenger: it is tagged and loses the challenger alias")
    reject.add_argument("version", help="the version to reject (the challenger, usually)")
    reject.add_argument("--reason", required=True, help="why, for the audit trail")
    reject.add_argument("--reviewer", default=getpass.getuser())
    reject.set_defaults(run=cmd_reject)

    rollback = add(sub, "rollback", help="champion back to the version it replaced")
    rollback.add_argument("--reason", required=True, help="why, for the audit trail")
    rollback.add_argument("--reviewer", default=getpass.getuser())
    rollback.set_defaults(run=cmd_rollback)

    pin = add(sub, "pin", help="record a version's files as they are now as the only ones it may be loaded from "
                                "(for a version registered before driftloop pinned its files)")
    pin.add_argument("version", help="the version whose files to pin")
    pin.add_argument("--reason", required=True, help="what you checked, for the audit trail")
    pin.add_argument("--reviewer", default=getpass.getuser())
    pin.set_defaults(run=cmd_pin)

    history = add(sub, "history", help="every alias move: who, when, from which version to which, and why; "
                                        "--metrics: the model's monitoring trend, a batch per line")
    history.add_argument("--metrics", action="store_true", help="each monitored batch's metrics, intervals, drift and decision")
    history.add_argument("--last", type=_batches, default=30, help="with --metrics: the newest N batches (default 30)")
    history.set_defaults(run=cmd_history)

    report = add(sub, "report", help="write the model's page (status, trends, newest drift, versions) as one offline HTML file")
    report.add_argument("--out", type=Path, default=Path("model.html"), help="where to write it (default: model.html)")
    report.add_argument("--last", type=_batches, default=30, help="the newest N monitored batches in the trends (default 30)")
    report.set_defaults(run=cmd_report)

    metrics = add(sub, "serve-metrics", help="serve the monitoring history as Prometheus driftloop_* metrics")
    metrics.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)")
    metrics.add_argument("--port", type=int, default=METRICS_PORT, help=f"port (default: {METRICS_PORT})")
    metrics.set_defaults(run=cmd_serve_metrics)

    serve = add(sub, "serve", help="answer HTTP scoring requests with the champion, logging each one as the loop's next batch")
    serve.add_argument("--host", default=None, help="address to listen on (default: serve.host, 127.0.0.1: this machine only)")
    serve.add_argument("--port", type=int, default=None, help=f"port (default: serve.port, {SERVE_PORT})")
    serve.add_argument("--workers", type=int, default=None, help="server processes sharing the port (default: serve.workers, 1)")
    serve.set_defaults(run=cmd_serve)
    add(sub, "close-periods", help="write every ended period of the request log as its batch, and posted feedback as label files "
                                  "(the server does it itself every serve.poll_seconds)").set_defaults(run=cmd_close_periods)

    validate = add(sub, "validate", help="check and validate a batch file against the suite (nothing is moved)")
    validate.add_argument("path", type=Path, help="the batch file (parquet or CSV); named YYYY-MM-DD, its rows are checked against that period")
    validate.set_defaults(run=cmd_validate)

    suite = add(sub, "suite", help="expectation suites").add_subparsers(dest="suite_command", required=True)
    init = add(suite, "init", help="profile the reference data into a GX suite to edit")
    init.add_argument("--out", type=Path, default=None, help="where to write it (default: validation.suite)")
    init.add_argument("--margin", type=float, default=0.1, help="widen numeric ranges by this share of their span")
    init.add_argument("--force", action="store_true", help="overwrite an existing suite")
    init.set_defaults(run=cmd_suite_init)

    quarantine = add(sub, "quarantine", help="batches that failed validation").add_subparsers(dest="quarantine_command", required=True)
    add(quarantine, "list", help="quarantined batches and why").set_defaults(run=cmd_quarantine_list)
    release = add(quarantine, "release", help="re-validate a batch and put it back in incoming if it passes")
    release.add_argument("batch", help="the quarantined batch's id (driftloop quarantine list shows them)")
    release.set_defaults(run=cmd_quarantine_release)

    add(sub, "demo-data", help="write the demo scenario's reference, batches and labels").set_defaults(run=cmd_demo_data)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.config = Path(getattr(args, "config", None) or os.environ.get("DRIFTLOOP_CONFIG") or "driftloop.yaml")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # read when mlflow configures its loggers, at import
    try:
        return args.run(args)
    except DriftloopError as exc:
        print(f"driftloop: error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
