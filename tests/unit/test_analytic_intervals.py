"""Analytic intervals (large windows): honest coverage for every metric, and the bootstrap's answer."""

import numpy as np
import pytest

from driftloop.comparison import METRIC_DIRECTION, bootstrap_intervals, paired_differences
from driftloop.evaluation import Calibration, estimate_performance, task_metrics
from driftloop.intervals import analytic_intervals, influence, influences, wilson

CLASSES = ("keep", "upgrade", "downgrade")
# 200 windows put a coverage of 95% within about +-3 points (binomial sd 1.5): the seeds are fixed, so a
# run is repeatable; with 2,000 windows every metric here measured between 0.942 and 0.962.
N_WINDOWS, WINDOW_ROWS = 200, 4_000


def _sigmoid(v):
    return 1 / (1 + np.exp(-v))


def binary_rows(rng, n):
    """Truth from a logistic model; the scored model is a miscalibrated, weaker version of it."""
    x = rng.normal(size=n)
    y = (rng.random(n) < _sigmoid(1.5 * x - 0.3)).astype("int64")
    return y, _sigmoid(1.1 * x - 0.1), _sigmoid(0.8 * x + 0.4 * rng.normal(size=n) - 0.2)


def multiclass_rows(rng, n):
    x = rng.normal(size=(n, 2))
    logits = np.stack([x[:, 0], x[:, 1], -x.sum(axis=1) + 0.3], axis=1)
    true = np.exp(1.3 * logits)
    true /= true.sum(axis=1, keepdims=True)
    y = (true.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    model = np.exp(logits)  # flatter than the truth: miscalibrated
    return y, model / model.sum(axis=1, keepdims=True)


def regression_rows(rng, n):
    x = rng.normal(size=n)
    y = 2 * x + (0.5 + 0.5 * np.abs(x)) * rng.normal(size=n)  # noise that grows with |x|
    return y, 1.8 * x + 0.1


TASKS = [("binary_classification", binary_rows, ()), ("multiclass_classification", multiclass_rows, CLASSES),
         ("regression", regression_rows, ())]


def _coverage(task, draw, classes=()):
    """Share of ``N_WINDOWS`` windows whose 95% interval holds the metric's population value."""
    rng = np.random.default_rng(7)
    y, output = draw(rng, 1_000_000)[:2]
    truth = task_metrics(task, y, output, 0.5, classes)
    hits = dict.fromkeys(truth, 0)
    for _ in range(N_WINDOWS):
        y, output = draw(rng, WINDOW_ROWS)[:2]
        intervals = analytic_intervals(influences(task, y, output, 0.5, classes), 0.95)[1]
        for metric, (low, high) in intervals.items():
            hits[metric] += low <= truth[metric] <= high
    return {metric: count / N_WINDOWS for metric, count in hits.items()}


@pytest.mark.parametrize(("task", "draw", "classes"), TASKS, ids=["binary", "multiclass", "regression"])
def test_analytic_intervals_cover_the_population_value_for_every_metric(task, draw, classes):
    coverage = _coverage(task, draw, classes)
    assert len(coverage) >= 3
    assert {m: c for m, c in coverage.items() if c < 0.93} == {}, coverage
    assert {m: c for m, c in coverage.items() if c > 0.995} == {}, coverage  # not honest by being uselessly wide


def test_paired_analytic_intervals_cover_the_population_difference():
    rng = np.random.default_rng(12)
    metrics = tuple(m for m in METRIC_DIRECTION if m in task_metrics("binary_classification", [0, 1], [0.2, 0.8], 0.5))
    y, champion, challenger = binary_rows(rng, 1_000_000)
    sign = {m: 1.0 if METRIC_DIRECTION[m] else -1.0 for m in metrics}
    new, old = task_metrics("binary_classification", y, challenger, 0.5), task_metrics("binary_classification", y, champion, 0.5)
    truth = {m: sign[m] * (new[m] - old[m]) for m in metrics}
    hits = dict.fromkeys(metrics, 0)
    for _ in range(N_WINDOWS):
        y, champion, challenger = binary_rows(rng, WINDOW_ROWS)
        found = paired_differences(y, challenger, champion, metrics, 0.5, 0, 0.95, rng, bootstrap_max_rows=0)
        for m, d in found.items():
            hits[m] += d.low <= truth[m] <= d.high
    coverage = {m: h / N_WINDOWS for m, h in hits.items()}
    assert {m: c for m, c in coverage.items() if not 0.93 <= c <= 0.995} == {}, coverage


def test_analytic_cbpe_interval_covers_the_realized_metrics_when_calibration_holds():
    rng = np.random.default_rng(5)
    identity = Calibration(np.linspace(0, 1, 101), np.linspace(0, 1, 101))
    hits = {"accuracy": 0, "roc_auc": 0}
    for _ in range(N_WINDOWS):
        probability = _sigmoid(1.4 * rng.normal(size=WINDOW_ROWS))
        y = (rng.random(WINDOW_ROWS) < probability).astype("int64")  # labels as the calibrated model expects
        realized = task_metrics("binary_classification", y, probability, 0.5)
        estimate = estimate_performance(probability, identity, 0.5, "w", 0, 0.95, simulate_max_rows=0)
        for metric in hits:
            low, high = estimate.intervals[metric]
            hits[metric] += low <= realized[metric] <= high
    assert all(0.93 <= h / N_WINDOWS <= 0.995 for h in hits.values()), hits


@pytest.mark.parametrize(("task", "draw", "classes"), TASKS, ids=["binary", "multiclass", "regression"])
def test_analytic_values_are_the_metrics_and_intervals_match_the_bootstrap(task, draw, classes):
    y, output = draw(np.random.default_rng(3), 20_000)[:2]
    found = influence(task, y, output, 0.5, classes)
    expected = task_metrics(task, y, output, 0.5, classes)
    assert set(found) == set(expected)
    assert {m: f.value for m, f in found.items()} == pytest.approx(expected, rel=1e-9)
    values, analytic = analytic_intervals(found.items(), 0.95)
    assert values == {m: f.value for m, f in found.items()}
    bootstrap = bootstrap_intervals(task, y, output, 0.5, 400, 0.95, np.random.default_rng(0), classes)
    for metric, (low, high) in analytic.items():
        b_low, b_high = bootstrap[metric]
        width = b_high - b_low
        assert abs(low - b_low) < 0.2 * width and abs(high - b_high) < 0.2 * width, (metric, (low, high), (b_low, b_high))


def test_wilson_stays_inside_zero_and_one_where_the_normal_interval_would_not():
    low, high = wilson(0, 50, 0.95)
    assert low == pytest.approx(0.0, abs=1e-12) and 0.05 < high < 0.1
    low, high = wilson(50, 50, 0.95)
    assert 0.9 < low < 0.95 and high == pytest.approx(1.0)
    assert wilson(0, 0, 0.95) == (0.0, 0.0)
