"""The whole loop through real Prefect flow runs, a real MLflow store and real GX validation."""

from __future__ import annotations

import time
from dataclasses import dataclass
import pandas as pd
import pytest
from mlflow import MlflowClient
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.settings import PREFECT_API_URL

from driftloop import cli, data
from driftloop.config import Config, load_config
from driftloop.demo import DayPlan, generate
from driftloop.history import History
from driftloop.ledger import Ledger
from driftloop.registry import CHALLENGER, CHAMPION, Registry
from driftloop.report import detection_timeline
from driftloop_flows.backfill import backfill
from driftloop_flows.bootstrap import bootstrap
from driftloop_flows.events import WATCH
from driftloop_flows.monitor import monitor
from driftloop_flows.retrain import CHALLENGER_REGISTERED, retrain
from tests.conftest import INLINE_RETRAIN_DAYS, stored_events, write_project


@dataclass
class Scenario:
    config_path: str
    cfg: Config
    days: tuple[DayPlan, ...]
    states: dict  # batch_id -> final state of its monitor run


@pytest.fixture(scope="module")
def scenario(tmp_path_factory) -> Scenario:
    path = write_project(tmp_path_factory.mktemp("project"), reports={"charts": True})
    cfg = load_config(path)
    days = generate(cfg.demo, cfg.data).days
    assert bootstrap(config_path=str(path), return_state=True).is_completed()
    states = {d.batch_id: monitor(batch_id=d.batch_id, config_path=str(path), return_state=True) for d in days}
    return Scenario(str(path), cfg, days, states)


def _task_run_states(flow_run_id, timeout_s: float = 15.0) -> dict[str, str]:
    """Task name -> state name. Task run states reach the server as events, written a moment after the run ends."""
    deadline = time.monotonic() + timeout_s
    with get_client(sync_client=True) as client:
        while True:
            runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
            if all(r.state is not None for r in runs) or time.monotonic() > deadline:
                return {r.name.rsplit("-", 1)[0]: r.state.name if r.state else "unknown" for r in runs}
            time.sleep(0.2)


def _outcome(scenario: Scenario, day: DayPlan):
    return scenario.states[day.batch_id].result()


def test_bootstrap_makes_version_1_the_champion(scenario):
    champion = Registry(scenario.cfg.registry).by_alias(CHAMPION)
    assert champion is not None and champion.version == "1"
    assert champion.tags["driftloop.trigger"] == "bootstrap"


def test_the_quality_incident_is_quarantined_with_its_report_and_the_run_fails(scenario):
    bad = next(d for d in scenario.days if d.quality_incident)
    state = scenario.states[bad.batch_id]
    assert state.is_failed() and "quarantined" in state.message
    quarantine = scenario.cfg.data.quarantine
    assert (quarantine / f"{bad.batch_id}.parquet").exists()
    assert not data.batch_path(scenario.cfg.data, bad.batch_id).exists()
    assert "monthly_charges" in (quarantine / f"{bad.batch_id}.validation.md").read_text()


def test_every_other_day_completes_and_is_in_the_prediction_log_once(scenario):
    good = [d for d in scenario.days if not d.quality_incident]
    assert all(scenario.states[d.batch_id].is_completed() for d in good)
    log = data.read_predictions(scenario.cfg.data, data.logged_batches(scenario.cfg.data))
    assert sorted(log[data.PARTITION].unique()) == [d.batch_id for d in good]
    assert not log[scenario.cfg.columns.id_column].duplicated().any()


def test_each_monitor_run_records_in_mlflow_where_its_time_went(scenario):
    day = next(d for d in scenario.days if scenario.states[d.batch_id].is_completed())
    run = MlflowClient(scenario.cfg.registry.tracking_uri).get_run(_outcome(scenario, day).monitor_run_id)
    seconds = {k: v for k, v in run.data.metrics.items() if k.startswith("seconds.")}
    assert {"seconds.read_batch", "seconds.validate_batch", "seconds.score_batch", "seconds.measure_drift"} <= set(seconds)
    assert seconds["seconds.validate_batch"] > 0 and all(v >= 0 for v in seconds.values())


