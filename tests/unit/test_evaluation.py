import math

import numpy as np

from driftloop.config import EvaluationConfig, MetricThreshold
from driftloop.evaluation import check_metric, classification_metrics, evaluate_window


def test_metrics_on_a_single_class_window_are_nan_not_zero():
    metrics = classification_metrics(np.zeros(50, dtype=int), np.linspace(0.1, 0.4, 50))
    assert math.isnan(metrics["roc_auc"])
    assert metrics["accuracy"] == 1.0


def test_lower_is_better_metrics_breach_upwards():
    check = check_metric("log_loss", 0.70, 0.50, MetricThreshold(max_drop=0.1), "w")
    assert check.breached and "up 0.200" in check.reason
    assert not check_metric("log_loss", 0.45, 0.50, MetricThreshold(max_drop=0.1), "w").breached


def test_a_window_with_too_few_labels_gives_no_report():
    cfg = EvaluationConfig(min_labelled_rows=100)
    assert evaluate_window(np.array([0, 1] * 10), np.full(20, 0.5), ("d",), {}, cfg) is None


def test_perfect_scores_pass_the_floor():
    y = np.array([0, 1] * 300)
    report = evaluate_window(y, y * 0.9 + 0.05, ("d1", "d2"), {"roc_auc": 0.8}, EvaluationConfig(min_labelled_rows=10))
    assert report.metrics["roc_auc"] == 1.0 and not report.degraded
