"""Realized metrics with intervals, segments, fairness, labels, and estimated performance."""

import math
from datetime import date

import numpy as np
import pandas as pd
import pytest

from driftloop.config import EvaluationConfig, MetricThreshold
from driftloop.data import LabelArrivals
from driftloop.evaluation import (
    check_metric, classification_metrics, estimate_performance, evaluate_window, fit_calibration, label_status, service_health,
    task_metric, task_metrics,
)
from driftloop.config import TASK_METRICS

CFG = EvaluationConfig(min_labelled_rows=10, n_bootstrap=300, thresholds={"roc_auc": MetricThreshold(floor=0.6, max_drop=0.05)})


def _calibrated_window(rng, n, quality=1.2):
    """Scores and labels drawn so that the true churn probability is a known function of the score."""
    score = rng.normal(0, 1, n)
    truth = 1 / (1 + np.exp(-(quality * score - 0.8)))
    return truth, (rng.random(n) < truth).astype(int)


def test_metrics_on_a_single_class_window_are_nan_not_zero():
    metrics = classification_metrics(np.zeros(50, dtype=int), np.linspace(0.1, 0.4, 50))
    assert math.isnan(metrics["roc_auc"]) and metrics["accuracy"] == 1.0


@pytest.mark.parametrize("task", TASK_METRICS)
@pytest.mark.parametrize("constant", [False, True], ids=["varied", "one_class"])
def test_one_metric_alone_is_the_value_the_full_set_gives(rng, task, constant):
    n, classes = 300, ("a", "b", "c")
    y = np.zeros(n, dtype=int) if constant else rng.integers(0, 3 if task.startswith("multi") else 2, n)
    output = {"binary_classification": rng.random(n), "regression": rng.normal(size=n) * 3,
              "multiclass_classification": rng.dirichlet(np.ones(3), n)}[task]
    every = task_metrics(task, y, output, 0.4, classes)
    alone = {name: task_metric(task, name, y, output, 0.4, classes) for name in TASK_METRICS[task]}
    assert alone == pytest.approx({name: every[name] for name in alone}, nan_ok=True)


def test_a_threshold_counts_only_when_the_whole_interval_is_past_it():
    rule = MetricThreshold(floor=0.7, max_drop=0.05)
    assert not check_metric("roc_auc", 0.68, (0.64, 0.72), 0.75, rule, "w").breached  # could still be 0.72
    breached = check_metric("roc_auc", 0.66, (0.63, 0.69), 0.80, rule, "w")
    assert breached.breached and "[0.630, 0.690]" in breached.reason and "floor 0.7" in breached.reason


def test_lower_is_better_metrics_breach_upwards():
    check = check_metric("log_loss", 0.70, (0.66, 0.74), 0.50, MetricThreshold(max_drop=0.1), "w")
    assert check.breached and "up at least 0.160" in check.reason


def test_a_window_with_too_few_labels_gives_no_report():
    cfg = CFG.model_copy(update={"min_labelled_rows": 100})
    assert evaluate_window(np.array([0, 1] * 10), np.full(20, 0.5), ("d",), {}, cfg) is None


def test_a_segment_that_drops_15_points_is_named_while_overall_barely_moves(rng):
    n = 12_000
    # south is a small segment (5% of rows): the model can fail it while the overall metric barely moves
    region = rng.choice(["north", "south", "east", "west", "centre", "coast", "hills", "lakes"], n, p=[0.95 / 7] + [0.05] + [0.95 / 7] * 6)
    truth, y = _calibrated_window(rng, n, quality=2.0)
    score = truth.copy()
    south = region == "south"
    score[south] = np.clip(truth[south] + rng.normal(0, 0.6, south.sum()), 0, 1)  # the model degrades on south only
    reference = classification_metrics(y, truth) | {
        f"seg.region.{r}.{m}": v for r in np.unique(region) for m, v in classification_metrics(y[region == r], truth[region == r]).items()
    }
    report = evaluate_window(y, score, ("2026-02-10",), reference, CFG, segments={"region": region})
    overall_drop = reference["roc_auc"] - report.metrics["roc_auc"]
    south_check = next(s for s in report.segments if s.segment == "region=south").checks[0]
    assert overall_drop < 0.02
    assert south_check.reference - south_check.value > 0.15
    assert [b.split(":")[0] for b in report.breaches] == ["segment region=south"]
    assert report.degraded