def test_the_history_holds_each_evaluated_batch_once_with_the_figures_of_its_report(scenario, capsys):
    history = History(scenario.cfg.ledger, scenario.cfg.registry.model_name)
    good = [d for d in scenario.days if scenario.states[d.batch_id].is_completed()]
    runs = {r.batch_id: r for r in history.runs()}
    assert sorted(runs) == [d.batch_id for d in good]  # the quarantined day has no figures
    values = {(m.batch_id, m.source, m.segment, m.metric): m for m in history.metrics(segment=None)}
    drift = {(d.batch_id, d.family, d.column): d for d in history.drift()}
    for day in good:
        outcome = _outcome(scenario, day)
        report, run = outcome.report, runs[day.batch_id]
        assert (run.decision, run.reasons, run.monitor_run_id) == (report.decision.action, report.decision.reasons, outcome.monitor_run_id)
        assert run.drift_share == pytest.approx(report.drift.share_drifted)
        for check in report.performance.checks if report.performance else ():
            stored = values[day.batch_id, "realized", "", check.metric]
            assert (stored.value, stored.low, stored.high) == pytest.approx((check.value, check.low, check.high))
            assert stored.breached == check.breached and stored.floor == check.floor
        for column in report.drift.columns:
            stored = drift[day.batch_id, "features", column.column]
            assert (stored.drifted, stored.distance, stored.why) == (column.drifted, pytest.approx(column.distance), column.why)

    assert cli.main(["history", "--metrics", "--last", "3", "--config", scenario.config_path]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[1:4]] == [d.batch_id for d in good[-3:]]
    assert "roc_auc (matured)" in lines[0] and any("retrain" in line for line in lines) == any(
        runs[d.batch_id].decision == "retrain" for d in good[-3:])


def test_each_monitor_run_logs_its_drift_and_trend_charts_with_its_own_mlflow_run(scenario):
    client = MlflowClient(scenario.cfg.registry.tracking_uri)
    good = [d for d in scenario.days if scenario.states[d.batch_id].is_completed()]
    drawn = {}
    for day in good:
        outcome = _outcome(scenario, day)
        drawn[day.batch_id] = {a.path.removeprefix("charts/") for a in client.list_artifacts(outcome.monitor_run_id, "charts")}
        report = outcome.report
        drifted = [*report.drift.drifted_columns, *(report.prediction_drift.drifted_columns if report.prediction_drift else ())]
        pictured = {n for n in drawn[day.batch_id] if n.startswith("drift-")}
        assert pictured <= {f"drift-{c}.png" for c in drifted} and len(pictured) == min(len(drifted), scenario.cfg.reports.max_drift_charts)
        assert {"trend-metrics.png", "trend-drift.png", "trend-labels.png"} <= drawn[day.batch_id]
    shifted = next(d for d in good if d.covariate_shift)
    assert any(n.startswith("drift-") for n in drawn[shifted.batch_id])  # the shifted features are pictured
    assert not any(n.startswith("drift-") for n in drawn[good[0].batch_id])  # a clean day: trends only


def test_every_retrained_versions_review_artifacts_picture_the_gates_paired_differences(scenario):
    client = MlflowClient(scenario.cfg.registry.tracking_uri)
    retrained = [v for v in Registry(scenario.cfg.registry).versions() if v.tags.get("driftloop.trigger", "").startswith("monitor:")]
    assert retrained
    for version in retrained:
        review = {a.path.removeprefix("review/") for a in client.list_artifacts(version.run_id, "review")}
        assert any(name.endswith(".comparison.png") for name in review) and any(name.endswith(".comparison.md") for name in review)


