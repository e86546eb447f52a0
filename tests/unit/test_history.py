"""The monitoring history: a monitor report's figures stored beside the ledger, and read back."""

import numpy as np
import pytest

from driftloop.config import EvaluationConfig, LedgerConfig
from driftloop.drift import ColumnDrift, DriftReport
from driftloop.evaluation import EstimatedPerformance, LabelStatus, check_metric, evaluate_window
from driftloop.history import ESTIMATED, REALIZED, History
from driftloop.policy import RetrainDecision
from driftloop.report import MonitorReport


def _column(name: str, distance: float, drifted: bool) -> ColumnDrift:
    return ColumnDrift(name, "numeric", "ks", 0.2, 1e-6, 1e-5 if drifted else 0.4, 0.05, "wasserstein", distance, 0.1,
                       5000, 2000, drifted)


def _report(rng, batch_id: str, quality: float, decision: str = "ok", reasons: tuple[str, ...] = ()) -> MonitorReport:
    y = rng.integers(0, 2, 3000)
    probability = np.clip(0.5 + (y - 0.5) * quality + rng.normal(0, 0.2, 3000), 0, 1)
    segments = {"region": np.where(np.arange(3000) % 2, "north", "south").astype(object)}
    performance = evaluate_window(y, probability, (batch_id,), {"roc_auc": 0.9, "accuracy": 0.9}, EvaluationConfig(), segments=segments)
    cfg = EvaluationConfig()
    estimated = EstimatedPerformance(batch_id, 2000, {"accuracy": 0.81, "roc_auc": 0.86},
                                     {"accuracy": (0.79, 0.83), "roc_auc": (0.84, 0.88)}, 0.95)
    checks = (check_metric("roc_auc", 0.86, (0.84, 0.88), 0.9, cfg.thresholds["roc_auc"], f"{batch_id} (estimated)"),)
    drift = DriftReport((_column("tenure_months", 0.3, True), _column("age", 0.01, False)), "bh", 0.05)
    labels = LabelStatus(4000, 3000, 0.75, 12, 0, 1.0, 1.0, 7)
    return MonitorReport(batch_id, "3", 2000, "passed (37 expectations)", drift, None, None, performance,
                         RetrainDecision(decision, reasons), labels, estimated, checks)


def test_a_report_is_stored_with_every_metric_interval_threshold_and_drift_test_and_read_back(tmp_path, rng):
    history = History(LedgerConfig(url=f"sqlite:///{tmp_path / 'ledger.db'}"), "churn")
    report = _report(rng, "2026-02-03", 0.4, "retrain", ("roc_auc=0.71 below floor 0.8",))

    history.record(report, "run-1")

    [run] = history.runs()
    assert (run.batch_id, run.model_version, run.decision, run.reasons) == ("2026-02-03", "3", "retrain", ("roc_auc=0.71 below floor 0.8",))
    assert run.drift_share == 0.5 and run.label_coverage == 0.75 and run.labels_overdue == 12 and run.monitor_run_id == "run-1"
    realized = {m.metric: m for m in history.metrics(source=REALIZED)}
    assert set(realized) == set(report.performance.metrics)  # every metric of the task, thresholded or not
    auc = realized["roc_auc"]
    check = report.performance.checks[0]
    assert (auc.value, auc.low, auc.high, auc.floor, auc.max_drop, auc.breached) == (
        pytest.approx(check.value), pytest.approx(check.low), pytest.approx(check.high), check.floor, check.max_drop, check.breached)
    assert realized["f1"].breached is None and realized["f1"].floor is None  # no threshold: nothing to breach
    by_segment = {(m.segment, m.metric) for m in history.metrics(segment=None) if m.segment}
    assert ("region=north", "roc_auc") in by_segment and ("region=south", "roc_auc") in by_segment
    estimated = {m.metric: m for m in history.metrics(source=ESTIMATED)}
    assert (estimated["roc_auc"].value, estimated["roc_auc"].low) == (0.86, 0.84)
    assert estimated["roc_auc"].reason and estimated["roc_auc"].floor == EvaluationConfig().thresholds["roc_auc"].floor
    drift = {d.column: d for d in history.drift()}
    assert drift["tenure_months"].drifted and drift["tenure_months"].distance == 0.3 and drift["tenure_months"].max_distance == 0.1
    assert "max_distance 0.1" in drift["tenure_months"].why and not drift["age"].drifted


def test_a_rerun_of_a_batch_replaces_its_rows_and_other_batches_and_models_are_untouched(tmp_path, rng):
    url = LedgerConfig(url=f"sqlite:///{tmp_path / 'ledger.db'}")
    history, other = History(url, "churn"), History(url, "fraud")
    history.record(_report(rng, "2026-02-02", 0.6))
    history.record(_report(rng, "2026-02-03", 0.6))
    other.record(_report(rng, "2026-02-03", 0.6))
    before = len(history.metrics(segment=None)), len(history.drift())

    history.record(_report(rng, "2026-02-03", 0.2, "retrain", ("auc fell",)))

    assert [r.batch_id for r in history.runs()] == ["2026-02-02", "2026-02-03"]
    assert (len(history.metrics(segment=None)), len(history.drift())) == before
    assert history.runs()[-1].decision == "retrain" and other.runs()[-1].decision == "ok"
    assert [r.batch_id for r in history.runs(last=1)] == ["2026-02-03"]
    assert {m.batch_id for m in history.metrics(last=1)} == {"2026-02-03"}
