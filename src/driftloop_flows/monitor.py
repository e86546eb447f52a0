"""Monitor one batch: validate, score, evaluate matured labels, measure drift, decide."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_progress_artifact, create_table_artifact, update_progress_artifact
from prefect.exceptions import MissingResult
from prefect.runtime import flow_run

from driftloop import charts, data, drift, evaluation, execution, requestlog, rootcause, stages, training, validation
from driftloop.config import Config, load_config
from driftloop.errors import BatchRejected, DataError, DriftloopError
from driftloop.history import History
from driftloop.ledger import DONE, Ledger, claim_owner
from driftloop.policy import GateFailure, decide_retraining
from driftloop.redaction import redact
from driftloop.registry import CHAMPION, LoadedModel, Registry
from driftloop.report import MonitorReport
from driftloop_flows.common import compute_task, fails_cleanly, freeze_what_is_loaded, io_task, load_model
from driftloop_flows.events import announce_degradation, announce_overdue, announce_watch
from driftloop_flows.retrain import RetrainResult, retrain

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class MonitorOutcome:
    report: MonitorReport
    monitor_run_id: str
    retrain: RetrainResult | None
    retrain_error: str | None = None


def summarize(state) -> dict[str, str]:
    """One line of a run table (demo, backfill) from the final state of a monitor run."""
    if not state.is_completed():
        verdict = "QUARANTINED" if "quarantined" in (state.message or "") else "FAILED"
        return {"validation": verdict, "drift": "-", "performance": "-", "decision": "-", "registered": "-",
                "message": state.message or ""}
    try:
        outcome: MonitorOutcome | None = state.result()
    except MissingResult:  # a state read back from the API whose result was not kept: the report has it
        return {"validation": "done", "drift": "-", "performance": "-", "decision": "-", "registered": "-",
                "message": "its outcome is in its monitor report (data.reports) and its MLflow run"}
    if outcome is None:
        return {"validation": "already processed", "drift": "-", "performance": "-", "decision": "-", "registered": "-", "message": ""}
    report = outcome.report
    registered = "-"
    if outcome.retrain is not None:
        registered = outcome.retrain.summary
    elif outcome.retrain_error:
        registered = "retrain failed"
    return {"validation": "passed" if report.validation.startswith("passed") else report.validation,
            "drift": report.drift_verdict, "performance": report.performance_summary,
            "decision": report.decision.action, "registered": registered, "message": ""}


def _record(cfg: Config, batch_id: str, state: str, detail: str, owner: str) -> None:
    """Record the batch's new state in the ledger, renewing this run's claim on it (each step renews the lease)."""
    ledger = Ledger(cfg.ledger)
    if ledger.claim(batch_id, owner, timedelta(minutes=cfg.ledger.claim_lease_minutes)) is None:
        holder = ledger.holder(batch_id)
        raise DriftloopError(f"batch {batch_id} was taken over by {holder.owner if holder else 'another run'} after this run's "
                             f"claim lapsed; raise ledger.claim_lease_minutes ({cfg.ledger.claim_lease_minutes}) above a batch's run time")
    ledger.record(batch_id, state, detail)


@io_task(name="claim batch")
def claim_batch(cfg: Config, batch_id: str, owner: str, force: bool) -> bool:
    """Check the batch id and the file contract (``check_files``), then take the batch for this run in
    one conditional write to the ledger: of two runs started for it at once (two workers, a schedule
    and a person), exactly one processes it and the other ends saying who has it. A batch already
    done is left alone unless ``force``."""
    _check_files(cfg, batch_id)
    logger = get_run_logger()
    ledger = Ledger(cfg.ledger)
    if ledger.claim(batch_id, owner, timedelta(minutes=cfg.ledger.claim_lease_minutes)) is None:
        held = ledger.holder(batch_id)
        logger.info("batch %s is being processed by %s (claimed %s, lease until %s); leaving it to that run", batch_id,
                    held.owner if held else "another run", held.claimed_at if held else "-", held.expires_at if held else "-")
        return False
    done = ledger.state(batch_id)
    if done in DONE and not force:
        ledger.release(batch_id, owner)
        logger.info("batch %s is already %s in the ledger; run with force=True to process it again", batch_id, done)
        return False
    return True


@io_task(name="release batch")
def release_batch(cfg: Config, batch_id: str, owner: str) -> None:
    Ledger(cfg.ledger).release(batch_id, owner)


@io_task(name="finish batch")
def finish_batch(cfg: Config, batch_id: str, owner: str, detail: str) -> None:
    """The batch is evaluated: say so in the ledger and let go of it (a retrain it asks for runs unclaimed)."""
    _record(cfg, batch_id, "evaluated", detail, owner)
    Ledger(cfg.ledger).release(batch_id, owner)


def _check_files(cfg: Config, batch_id: str | None) -> None:
    """The file contract, before anything is read or written: the batch id, the label files and
    (when every new batch is taken) the batch files' names and the expectation suite. A run of one
    batch checks its suite in `receive batch`, while its champion scores."""
    if batch_id is not None:
        data.check_batch_id(batch_id)
    data.check_folders(cfg.data, incoming=batch_id is None)
    if batch_id is None:
        validation.check_suite(cfg.validation, cfg.columns)


@io_task(name="check file names")
def check_files(cfg: Config, batch_id: str | None) -> None:
    _check_files(cfg, batch_id)


@io_task(name="connect to Dask")
def connect_cluster(cfg: Config) -> str:
    return execution.connect(cfg.execution)


@io_task(name="find batches")
def find_batches(cfg: Config, start: date | None = None, end: date | None = None, new_only: bool = True) -> list[str]:
    """Ids of the batches in ``data.incoming`` (and, for a range, those the ledger already finished and
    moved, like a quarantined one), oldest first; ``new_only``: not done yet. Served periods that have
    ended are written as batches first, so a monitor finds them even when no server is running."""
    for period in requestlog.close_periods(cfg.data, cfg.columns, cfg.serve):
        get_run_logger().info("served period %s: %d rows -> %s", period.batch_id, period.rows, period.batch or period.note)
    states = Ledger(cfg.ledger).states()
    ids = set(data.incoming_batches(cfg.data)) | (set() if new_only else set(states))
    inside = lambda b: (start is None or date.fromisoformat(b) >= start) and (end is None or date.fromisoformat(b) <= end)  # noqa: E731
    return [b for b in sorted(ids) if inside(b) and not (new_only and states.get(b) in DONE)]


def monitor_each(batch_ids: list[str], config_path: str, retrain_inline: bool, title: str) -> list[dict]:
    """One monitor subflow run per batch, oldest first, with a progress bar and a summary table on the parent run."""
    logger = get_run_logger()
    progress = create_progress_artifact(progress=0.0, key="monitor-progress", description=title)
    rows = []
    for done, batch_id in enumerate(batch_ids, start=1):
        state = monitor(batch_id=batch_id, config_path=config_path, retrain_inline=retrain_inline, return_state=True)
        rows.append({"batch": batch_id} | summarize(state))
        update_progress_artifact(progress, progress=100.0 * done / len(batch_ids))
        logger.info("%d/%d %s: %s", done, len(batch_ids), batch_id, rows[-1]["decision"] if state.is_completed() else rows[-1]["validation"])
    create_table_artifact(key="monitor-summary", table=rows, description=title)
    return rows


def _missing_before(cfg: Config, batch_id: str) -> tuple[str, ...]:
    """Batches the cadence expected before this one that never arrived (in the ledger or incoming)."""
    found = data.missing_batches(cfg.data, set(Ledger(cfg.ledger).states()) | set(data.incoming_batches(cfg.data)), batch_id)
    if found:
        get_run_logger().warning("%d batch(es) expected by data.cadence %s before %s never arrived: %s", len(found), cfg.data.cadence,
                                 batch_id, ", ".join(found[:5]) + (" ..." if len(found) > 5 else ""))
    return found


@io_task(name="read batch")
def read_batch(cfg: Config, batch_id: str):
    """The batch as delivered, checked against the file contract and its period, the batches the
    cadence expected before it that never arrived, and, for a served period, how its requests went."""
    gaps = _missing_before(cfg, batch_id)
    path = data.batch_path(cfg.data, batch_id)
    if not path.exists():
        data.read_batch(cfg.data, batch_id)  # nothing to quarantine: its error says where it looked
    try:
        frame = data.check_batch(data.read_table(path), cfg.columns, path)
        data.check_period(frame, cfg.columns, cfg.data, batch_id, path)
    except DataError as exc:
        # An unreadable or malformed batch is kept, byte for byte, in quarantine with the reason beside it.
        kept = _quarantine(cfg, batch_id, str(exc), {"batch_id": batch_id, "passed": False, "error": str(exc)},
                           f"# Batch {batch_id}: QUARANTINED before validation\n\n{exc}\n")
        raise BatchRejected(f"{exc} (quarantined: {kept.path}{_kept_note(kept)})") from None
    served = requestlog.served_period(cfg.data, batch_id)
    return frame, gaps, None if served is None else evaluation.served_health(served, cfg.serve)


@io_task(name="receive batch")
def receive_batch(cfg: Config, batch_id: str, rows: int, owner: str) -> None:
    """The suite is checked before the batch is received: a suite error is the config's, never a batch's."""
    validation.check_suite(cfg.validation, cfg.columns)
    _record(cfg, batch_id, "received", f"{rows} rows from {data.batch_path(cfg.data, batch_id).name}", owner)


@compute_task(name="validate batch")
def validate_batch(cfg: Config, frame, batch_id: str) -> validation.ValidationReport:
    return validation.validate(frame, cfg.validation, batch_id)


def _quarantine(cfg: Config, batch_id: str, detail: str, report: dict, markdown: str, page: str | None = None) -> data.QuarantinedBatch:
    """Move the batch to quarantine and say so in the ledger; if the ledger cannot be written, the
    file goes back to incoming: it is always where the ledger says it is."""
    kept = data.quarantine(cfg.data, batch_id, report, markdown, page)
    try:
        Ledger(cfg.ledger).record(batch_id, "quarantined", detail)
    except Exception:
        data.unquarantine(cfg.data, kept)
        raise
    return kept


def _kept_note(kept: data.QuarantinedBatch) -> str:
    return f"; the earlier quarantined file of this id is kept as {kept.earlier.name}" if kept.earlier else ""


@io_task(name="quarantine batch")
def quarantine_batch(cfg: Config, report: validation.ValidationReport) -> data.QuarantinedBatch:
    return _quarantine(cfg, report.batch_id, report.summary, report.to_dict(), report.to_markdown(), report.to_html())


# Not a cached task: one model call per 250k rows costs less than hashing the batch for a key and
# storing the scored frame as a result, which would also grow the result store by a batch a day.
@compute_task(name="score batch")
def score_batch(cfg: Config, champion: LoadedModel, frame) -> execution.ScoredBatch:
    """Score the batch and summarise its features and outputs for the drift tests: in process, or in
    partitions on the Dask cluster of ``execution.dask_address``."""
    profile = champion.profile
    outputs = profile.known((training.PROBABILITY, training.PREDICTION))
    scored = execution.score_batch(champion.model, frame, cfg.columns, cfg.evaluation.decision_threshold, profile,
                                   (*cfg.columns.features, *outputs), cfg.execution)
    if scored.partitions > 1:
        get_run_logger().info("scored %d rows in %d partitions on %s", len(frame), scored.partitions, scored.where)
    return scored


@io_task(name="append prediction log")
def log_predictions(cfg: Config, batch_id: str, frame, outputs, version: str, owner: str, validated: str) -> None:
    """The batch passed validation (``validated``, its summary) and was scored: its rows into the prediction log."""
    _record(cfg, batch_id, "validated", validated, owner)
    data.write_predictions(cfg.data, batch_id, training.log_rows(frame, outputs, cfg.columns).assign(model_version=version))
    _record(cfg, batch_id, "scored", f"champion v{version}", owner)


def _label_horizon(cfg: Config, batch_id: str) -> tuple[list[str], list[str]]:
    """The batches logged by ``batch_id``'s day, this one included, and the newest
    ``2 * evaluation.label_deadline_batches`` of them: every prediction turns overdue inside that horizon."""
    as_of = date.fromisoformat(batch_id)
    logged = sorted({b for b in data.logged_batches(cfg.data) if date.fromisoformat(b) <= as_of} | {batch_id})
    return logged, logged[-2 * cfg.evaluation.label_deadline_batches:]


@io_task(name="match new label files")
def keep_label_matches(cfg: Config, batch_id: str) -> None:
    """New label files matched against the batches logged before this one, while it is read, validated
    and scored (Arrow's hashing leaves the interpreter to the imports and GX): `match labels` then has
    this batch's own pairs left. What cannot be matched here is reported there, once the batch is in."""
    _, horizon = _label_horizon(cfg, batch_id)
    try:
        data.keep_label_matches(cfg.data, cfg.columns, [b for b in horizon if b != batch_id], date.fromisoformat(batch_id))
    except DriftloopError as exc:
        get_run_logger().info("label files left for `match labels`: %s", exc)


@io_task(name="match labels")
def match_labels(cfg: Config, batch_id: str) -> tuple[evaluation.LabelStatus, pd.DataFrame]:
    """The label status of the horizon's batches and the matured window, from one match of the label
    files (``_matches``)."""
    matches = _matches(cfg, batch_id)
    return _label_status(cfg, batch_id, matches), _matured_window(cfg, batch_id, matches)


def _matches(cfg: Config, batch_id: str) -> data.LabelMatches:
    """The logged predictions of the label horizon (``_label_horizon``), matched once against the label
    files: a run reads a bounded slice of the log (ids only) and of the label files however long the
    history grows. The label status and the matured window both read it."""
    as_of = date.fromisoformat(batch_id)
    logged, horizon = _label_horizon(cfg, batch_id)
    # Once batches have left the horizon, a label file from its first days labels them too: their ids
    # are not unknown, so only files from a deadline after its start are searched for unknown ids.
    unknown_from = (date.fromisoformat(horizon[0]) + timedelta(days=cfg.evaluation.label_deadline_batches * cfg.data.period_days)
                    if len(logged) > len(horizon) else None)
    return data.match_labels(cfg.data, cfg.columns, horizon, as_of, keep=cfg.evaluation.window_batches, unknown_from=unknown_from)


def _matured_window(cfg: Config, batch_id: str, matches: data.LabelMatches):
    """Logged predictions of the newest ``evaluation.window_batches`` batches whose labels have arrived:
    the columns evaluation reads, not the features."""
    columns, outputs = cfg.columns, training.output_columns(cfg.columns)
    groups = list(dict.fromkeys([*columns.segments, *cfg.evaluation.fairness_columns]))
    window = data.labelled_batches(cfg.data, columns, date.fromisoformat(batch_id), n_batches=cfg.evaluation.window_batches,
                                   columns=[columns.timestamp_column, *outputs, *groups], matches=matches)
    # Only what evaluation, the estimate and target drift read, the batch as a category: at 1M rows a
    # day, ids, timestamps and a batch id per row would hold 100 MB through evaluation.
    window = window[[data.PARTITION, columns.target, *outputs, *groups]].astype({data.PARTITION: "category"})
    return window[window[outputs].notna().all(axis=1)]  # rows that failed to score have nothing to evaluate


@compute_task(name="evaluate matured labels")
def evaluate_matured(cfg: Config, window, reference_metrics: dict) -> evaluation.PerformanceReport | None:
    if window.empty:
        return None
    return evaluation.evaluate_window(
        training.truth(window, cfg.columns),
        training.logged_output(window, cfg.columns),
        tuple(sorted(window[data.PARTITION].unique())),
        reference_metrics,
        cfg.evaluation,
        segments={c: window[c].array for c in cfg.columns.segments},
        fairness={c: window[c].array for c in cfg.evaluation.fairness_columns},
        task=cfg.columns.task,
        classes=cfg.columns.classes,
    )


def _label_status(cfg: Config, batch_id: str, matches: data.LabelMatches) -> evaluation.LabelStatus:
    """Coverage, latency and overdue labels of the batches ``matches`` covers."""
    deadline_days = cfg.evaluation.label_deadline_batches * cfg.data.period_days
    return evaluation.label_status(matches.arrivals, date.fromisoformat(batch_id), deadline_days,
                                   matches.batch_ids[0] if matches.batch_ids else None)


@compute_task(name="estimate performance")
def estimate(cfg: Config, champion: LoadedModel, scored, window, batch_id: str, reference_metrics: dict):
    """CBPE on this batch (no labels yet) and on the matured window (to compare with what was realized).
    Binary classifiers only: a regressor's or a multiclass model's profile has no calibration."""
    if champion.profile.calibration is None:
        return None, (), None
    calibration = evaluation.Calibration(*champion.profile.calibration)
    ev = cfg.evaluation
    run = lambda probability, label: evaluation.estimate_performance(  # noqa: E731
        probability, calibration, ev.decision_threshold, label, ev.n_bootstrap, ev.confidence,
        simulate_max_rows=ev.bootstrap_max_rows)
    current = run(scored[training.PROBABILITY].dropna().to_numpy(), batch_id)
    checks = tuple(
        evaluation.check_metric(m, current.metrics[m], current.intervals[m], reference_metrics.get(m), t, f"{batch_id} (estimated)")
        for m, t in ev.thresholds.items() if m in current.metrics
    )
    matured = run(window[training.PROBABILITY].to_numpy(), "matured window") if not window.empty else None
    return current, checks, matured


@compute_task(name="measure drift")
def measure_drift(cfg: Config, champion: LoadedModel, summary: drift.DriftSummary, window) -> tuple[drift.DriftReport, drift.DriftReport | None, drift.DriftReport | None]:
    """Features, predictions (both from the batch's ``summary``) and, on matured labels, the target, each a family of its own."""
    profile = champion.profile
    features = drift.test_summary(profile, summary, cfg.columns.features, cfg.drift)
    outputs = profile.known((training.PROBABILITY, training.PREDICTION))
    predictions = drift.test_summary(profile, summary, outputs, cfg.drift) if outputs else None
    has_target = (cfg.columns.target in profile.categorical or cfg.columns.target in profile.numeric) and not window.empty
    target = drift.detect_drift(profile, window, (cfg.columns.target,), cfg.drift) if has_target else None
    return features, predictions, target


@io_task(name="retrain history")
def retrain_history(cfg: Config, batch_id: str, newest_labelled: str | None) -> tuple[int | None, GateFailure | None]:
    """Batches since the newest retrain registered, running or only requested (a retrain the automation
    has not started yet holds the next one back exactly as a finished one does), and whether the newest
    registered one failed the gate, with how many labelled batches arrived after its holdout."""
    retrained = [v for v in Registry(cfg.registry).versions() if "driftloop.as_of" in v.tags]
    dates = [v.tags["driftloop.as_of"] for v in retrained]
    requested = Ledger(cfg.ledger).last_retrain_as_of()
    dates += [requested] if requested else []
    since = cfg.data.batches_between(date.fromisoformat(max(dates)), date.fromisoformat(batch_id)) if dates else None
    newest = max(retrained, key=lambda v: (v.tags["driftloop.as_of"], int(v.version)), default=None)
    if newest is None or newest.tags.get("driftloop.gate_verdict") != "failed":
        return since, None
    judged_on = newest.tags.get("driftloop.holdout_window", "").split("..")[-1] or newest.tags["driftloop.as_of"]
    newer = cfg.data.batches_between(date.fromisoformat(judged_on[:10]), date.fromisoformat(newest_labelled)) if newest_labelled else 0
    return since, GateFailure(newest.version, judged_on, max(newer, 0))


@io_task(name="ledger: request retrain")
def request_retrain(cfg: Config, trigger: str, batch_id: str, reasons: tuple[str, ...], monitor_run_id: str) -> bool:
    return Ledger(cfg.ledger).request_retrain(trigger, batch_id, reasons, monitor_run_id)


def task_seconds(point: int) -> dict[str, float]:
    """``seconds.<task>``: wall seconds of each task since ``point`` (summed over repeats), as MLflow metrics."""
    found: dict[str, float] = {}
    for stage in stages.since(point):
        key = "seconds." + re.sub(r"[^0-9A-Za-z_.-]+", "_", stage.name).strip("_")
        found[key] = found.get(key, 0.0) + stage.wall_seconds
    return found


@io_task(name="publish report")
def publish_report(cfg: Config, report: MonitorReport, checked: validation.ValidationReport, seconds: dict[str, float]) -> str:
    paths = [
        *data.write_report(cfg.data, report.batch_id, report.to_dict(), report.to_markdown()),
        *data.write_report(cfg.data, f"{report.batch_id}.validation", checked.to_dict(), checked.to_markdown(), checked.to_html()),
    ]
    return Registry(cfg.registry).log_monitor_run(
        report.batch_id,
        metrics=report.metrics() | seconds,
        params={"model_version": report.model_version, "decision": report.decision.action},
        artifacts=paths,
        tags={"batch_id": report.batch_id, "decision": report.decision.action, "drift_verdict": report.drift_verdict},
    )


@io_task(name="record history")
def record_history(cfg: Config, report: MonitorReport, run_id: str) -> None:
    """The run's figures into the monitoring history beside the ledger (a rerun replaces them)."""
    History(cfg.ledger, cfg.registry.model_name).record(report, run_id)


@compute_task(name="draw charts")
def draw_charts(cfg: Config, champion: LoadedModel, summary: drift.DriftSummary, report: MonitorReport) -> list[Path]:
    """The run's charts: its drifted columns, and the trends of the history that now holds it."""
    history = History(cfg.ledger, cfg.registry.model_name)
    return charts.monitor_charts(report, champion.profile, summary, history, cfg.reports, list(cfg.evaluation.thresholds),
                                 cfg.data.reports / f"{report.batch_id}.charts")


@io_task(name="log charts")
def log_charts(cfg: Config, run_id: str, paths: list[Path]) -> list[str]:
    Registry(cfg.registry).log_charts(run_id, paths)
    return [path.name for path in paths]


@io_task(name="publish artifacts")
def publish_artifacts(cfg: Config, report: MonitorReport, run_id: str, drawn: list[str]) -> None:
    """What a person reads on the flow run page of the Prefect UI."""
    registry = Registry(cfg.registry)
    page = f"{report.batch_id}.validation.html"
    url = registry.ui_url(run_id=run_id)
    if url:  # the MLflow UI serves the page over http; a browser blocks file:// links from an http page
        link = f"[MLflow run]({url}); validation page: [{page}]({registry.ui_url(run_id=run_id, artifact=page)})"
        if drawn:
            link += "; charts: " + ", ".join(f"[{name}]({registry.ui_url(run_id=run_id, artifact='charts/' + name)})" for name in drawn)
    else:
        link = f"MLflow run `{run_id}` in {redact(cfg.registry.tracking_uri)}; validation page: `{cfg.data.reports / page}`"
        if drawn:
            link += f"; charts ({', '.join(drawn)}): `{cfg.data.reports / (report.batch_id + '.charts')}` and the run's `charts/`"
    create_markdown_artifact(
        key="monitor-report",
        markdown=f"{report.to_markdown()}\n{link}\n",
        description=f"batch {report.batch_id}: {report.drift_verdict}, {report.performance_summary}, {report.decision.action}",
    )
    columns = ("column", "test", "statistic", "p_adjusted", "alpha", "method", "distance", "max_distance", "drifted", "why")
    rows = [asdict(c) | {"why": c.why} for c in report.all_drift]
    # Rounded for people: the report JSON (data.reports, and the MLflow run) keeps full precision.
    shown = lambda v: float(f"{v:.4g}") if isinstance(v, float) else v  # noqa: E731
    create_table_artifact(key="feature-drift", table=[{c: shown(r[c]) for c in columns} for r in rows],
                          description=f"drift of batch {report.batch_id} against the champion's reference")


def _run_name() -> str:
    return f"monitor {flow_run.parameters.get('batch_id') or 'new batches'}"


# Persisted, so a parent run (backfill, the scheduled run) can read each batch's outcome back even
# when its state comes from the API.
@flow(name="monitor", flow_run_name=_run_name, persist_result=True)
@fails_cleanly
def monitor(
    batch_id: str | None = None, config_path: str = "driftloop.yaml", retrain_inline: bool = True, force: bool = False,
) -> MonitorOutcome | list[dict] | None:
    """Validate, score, evaluate and check drift for one batch; without ``batch_id`` (the scheduled
    deployment, `driftloop run monitor`), for every batch in ``data.incoming`` not done yet, oldest
    first, each as a subflow run: a schedule that checks daily takes batches of any cadence, and a
    batch an outage or a crash left behind is taken by the next run.

    When the policy says retrain, a `driftloop.model.degraded` event is emitted; with
    ``retrain_inline`` the retrain flow also runs here as a subflow (the demo and tests),
    otherwise the automation declared in prefect.yaml starts the retrain deployment.
    A batch the ledger has as evaluated or quarantined is not processed again unless ``force``.
    """
    logger = get_run_logger()
    started = stages.mark()
    cfg = load_config(config_path)
    if batch_id is None:
        check_files(cfg, None)
        waiting = find_batches(cfg)
        if not waiting:
            logger.info("no new batch in %s", cfg.data.incoming)
            return []
        return monitor_each(waiting, config_path, retrain_inline, f"{len(waiting)} new batch(es) in {cfg.data.incoming}")
    owner = claim_owner(f"monitor {flow_run.id}")
    if not claim_batch(cfg, batch_id, owner, force):
        return None
    try:
        return _monitor_batch(cfg, batch_id, config_path, retrain_inline, started, owner)
    except BaseException:
        try:
            release_batch(cfg, batch_id, owner)  # unfinished: the next run may take it at once
        except Exception as unreleased:  # the run's own error is the one to show; the claim expires
            get_run_logger().warning("batch %s stays claimed until its claim expires: %s", batch_id, unreleased)
        raise
    finally:
        freeze_what_is_loaded()


def _monitor_batch(cfg: Config, batch_id: str, config_path: str, retrain_inline: bool, started: int, owner: str) -> MonitorOutcome:
    """The monitor flow's work on one batch its run has claimed."""
    logger = get_run_logger()
    if cfg.execution.dask_address:
        connect_cluster(cfg)
    # The champion loads (the MLflow store and skops imports, about 2.5 s in a new process) while the
    # batch is read and new label files are matched, then scores while GX is imported and the batch
    # validated. Imports hold the interpreter, so they take turns: the model's first, because scoring
    # (native code) overlaps the GX import and reading does not. Its output is used, and the
    # prediction log written, only for a batch that passed.
    loading = load_model.submit(cfg, CHAMPION)
    prematching = keep_label_matches.submit(cfg, batch_id)
    frame, gaps, served = read_batch(cfg, batch_id)
    scoring = score_batch.submit(cfg, loading, frame)
    loading.wait()
    receive_batch(cfg, batch_id, len(frame), owner)

    checked = validate_batch(cfg, frame, batch_id)
    if not checked.passed:
        kept = quarantine_batch(cfg, checked)
        raise BatchRejected(f"batch {batch_id} quarantined, {checked.summary}; report: {kept.report_markdown}{_kept_note(kept)}")
    for warning in checked.warnings:
        logger.warning("validation warning on %s: %s %s", warning.column, warning.expectation, warning.detail)

    champion = loading.result()  # first: a missing champion says so, not that scoring lacked its input
    scoring = scoring.result()
    log_predictions(cfg, batch_id, frame, scoring.outputs, champion.ref.version, owner, checked.summary)
    rows, summary = len(frame), scoring.drift
    health = evaluation.service_health(scoring.outputs["scored"].to_numpy(), scoring.seconds, scoring.model_calls,
                                       cfg.evaluation.max_failed_share, batch_id, scoring.where, scoring.partitions)
    scored = scoring.outputs[[*training.output_columns(cfg.columns), "scored"]]
    del frame, scoring  # logged and summarised: the batch's features are not held through evaluation
    data.release_freed_memory()

    prematching.wait()
    labels, window = match_labels(cfg, batch_id)
    evaluating = evaluate_matured.submit(cfg, window, champion.reference_metrics)
    estimating = estimate.submit(cfg, champion, scored, window, batch_id, champion.reference_metrics)
    features, predictions, target = measure_drift(cfg, champion, summary, window)
    performance = evaluating.result()
    estimated, estimated_checks, estimated_matured = estimating.result()
    since, gate_failure = retrain_history(cfg, batch_id, performance.window[-1] if performance and performance.window else None)
    decision = decide_retraining(features, performance, predictions, target, since, cfg.policy,
                                 estimated=estimated_checks, health=health, batch_id=batch_id, gate_failure=gate_failure,
                                 served=served)
    cause = rootcause.explain(features, predictions, performance, tuple(c.metric for c in estimated_checks if c.breached),
                              champion.profile.importance)
    report = MonitorReport(batch_id, champion.ref.version, rows, checked.summary, features, predictions, target,
                           performance, decision, labels, estimated, estimated_checks, estimated_matured,
                           health, cause, gaps, served)
    run_id = publish_report(cfg, report, checked, task_seconds(started))
    record_history(cfg, report, run_id)
    # A picture that could not be drawn or logged never fails the batch: its report and history are written.
    charted = draw_charts(cfg, champion, summary, report, return_state=True)
    drawn = charted.result() if charted.is_completed() else []
    logged = log_charts(cfg, run_id, drawn, return_state=True) if drawn else None
    publish_artifacts(cfg, report, run_id, logged.result() if logged is not None and logged.is_completed() else [])
    finish_batch(cfg, batch_id, owner, f"{report.drift_verdict}; decision {decision.action}")
    logger.info("batch %s: %s, %s, decision %s", batch_id, report.drift_verdict, report.performance_summary, decision.action)
    for reason in decision.reasons:
        logger.info("  reason: %s", reason)

    if decision.action in ("watch", "hold"):
        announce_watch(cfg, report, run_id)
    if labels is not None and labels.overdue:
        announce_overdue(cfg, report, run_id)
    if not decision.retrain:
        return MonitorOutcome(report, run_id, None)
    trigger = f"monitor:{batch_id}"
    if request_retrain(cfg, trigger, batch_id, decision.reasons, run_id):
        announce_degradation(cfg, report, trigger, run_id, config_path, inline=retrain_inline)
    else:  # a rerun of this batch: its retrain was asked for once already
        logger.info("a retrain for %s was already requested (ledger); not asking again", batch_id)
    if not retrain_inline:
        return MonitorOutcome(report, run_id, None)
    state = retrain(
        as_of=batch_id, trigger=trigger, reasons=list(decision.reasons),
        monitor_run_id=run_id, config_path=config_path, return_state=True,
    )
    if state.is_completed():
        return MonitorOutcome(report, run_id, state.result())
    # The batch itself was monitored; a retrain that could not run is reported, not fatal.
    logger.error("retrain for %s did not complete: %s", batch_id, state.message)
    return MonitorOutcome(report, run_id, None, state.message)