def test_the_model_page_is_one_offline_html_file_with_status_trends_drift_and_the_version_timeline(scenario, tmp_path, capsys):
    out = tmp_path / "model.html"
    assert cli.main(["report", "--out", str(out), "--config", scenario.config_path]) == 0
    text = out.read_text()
    good = [d.batch_id for d in scenario.days if scenario.states[d.batch_id].is_completed()]
    assert scenario.cfg.registry.model_name in text and good[-1] in text and "<h2>Newest drift" in text
    assert text.count('src="data:image/png;base64,') == 3  # metric, drift and label trends, embedded
    assert "http://" not in text and "https://" not in text  # nothing fetched: it opens offline
    assert "<td>v1</td>" in text and "<td>register</td>" in text  # the versions and the alias moves
    assert "wrote" in capsys.readouterr().out


def test_the_report_opens_with_what_most_likely_explains_the_shift_weighed_by_the_champions_importances(scenario):
    shifted = next(d for d in scenario.days if d.covariate_shift and scenario.states[d.batch_id].is_completed())
    report = _outcome(scenario, shifted).report
    cause = report.root_cause
    assert cause.suspects and {s.column for s in cause.suspects} <= set(report.drift.drifted_columns)
    assert all(s.importance is not None for s in cause.suspects)  # measured at training, kept through the registry
    text = report.to_markdown()
    assert text.index("## What most likely explains it") < text.index("## Performance on the matured window")
    assert cause.suspects[0].column in text.split("## Performance")[0]


def test_days_without_labels_get_estimated_metrics_and_no_realized_ones(scenario):
    first = _outcome(scenario, scenario.days[0]).report
    assert first.performance is None  # nothing has matured: no realized metric, not a zero
    assert first.estimated is not None and first.estimated_checks
    low, high = first.estimated.intervals["roc_auc"]
    assert low < first.estimated.metrics["roc_auc"] < high and 0.7 < first.estimated.metrics["roc_auc"] < 0.95
    assert first.labels.n_labelled == 0 and first.labels.coverage == 0.0


def test_the_estimate_is_checked_against_realized_performance_once_labels_arrive(scenario):
    clean = [d for d in scenario.days if not (d.quality_incident or d.covariate_shift or d.concept_drift)]
    report = _outcome(scenario, clean[-1]).report
    assert report.performance is not None and report.estimated_matured is not None
    assert abs(report.metrics()["estimate_error_roc_auc"]) < 0.05  # calibrated and no concept drift yet: close


def test_label_coverage_grows_as_labels_arrive_and_unknown_ids_are_counted(scenario):
    good = [d for d in scenario.days if not d.quality_incident]
    last = _outcome(scenario, good[-1]).report.labels
    assert 0.5 < last.coverage < 1.0 and last.median_latency_days == scenario.cfg.demo.label_delay_days
    # the quarantined day's customers were never scored, but their labels still arrive
    assert last.unknown_ids == scenario.cfg.demo.rows_per_batch


def test_covariate_shift_days_are_flagged_and_clean_days_are_not(scenario):
    good = [d for d in scenario.days if not d.quality_incident]
    flagged = {d.batch_id: _outcome(scenario, d).report.drift.drifted for d in good}
    assert flagged == {d.batch_id: d.covariate_shift for d in good}
    shifted = _outcome(scenario, next(d for d in good if d.covariate_shift)).report.drift.drifted_columns
    assert set(shifted) == {"data_usage_gb", "acquisition_channel"}


def test_the_covariate_shift_moves_features_the_model_ignores_and_not_its_predictions(scenario):
    covariate_only = [d for d in scenario.days if d.covariate_shift and not d.concept_drift and not d.quality_incident]
    assert covariate_only
    assert not any(_outcome(scenario, d).report.prediction_drift.drifted for d in covariate_only)