def test_fairness_gaps_compare_segments_with_their_threshold(rng):
    n = 4000
    group = np.where(np.arange(n) < n // 2, "a", "b")
    y = rng.integers(0, 2, n)
    score = np.where(group == "a", 0.9, 0.1) * (0.5 + 0.5 * y)  # group a is predicted positive far more often
    report = evaluate_window(y, score, ("d",), {}, CFG, fairness={"group": group})
    gaps = {g.measure: g for g in report.fairness}
    assert gaps["positive_rate"].breached and gaps["positive_rate"].gap > 0.4  # a: positives only; b: never
    assert "vs b 0.000" in gaps["positive_rate"].detail and "> max 0.25" in gaps["positive_rate"].detail
    assert report.fairness_alerts and not report.breaches  # reported for a person, not a reason to retrain


def test_label_status_counts_coverage_latency_overdue_and_unknown_ids():
    arrivals = LabelArrivals(batch_date=np.array(["2026-02-01"] * 2 + ["2026-02-09"] * 2, dtype="datetime64[D]"),
                             arrival=np.array(["2026-02-03", "NaT", "2026-02-10", "NaT"], dtype="datetime64[D]"),
                             unknown_ids=1)
    status = label_status(arrivals, date(2026, 2, 10), deadline_days=7, since="2026-02-01")
    assert (status.n_labelled, status.coverage, status.overdue, status.unknown_ids) == (2, 0.5, 1, 1)
    assert status.median_latency_days == 1.5 and status.early == 0


def test_a_label_in_a_file_dated_before_its_batch_is_counted_as_early_not_as_labelled():
    arrivals = LabelArrivals(batch_date=np.array(["2026-02-05"] * 3, dtype="datetime64[D]"),
                             arrival=np.array(["2026-02-04", "2026-02-06", "NaT"], dtype="datetime64[D]"), unknown_ids=0)
    status = label_status(arrivals, date(2026, 2, 6), deadline_days=7)
    assert (status.early, status.n_labelled, status.median_latency_days) == (1, 1, 1.0)


def test_estimated_accuracy_lies_in_the_interval_of_realized_accuracy_on_a_clean_window(rng):
    truth, y = _calibrated_window(rng, 20_000)
    calibration = fit_calibration(y, truth)  # "reference": the holdout the model was calibrated on
    clean_truth, clean_y = _calibrated_window(rng, 3000)
    estimate = estimate_performance(clean_truth, calibration, 0.5, "w", 500, 0.95)
    realized = classification_metrics(clean_y, clean_truth)
    realized_interval = (realized["accuracy"] - 0.02, realized["accuracy"] + 0.02)  # about 2.5 standard errors at n=3000
    assert realized_interval[0] <= estimate.metrics["accuracy"] <= realized_interval[1]


def test_the_estimate_interval_covers_the_realized_value_in_at_least_90_of_100_clean_windows():
    rng = np.random.default_rng(99)
    truth, y = _calibrated_window(rng, 20_000)
    calibration = fit_calibration(y, truth)
    covered = {"accuracy": 0, "roc_auc": 0}
    for i in range(100):
        window_truth, window_y = _calibrated_window(rng, 1000)
        estimate = estimate_performance(window_truth, calibration, 0.5, "w", 400, 0.95, seed=i)
        realized = classification_metrics(window_y, window_truth)
        for metric in covered:
            low, high = estimate.intervals[metric]
            covered[metric] += low <= realized[metric] <= high
    assert covered["accuracy"] >= 90 and covered["roc_auc"] >= 90, covered


def test_the_estimate_falls_when_customers_move_to_where_the_model_is_unsure_and_is_blind_to_concept_drift(rng):
    truth, y = _calibrated_window(rng, 20_000)
    calibration = fit_calibration(y, truth)
    rule = MetricThreshold(floor=0.7, max_drop=0.05)
    reference = classification_metrics(y, truth)["roc_auc"]
    # covariate shift: the new customers' true probabilities cluster near 0.5, where no model separates well
    unsure = 1 / (1 + np.exp(-rng.normal(0, 0.4, 3000)))
    shifted = estimate_performance(unsure, calibration, 0.5, "shifted", 400, 0.95)
    check = check_metric("roc_auc", shifted.metrics["roc_auc"], shifted.intervals["roc_auc"], reference, rule, "shifted (estimated)")
    assert check.breached and shifted.metrics["roc_auc"] < 0.65
    realized = classification_metrics((rng.random(3000) < unsure).astype(int), unsure)["roc_auc"]
    assert shifted.intervals["roc_auc"][0] <= realized <= shifted.intervals["roc_auc"][1]  # and it was right
    # concept drift: same scores, labels now unrelated to them; the estimate cannot know
    same_scores, _ = _calibrated_window(rng, 3000)
    blind = estimate_performance(same_scores, calibration, 0.5, "drifted", 400, 0.95)
    realized = classification_metrics(rng.integers(0, 2, 3000), same_scores)["roc_auc"]
    assert blind.intervals["roc_auc"][0] > 0.7 and abs(realized - 0.5) < 0.05


def test_service_health_reports_the_failed_rows_and_the_batch_throughput():
    scored = np.r_[np.ones(97, dtype=bool), np.zeros(3, dtype=bool)]
    health = service_health(scored, 0.5, 7, 0.01, "2026-02-01")
    assert health.breached and health.failed_rows == 3 and health.failed_share == pytest.approx(0.03)
    assert health.rows_per_second == pytest.approx(200.0)
    assert "3.0% of 2026-02-01's rows (3 of 100) failed to score (> max 1.0%); scored at 200 rows/s (0.50 s in 7 model calls)" == health.detail
    assert not service_health(scored[:97], 0.1, 1, 0.01, "d").breached


def test_the_report_shows_every_metric_of_the_task_not_only_the_thresholded_one(rng):
    from driftloop.config import EvaluationConfig
    from driftloop.drift import DriftReport
    from driftloop.evaluation import evaluate_window
    from driftloop.policy import RetrainDecision
    from driftloop.report import MonitorReport

    y = rng.integers(0, 2, 2000)
    probability = np.clip(0.5 + (y - 0.5) * 0.4 + rng.normal(0, 0.2, 2000), 0, 1)
    perf = evaluate_window(y, probability, ("2026-02-01",), {"roc_auc": 0.9, "accuracy": 0.95}, EvaluationConfig())
    assert set(perf.metrics) == set(perf.intervals) >= {"roc_auc", "accuracy", "f1", "log_loss"}
    assert [c.metric for c in perf.checks] == ["roc_auc"]
    report = MonitorReport("2026-02-01", "1", 2000, "passed", DriftReport((), "bh", 0.05), None, None, perf,
                           RetrainDecision("ok", ()))
    assert all(f"{short} " in report.performance_summary for short in ("auc", "acc", "f1", "prec", "rec", "logloss", "brier"))
    table = report.to_markdown()
    assert "| all | accuracy |" in table and "| all | roc_auc |" in table and "| 0.950 | - |" in table