def test_the_concept_drift_is_seen_by_prediction_drift_before_its_labels_and_confirmed_by_them(scenario):
    reports = {d.day: _outcome(scenario, d).report for d in scenario.days if not d.quality_incident}
    event, delay = scenario.cfg.demo.concept_drift_batch, scenario.cfg.demo.label_delay_days
    first = {d.signal: d for d in detection_timeline(reports, event)}
    assert first["prediction drift"].day == event and "probability" in first["prediction drift"].new
    assert first["feature drift"].new == ("support_calls",)  # the campaign's calls; the covariate shift was already on
    assert reports[event].decision.action == "watch"
    assert any(r.startswith("prediction drift on probability") for r in reports[event].decision.reasons)
    confirmed = first["realized performance"]
    assert confirmed.day is not None and confirmed.day >= event + delay and "roc_auc" in confirmed.new
    # CBPE assumes P(y | score) holds, which is what a concept drift breaks: its estimate stays put.
    assert first["estimated performance"].day is None
    assert reports[confirmed.day].metrics()["estimate_error_roc_auc"] < -0.05


def test_a_watch_decision_emits_an_event_a_notification_can_match(scenario):
    concept_day = next(d for d in scenario.days if d.concept_drift)
    ours = _outcome(scenario, concept_day).monitor_run_id  # other tests share this API and the demo's dates
    [event] = stored_events(PREFECT_API_URL.value(), WATCH, where=lambda e: e["payload"]["monitor_run_id"] == ours)
    assert event["payload"]["action"] == "watch" and "probability" in event["payload"]["signals"]["prediction drift"]
    assert event["resource"]["prefect.resource.name"] == scenario.cfg.registry.model_name


def test_concept_drift_triggers_a_retrain_registered_as_challenger_with_lineage(scenario):
    retrained = [d for d in scenario.days if scenario.states[d.batch_id].is_completed() and _outcome(scenario, d).retrain]
    assert retrained, "no day retrained"
    first = retrained[0]
    assert first.concept_drift
    outcome = _outcome(scenario, first)
    assert outcome.report.performance.degraded
    version = Registry(scenario.cfg.registry).version(outcome.retrain.version)
    tags = version.tags
    assert tags["driftloop.trigger"] == f"monitor:{first.batch_id}"
    assert tags["driftloop.monitor_run_id"] == outcome.monitor_run_id
    assert tags["driftloop.parent_version"] == "1"
    assert len(tags["driftloop.data_fingerprint"]) == 16
    assert first.batch_id not in tags["driftloop.batch_ids"]  # its labels had not arrived
    assert "roc_auc" in tags["driftloop.reasons"]
    assert "Why trained" in version.description


def test_the_gate_fails_the_early_challenger_and_passes_the_one_trained_after_the_drift(scenario):
    registry = Registry(scenario.cfg.registry)
    retrained = [v for v in registry.versions() if v.tags.get("driftloop.trigger", "").startswith("monitor:")]
    assert len(retrained) >= 2
    first, last = retrained[0], retrained[-1]
    # The first retrain sees at most a day of post-drift labels: not credibly better than the champion.
    assert first.tags["driftloop.gate_verdict"] == "failed"
    assert "roc_auc improvement" in first.tags["driftloop.gate_failed"]
    assert last.tags["driftloop.gate_verdict"] == "passed"
    assert "**Promotion gate: PASSED**" in last.description and "**pass** roc_auc improvement" in last.description


def test_the_inline_run_retrains_once_per_episode_on_the_days_the_server_path_must_match(scenario):
    retrained = [d.batch_id for d in scenario.days if scenario.states[d.batch_id].is_completed() and _outcome(scenario, d).retrain]
    assert tuple(retrained) == INLINE_RETRAIN_DAYS
    ledger = {r.as_of: r for r in Ledger(scenario.cfg.ledger).retrains()}
    assert tuple(ledger) == INLINE_RETRAIN_DAYS and all(r.state == "registered" and r.version for r in ledger.values())


def test_only_a_version_that_passed_the_gate_is_offered_for_review(scenario):
    registry = Registry(scenario.cfg.registry)
    retrained = [v for v in registry.versions() if v.tags.get("driftloop.trigger", "").startswith("monitor:")]
    failed = [v for v in retrained if v.tags["driftloop.gate_verdict"] == "failed"]
    assert failed and all(v.tags["driftloop.offered"] == "no" and CHALLENGER not in v.aliases for v in failed)
    assert "not offered for review" in failed[0].description
    offered = [v.version for v in retrained if v.tags["driftloop.offered"] == "yes"]
    announced = [e["payload"]["version"] for e in stored_events(  # other tests share this API
        PREFECT_API_URL.value(), CHALLENGER_REGISTERED, where=lambda e: e["payload"]["config_path"] == scenario.config_path,
        at_least=len(offered))]
    assert announced == offered  # no review form for a version that failed the gate


def test_the_champion_does_not_move_without_a_person(scenario):
    registry = Registry(scenario.cfg.registry)
    assert registry.by_alias(CHAMPION).version == "1"
    assert registry.by_alias(CHALLENGER).tags["driftloop.offered"] == "yes"


def test_a_second_retrain_for_the_same_trigger_registers_nothing_new(scenario):
    first = next(d for d in scenario.days if scenario.states[d.batch_id].is_completed() and _outcome(scenario, d).retrain)
    before = len(Registry(scenario.cfg.registry).versions())
    again = retrain(as_of=first.batch_id, trigger=f"monitor:{first.batch_id}", config_path=scenario.config_path)
    assert again.already_registered and again.version == _outcome(scenario, first).retrain.version
    assert len(Registry(scenario.cfg.registry).versions()) == before


def test_a_rerun_scores_again_and_logs_the_batch_once(scenario):
    day = next(d for d in scenario.days if not d.quality_incident)
    before = data.read_predictions(scenario.cfg.data, [day.batch_id])
    state = monitor(batch_id=day.batch_id, config_path=scenario.config_path, force=True, return_state=True)
    assert state.is_completed()
    assert _task_run_states(state.state_details.flow_run_id)["score batch"] == "Completed"
    log = data.read_predictions(scenario.cfg.data, [day.batch_id])
    assert len(log) == scenario.cfg.demo.rows_per_batch
    assert sorted(log["customer_id"]) == sorted(before["customer_id"])  # replaced, not appended


def test_a_malformed_batch_fails_the_run_and_is_quarantined_byte_for_byte(scenario):
    source = data.read_batch(scenario.cfg.data, scenario.days[0].batch_id)
    duplicated = source.assign(customer_id=source["customer_id"].where(source.index != 1, source["customer_id"][0]))
    path = data.batch_path(scenario.cfg.data, "2026-03-01")
    duplicated.to_parquet(path, index=False)
    original = path.read_bytes()
    state = monitor(batch_id="2026-03-01", config_path=scenario.config_path, return_state=True)
    assert state.is_failed() and not state.is_crashed()
    assert "2 rows share an id in customer_id (rows 0, 1)" in state.message and "quarantined" in state.message
    assert not path.exists()
    assert (scenario.cfg.data.quarantine / path.name).read_bytes() == original


def test_the_ledger_has_every_batch_done_once_and_a_plain_rerun_skips_it(scenario):
    ledger = Ledger(scenario.cfg.ledger)
    for day in scenario.days:
        states = [t.state for t in ledger.history(day.batch_id)]
        expected = ["received", "quarantined"] if day.quality_incident else ["received", "validated", "scored", "evaluated"]
        assert states[: len(expected)] == expected
    day = next(d for d in scenario.days if not d.quality_incident)
    before = len(ledger.history(day.batch_id))
    state = monitor(batch_id=day.batch_id, config_path=scenario.config_path, return_state=True)
    assert state.is_completed() and state.result() is None
    assert len(ledger.history(day.batch_id)) == before


def test_backfill_reports_finished_days_as_done_and_refuses_a_reversed_range(scenario):
    first, second = scenario.days[0].batch_id, scenario.days[1].batch_id
    rows = backfill(start=first, end=second, config_path=scenario.config_path)
    assert [(r["batch"], r["validation"]) for r in rows] == [(first, "already processed"), (second, "already processed")]
    reversed_range = backfill(start=second, end=first, config_path=scenario.config_path, return_state=True)
    assert reversed_range.is_failed() and reversed_range.message == f"backfill end {first} is before start {second}; swap them"


def test_a_missing_batch_fails_the_run_with_one_line(scenario):
    state = monitor(batch_id="2031-01-01", config_path=scenario.config_path, return_state=True)
    assert state.is_failed()
    assert "file not found" in state.message and "\n" not in state.message


def test_a_run_without_a_batch_id_and_nothing_new_is_an_ok_run(scenario):
    state = monitor(config_path=scenario.config_path, return_state=True)  # what the schedule runs on a day with no new batch
    assert state.is_completed() and state.result() == []
    with get_client(sync_client=True) as client:
        assert client.read_flow_run(state.state_details.flow_run_id).name == "monitor new batches"


@pytest.mark.parametrize("batch_id", ["week-01", "2026-02-19-resend", "../labels/2026-02-03", "2026-02-30"])
def test_a_batch_id_that_is_not_a_date_fails_in_one_line_before_anything_is_written(scenario, batch_id):
    ledger, before = Ledger(scenario.cfg.ledger), data.logged_batches(scenario.cfg.data)
    known = ledger.states()
    state = monitor(batch_id=batch_id, config_path=scenario.config_path, return_state=True)
    assert state.is_failed() and f"batch id {batch_id!r} is not a" in state.message and "\n" not in state.message
    assert ledger.states() == known and data.logged_batches(scenario.cfg.data) == before
    assert (scenario.cfg.data.labels / "2026-02-03.parquet").exists()  # nothing outside data.incoming was touched


def test_a_misnamed_label_file_stops_the_run_before_anything_is_written(scenario):
    stray = scenario.cfg.data.labels / "labels-final.parquet"
    stray.write_bytes(b"")
    try:
        day = next(d for d in scenario.days if not d.quality_incident)
        known = Ledger(scenario.cfg.ledger).states()
        state = monitor(batch_id=day.batch_id, config_path=scenario.config_path, force=True, return_state=True)
        assert state.is_failed() and state.message.startswith(f"{stray}: not named by the contract; name label files <YYYY-MM-DD>")
        assert Ledger(scenario.cfg.ledger).states() == known
    finally:
        stray.unlink()


def test_a_bad_label_file_fails_the_run_in_one_line_and_the_batch_waits_unfinished(scenario):
    day = [d for d in scenario.days if not d.quality_incident][-1]
    labels = scenario.cfg.data.labels / f"{day.batch_id}.parquet"  # arrived that day: part of its matured window
    original = labels.read_bytes()
    try:
        frame = pd.read_parquet(labels)
        frame.astype({"churned": str}).assign(churned=lambda d: d["churned"].where(d.index != 3, "yes")).to_parquet(labels, index=False)
        state = monitor(batch_id=day.batch_id, config_path=scenario.config_path, force=True, return_state=True)
        assert state.is_failed() and not state.is_crashed()
        assert f"{labels}: column churned should hold 0 or 1 but has 'yes' at rows 3" in state.message and "\n" not in state.message
        assert Ledger(scenario.cfg.ledger).state(day.batch_id) == "scored"  # the next run finishes it once the file is fixed
    finally:
        labels.write_bytes(original)
    assert monitor(batch_id=day.batch_id, config_path=scenario.config_path, return_state=True).is_completed()
    assert Ledger(scenario.cfg.ledger).state(day.batch_id) == "evaluated"


def test_promote_from_the_cli_moves_the_champion_to_the_challenger(scenario, capsys):
    registry = Registry(scenario.cfg.registry)
    challenger = registry.by_alias(CHALLENGER).version
    assert cli.main(["--config", scenario.config_path, "promote", challenger, "--reviewer", "alice"]) == 0
    assert registry.by_alias(CHAMPION).version == challenger
    assert registry.by_alias(CHALLENGER) is None
    promoted = registry.version(challenger).tags
    assert promoted["driftloop.promoted_by"] == "alice" and promoted["driftloop.previous_champion"] == "1"
    assert f"to v{challenger}" in capsys.readouterr().out
