"""Performance against ground truth on the matured window, and estimated while labels are missing.

Realized metrics (a binary classifier's; a multiclass one's macro, weighted and per-class
ones; or a regressor's MAE, RMSE and R2) come with intervals (a bootstrap on windows up to
``evaluation.bootstrap_max_rows`` rows, analytic above: see driftloop.intervals), and a threshold counts as crossed only when the whole interval is on
the wrong side of it, so a small window cannot raise an alarm on noise. The same metrics
are computed per segment, against what the model earned on that segment of its own
holdout, with fairness gaps between segments. While labels are missing, confidence-based
performance estimation (CBPE) uses the model's probabilities, calibrated on its holdout
(Platt scaling), to estimate accuracy and ROC AUC with an interval.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import stats
from sklearn import metrics as skm
from sklearn.linear_model import LogisticRegression

from driftloop.comparison import (
    BLOCK_CELLS, BOOTSTRAP_MAX_ROWS, METRIC_DIRECTION, bootstrap_intervals, predicted_class, weighted_multiclass_metrics,
)
from driftloop.intervals import analytic_intervals, influences, z_score
from driftloop.config import EvaluationConfig, MetricThreshold, ServeConfig, Task

if TYPE_CHECKING:  # the request log's reader is I/O; judging what it read is not
    from driftloop.requestlog import ServedPeriod
from driftloop.data import LabelArrivals

# name -> function of (y_true, probability, predicted class); directions are in comparison.METRIC_DIRECTION
CLASSIFIER_METRICS = {
    "roc_auc": lambda y, p, c: skm.roc_auc_score(y, p),
    "accuracy": lambda y, p, c: skm.accuracy_score(y, c),
    "precision": lambda y, p, c: skm.precision_score(y, c, zero_division=0),
    "recall": lambda y, p, c: skm.recall_score(y, c, zero_division=0),
    "f1": lambda y, p, c: skm.f1_score(y, c, zero_division=0),
    "log_loss": lambda y, p, c: skm.log_loss(y, p, labels=[0, 1]),
    "brier": lambda y, p, c: skm.brier_score_loss(y, p),
}


# name -> function of (y_true, predicted value)
REGRESSOR_METRICS = {
    "mae": skm.mean_absolute_error,
    "rmse": skm.root_mean_squared_error,
    "r2": skm.r2_score,
}


def regression_metrics(y_true: np.ndarray, prediction: np.ndarray) -> dict[str, float]:
    """MAE, RMSE, R2; R2 is NaN (undefined), not 0, on a window whose target does not vary."""
    y_true, prediction = np.asarray(y_true, dtype="float64"), np.asarray(prediction, dtype="float64")
    constant = len(np.unique(y_true)) < 2
    return {name: float("nan") if constant and name == "r2" else float(fn(y_true, prediction))
            for name, fn in REGRESSOR_METRICS.items()}


def classification_metrics(y_true: np.ndarray, probability: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Every classifier metric; one that is undefined on this window (one class only) is NaN, not 0."""
    y_true = np.asarray(y_true, dtype="int64")
    probability = np.asarray(probability, dtype="float64")
    predicted = (probability >= threshold).astype("int64")
    single_class = len(np.unique(y_true)) < 2
    return {
        name: float("nan") if single_class and name == "roc_auc" else float(fn(y_true, probability, predicted))
        for name, fn in CLASSIFIER_METRICS.items()
    }


def multiclass_metrics(y_true: np.ndarray, probability: np.ndarray, classes: tuple[str, ...] = ()) -> dict[str, float]:
    """Macro and weighted metrics (and, given the class names, each class's precision, recall and f1) of
    class codes ``y_true`` against rows x classes ``probability``: the bootstrap's own formulas at unit weights."""
    unit = np.ones((1, len(y_true)))
    return {k: float(v[0]) for k, v in weighted_multiclass_metrics(y_true, np.asarray(probability, dtype="float64"), unit, classes).items()}


def task_metrics(task: Task, y_true: np.ndarray, output: np.ndarray, threshold: float, classes: tuple[str, ...] = ()) -> dict[str, float]:
    """``output``: the positive class's probability (binary_classification), every class's probability
    (multiclass_classification, rows x classes, ``y_true`` as class codes) or the predicted value (regression)."""
    if task == "regression":
        return regression_metrics(y_true, output)
    if task == "multiclass_classification":
        return multiclass_metrics(y_true, output, classes)
    return classification_metrics(y_true, output, threshold)


def task_metric(task: Task, name: str, y_true: np.ndarray, output: np.ndarray, threshold: float,
                classes: tuple[str, ...] = ()) -> float:
    """``task_metrics(...)[name]``, computing only that metric where it stands alone (permutation
    importance asks for one metric dozens of times)."""
    undefined_here = (task, name) == ("regression", "r2") or (name == "roc_auc" and len(np.unique(y_true)) < 2)
    if task == "multiclass_classification" or undefined_here:  # their edge cases live in task_metrics
        return task_metrics(task, y_true, output, threshold, classes)[name]
    if task == "regression":
        return float(REGRESSOR_METRICS[name](np.asarray(y_true, dtype="float64"), np.asarray(output, dtype="float64")))
    probability = np.asarray(output, dtype="float64")
    return float(CLASSIFIER_METRICS[name](np.asarray(y_true, dtype="int64"), probability, (probability >= threshold).astype("int64")))


def segment_key(column: str, value: object) -> str:
    """``seg.<column>.<value>``: safe as an MLflow metric name."""
    return f"seg.{column}.{re.sub(r'[^0-9A-Za-z_-]', '_', str(value))}"


def segment_metrics(task: Task, y: np.ndarray, output: np.ndarray, segments: dict[str, np.ndarray], threshold: float,
                    min_rows: int) -> dict[str, float]:
    """``seg.<column>.<value>.<metric>`` for every segment with enough rows (for a classifier, with
    two classes in it at least: AUC needs them; a regressor needs only the rows)."""
    found = {}
    for column, values in segments.items():
        for value, mask in _groups(values):
            if mask.sum() >= min_rows and (task == "regression" or y[mask].min() != y[mask].max()):
                for metric, v in task_metrics(task, y[mask], output[mask], threshold).items():
                    found[f"{segment_key(column, value)}.{metric}"] = v
    return found


@dataclass(frozen=True)
class MetricCheck:
    metric: str
    value: float
    low: float  # interval of the value
    high: float
    reference: float | None
    floor: float | None
    max_drop: float | None
    breached: bool
    reason: str


def check_metric(name: str, value: float, interval: tuple[float, float], reference: float | None,
                 threshold: MetricThreshold, window: str) -> MetricCheck:
    """A threshold is crossed only when the whole interval is past it."""
    higher_is_better = METRIC_DIRECTION[name]
    low, high = interval
    if math.isnan(value):
        return MetricCheck(name, value, low, high, reference, threshold.floor, threshold.max_drop, False, f"{name} undefined on {window}")
    best = high if higher_is_better else low  # the most favourable value the window is compatible with
    problems = []
    if threshold.floor is not None and (best < threshold.floor if higher_is_better else best > threshold.floor):
        problems.append(f"{'below' if higher_is_better else 'above'} floor {threshold.floor}")
    if threshold.max_drop is not None and reference is not None and not math.isnan(reference):
        drop = (reference - best) if higher_is_better else (best - reference)
        if drop > threshold.max_drop:
            problems.append(f"{'down' if higher_is_better else 'up'} at least {drop:.3f} from reference {reference:.3f} (max_drop {threshold.max_drop})")
    detail = "; ".join(problems) if problems else "within thresholds"
    return MetricCheck(name, value, low, high, reference, threshold.floor, threshold.max_drop, bool(problems),
                       f"{name}={value:.3f} [{low:.3f}, {high:.3f}] on {window}: {detail}")


@dataclass(frozen=True)
class SegmentPerformance:
    segment: str  # column=value
    n_rows: int
    checks: tuple[MetricCheck, ...]


@dataclass(frozen=True)
class FairnessGap:
    column: str
    measure: str  # positive_rate | true_positive_rate
    gap: float
    max_gap: float
    breached: bool
    detail: str


@dataclass(frozen=True)
class PerformanceReport:
    window: tuple[str, ...]  # batch ids whose labels are in
    n_rows: int
    metrics: dict[str, float]  # every metric of the task
    checks: tuple[MetricCheck, ...]  # the metrics with a threshold (evaluation.thresholds)
    segments: tuple[SegmentPerformance, ...] = ()
    fairness: tuple[FairnessGap, ...] = ()
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)  # of every metric
    references: dict[str, float] = field(default_factory=dict)  # what the champion earned on its holdout

    @property
    def breaches(self) -> tuple[str, ...]:
        """Performance that credibly fell, overall or on a segment: what retraining can fix."""
        overall = [c.reason for c in self.checks if c.breached]
        by_segment = [f"segment {s.segment}: {c.reason}" for s in self.segments for c in s.checks if c.breached]
        return (*overall, *by_segment)

    @property
    def fairness_alerts(self) -> tuple[str, ...]:
        """Gaps between segments beyond their threshold: for a person to judge, not a retrain."""
        return tuple(g.detail for g in self.fairness if g.breached)

    @property
    def degraded(self) -> bool:
        return bool(self.breaches)


def _groups(values: np.ndarray) -> list[tuple[object, np.ndarray]]:
    """(value, row mask) of each value of a column, in order of appearance; missing values form no group."""
    codes, uniques = pd.factorize(values)  # a column's own array: text stays Arrow, not millions of Python strings
    return [(value, codes == k) for k, value in enumerate(uniques)]


def _fairness(y: np.ndarray, predicted: np.ndarray, columns: dict[str, list[tuple[object, np.ndarray]]], cfg: EvaluationConfig,
              window: str) -> list[FairnessGap]:
    """Gaps between the groups (``_groups``) of each column."""
    gaps = []
    for column, all_groups in columns.items():
        groups = [(v, mask) for v, mask in all_groups if mask.sum() >= cfg.min_segment_rows]
        if len(groups) < 2:
            continue
        positive = y == 1
        rates = {v: predicted[mask].mean() for v, mask in groups}
        tprs = {v: predicted[mask & positive].mean() for v, mask in groups if (mask & positive).any()}
        for measure, by_group, limit in (("positive_rate", rates, cfg.max_positive_rate_gap), ("true_positive_rate", tprs, cfg.max_tpr_gap)):
            if len(by_group) < 2:
                continue
            hi, lo = max(by_group, key=by_group.get), min(by_group, key=by_group.get)
            gap = float(by_group[hi] - by_group[lo])
            gaps.append(FairnessGap(column, measure, gap, limit, gap > limit,
                                    f"{measure} gap across {column} on {window}: {hi} {by_group[hi]:.3f} vs {lo} {by_group[lo]:.3f} "
                                    f"= {gap:.3f} {'>' if gap > limit else '<='} max {limit}"))
    return gaps


def _measure(task: Task, y: np.ndarray, output: np.ndarray, cfg: EvaluationConfig, rng: np.random.Generator,
             classes: tuple[str, ...] = ()):
    """Every metric of the task with its interval (and, given ``classes``, every class's): analytic above
    ``cfg.bootstrap_max_rows`` rows, where the values come with their influence; the bootstrap below."""
    if len(y) > cfg.bootstrap_max_rows:
        return analytic_intervals(influences(task, y, output, cfg.decision_threshold, classes), cfg.confidence)
    return (task_metrics(task, y, output, cfg.decision_threshold, classes),
            bootstrap_intervals(task, y, output, cfg.decision_threshold, cfg.n_bootstrap, cfg.confidence, rng, classes))


def evaluate_window(
    y_true: np.ndarray, output: np.ndarray, window: tuple[str, ...], reference: dict[str, float], cfg: EvaluationConfig,
    segments: dict[str, np.ndarray] | None = None, seed: int = 0, fairness: dict[str, np.ndarray] | None = None,
    task: Task = "binary_classification", classes: tuple[str, ...] = (),
) -> PerformanceReport | None:
    """Metrics with intervals, threshold checks, segments and (binary classifiers) fairness gaps between
    the groups of ``fairness`` columns; None when too few labels have arrived. ``output``: the positive
    class's probability (binary_classification), every class's probability (multiclass_classification,
    rows x ``classes``, with ``y_true`` as class codes) or the predicted value (regression)."""
    if len(y_true) < cfg.min_labelled_rows:
        return None
    y_true = np.asarray(y_true, dtype="float64" if task == "regression" else "int64")
    output = np.asarray(output, dtype="float64")
    segments = {c: _groups(v) for c, v in (segments or {}).items()}
    fairness = {c: _groups(v) for c, v in (fairness or {}).items()}
    if task == "binary_classification" and len(y_true) > cfg.bootstrap_max_rows:
        # Rows in score order: the DeLong sort of the window and of every segment (a subset of sorted
        # rows is sorted) then runs in linear time. No metric depends on the order of rows.
        order = np.argsort(output, kind="stable")
        y_true, output = y_true[order], output[order]
        segments, fairness = ({c: [(v, mask[order]) for v, mask in groups] for c, groups in found.items()}
                              for found in (segments, fairness))
    rng = np.random.default_rng(seed)
    values, intervals = _measure(task, y_true, output, cfg, rng, classes)
    label = f"{window[0]}..{window[-1]} ({len(y_true)} labelled rows)" if window else "empty window"
    checks = tuple(check_metric(m, values[m], intervals[m], reference.get(m), t, label) for m, t in cfg.thresholds.items())
    by_segment = []
    for column, groups in segments.items():
        for value, mask in groups:
            if mask.sum() < cfg.min_segment_rows or y_true[mask].min() == y_true[mask].max():
                continue
            key = segment_key(column, value)
            seg_values, seg_intervals = _measure(task, y_true[mask], output[mask], cfg, rng)
            seg_label = f"{window[0]}..{window[-1]} ({int(mask.sum())} of its labelled rows)"
            seg_checks = tuple(
                check_metric(m, seg_values[m], seg_intervals[m], reference.get(f"{key}.{m}"),
                             MetricThreshold(max_drop=t.max_drop), seg_label)  # the floor is for the whole population
                for m, t in cfg.thresholds.items()
            )
            by_segment.append(SegmentPerformance(f"{column}={value}", int(mask.sum()), seg_checks))
    binary = task == "binary_classification"
    gaps = _fairness(y_true, predicted_class(output, cfg.decision_threshold), fairness, cfg, label) if binary else []
    return PerformanceReport(window, len(y_true), values, checks, tuple(by_segment), tuple(gaps),
                             {m: (float(low), float(high)) for m, (low, high) in intervals.items()},
                             {m: reference[m] for m in values if m in reference})


# --- service health -----------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceHealth:
    """How scoring a batch went: rows the model could not score, and batch throughput. (A batch job
    has no per-request latency; where requests are real, the serving system measures it.)"""

    n_rows: int
    failed_rows: int
    failed_share: float  # rows the model could not score
    max_failed_share: float
    rows_per_second: float
    seconds: float
    model_calls: int
    breached: bool
    detail: str
    where: str = "in process"  # or the Dask scheduler the partitions ran on
    partitions: int = 1


def service_health(scored: np.ndarray, seconds: float, model_calls: int, max_failed_share: float, batch: str,
                   where: str = "in process", partitions: int = 1) -> ServiceHealth:
    failed_rows = int(len(scored) - np.sum(scored))
    failed = failed_rows / len(scored) if len(scored) else 0.0
    rate = len(scored) / seconds if seconds > 0 else float("inf")
    breached = failed > max_failed_share
    spread = f", {partitions} partitions on {where}" if partitions > 1 else ""
    return ServiceHealth(len(scored), failed_rows, failed, max_failed_share, rate, seconds, model_calls, breached,
                         f"{failed:.1%} of {batch}'s rows ({failed_rows} of {len(scored)}) failed to score "
                         f"({'>' if breached else '<='} max {max_failed_share:.1%}); scored at {rate:,.0f} rows/s "
                         f"({seconds:.2f} s in {model_calls} model call{'s' if model_calls != 1 else ''}{spread})",
                         where, partitions)


@dataclass(frozen=True)
class ServedHealth:
    """How a served period's requests went, read from its request log: traffic, failures and latency
    (arrival to durable answer, as clients saw it), with the thresholds that judge them."""

    rows: int
    requests_invalid: int  # refused before scoring (422)
    error_rate: float  # rows the model could not score, of those answered
    max_error_rate: float | None  # serve.max_error_rate
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    latency_p99_ms: float | None
    max_p99_ms: float | None  # serve.max_p99_ms
    versions: dict[str, int]  # rows each model version scored (two when the champion moved mid-period)
    breaches: tuple[str, ...]
    detail: str

    @property
    def breached(self) -> bool:
        return bool(self.breaches)


def served_health(period: ServedPeriod, cfg: ServeConfig) -> ServedHealth:
    """Judge a served period against ``serve.max_p99_ms`` and ``serve.max_error_rate`` (each unset: reported only)."""
    breaches = []
    p99 = period.latency_p99_ms
    if cfg.max_p99_ms is not None and p99 is not None and p99 > cfg.max_p99_ms:
        breaches.append(f"p99 latency {p99:.1f} ms on {period.batch_id} > serve.max_p99_ms {cfg.max_p99_ms:g}")
    if cfg.max_error_rate is not None and period.error_rate > cfg.max_error_rate:
        breaches.append(f"error rate {period.error_rate:.2%} on {period.batch_id} > serve.max_error_rate {cfg.max_error_rate:.2%}")
    latency = ("no latency (no answered request)" if p99 is None else
               f"latency p50 {period.latency_p50_ms:.1f} / p95 {period.latency_p95_ms:.1f} / p99 {p99:.1f} ms"
               + ("" if cfg.max_p99_ms is None else f" ({'>' if p99 > cfg.max_p99_ms else '<='} max_p99_ms {cfg.max_p99_ms:g})"))
    errors = f"error rate {period.error_rate:.2%}" + (
        "" if cfg.max_error_rate is None else f" ({'>' if period.error_rate > cfg.max_error_rate else '<='} max {cfg.max_error_rate:.2%})")
    versions = ", ".join(f"v{v}: {n}" for v, n in period.versions.items())
    detail = (f"{period.rows} served rows ({versions or 'none'}), {period.requests_invalid} invalid request(s) refused, "
              f"{errors}, {latency}")
    return ServedHealth(period.rows, period.requests_invalid, period.error_rate, cfg.max_error_rate, period.latency_p50_ms,
                        period.latency_p95_ms, p99, cfg.max_p99_ms, dict(period.versions), tuple(breaches), detail)


# --- labels -----------------------------------------------------------------------------


@dataclass(frozen=True)
class LabelStatus:
    n_predictions: int
    n_labelled: int
    coverage: float  # share of logged predictions with a label
    overdue: int  # predictions older than the deadline with no label: reported, never silently dropped
    unknown_ids: int  # ids in recent label files (a deadline after the horizon starts) that no prediction of the horizon has
    median_latency_days: float | None
    p90_latency_days: float | None
    deadline_days: int
    since: str | None = None  # the oldest batch counted (the status covers a bounded horizon)
    early: int = 0  # labels in files dated before their batch: not evaluated (a misnamed file), counted here
    conflicts: int = 0  # ids labelled twice with different labels within one file: the last row is used, counted here


def label_status(arrivals: LabelArrivals, as_of: date, deadline_days: int, since: str | None = None) -> LabelStatus:
    """Coverage, overdue predictions, labels for unknown ids and latency from ``arrivals``; ``since``: the
    oldest batch they cover, for the report."""
    found = ~np.isnat(arrivals.arrival)
    early = found & (arrivals.arrival < arrivals.batch_date)  # the matured window takes a batch's labels from its day on
    arrived = found & ~early
    age = (np.datetime64(as_of, "D") - arrivals.batch_date).astype("int64")
    latency = (arrivals.arrival[arrived] - arrivals.batch_date[arrived]).astype("int64")
    n = len(arrivals.batch_date)
    return LabelStatus(
        n_predictions=n,
        n_labelled=int(arrived.sum()),
        coverage=float(arrived.mean()) if n else 0.0,
        overdue=int(((~arrived) & (age > deadline_days)).sum()),
        unknown_ids=arrivals.unknown_ids,
        median_latency_days=float(np.median(latency)) if len(latency) else None,
        p90_latency_days=float(np.quantile(latency, 0.9)) if len(latency) else None,
        deadline_days=deadline_days,
        since=since,
        early=int(early.sum()),
        conflicts=arrivals.conflicts,
    )


# --- estimated performance (no labels yet) ----------------------------------------------


@dataclass(frozen=True)
class Calibration:
    """Map from the model's probability to the observed positive rate on its holdout, as knots."""

    x: np.ndarray
    y: np.ndarray

    def apply(self, probability: np.ndarray) -> np.ndarray:
        return np.interp(probability, self.x, self.y)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def fit_calibration(y: np.ndarray, probability: np.ndarray) -> Calibration:
    """Platt scaling on the logit: two parameters, so a holdout of a few thousand rows pins it down
    (isotonic regression's steps carried enough noise to make the estimate's intervals too narrow)."""
    platt = LogisticRegression(C=1e6).fit(_logit(np.asarray(probability))[:, None], np.asarray(y))
    grid = np.linspace(0.0, 1.0, 2001)
    return Calibration(grid, platt.predict_proba(_logit(grid)[:, None])[:, 1])


@dataclass(frozen=True)
class EstimatedPerformance:
    window: str
    n_rows: int
    metrics: dict[str, float]  # accuracy, roc_auc
    intervals: dict[str, tuple[float, float]]
    confidence: float


def estimate_performance(probability: np.ndarray, calibration: Calibration, threshold: float, window: str,
                         n_simulations: int, confidence: float, seed: int = 0,
                         simulate_max_rows: int = BOOTSTRAP_MAX_ROWS) -> EstimatedPerformance:
    """CBPE: draw labels from the calibrated probabilities and score the model's fixed predictions on them.

    If the calibration holds (no concept drift), the realized metric of this window is a draw
    from the same distribution, so the interval is where it will land once labels arrive. Above
    ``simulate_max_rows`` rows the draws' distribution is taken analytically instead: accuracy is a
    sum of independent Bernoulli rows, AUC a smooth function of two such sums (delta method).
    """
    probability = np.asarray(probability, dtype="float64")
    calibrated = calibration.apply(probability)
    predicted = probability >= threshold
    ranks = stats.rankdata(probability)
    n = len(probability)
    right = np.where(predicted, calibrated, 1 - calibrated)  # chance each row's prediction proves right
    if n > simulate_max_rows:
        metrics, intervals = _expected_labelings(right, calibrated, ranks, confidence)
        return EstimatedPerformance(window, n, metrics, intervals, confidence)
    rng = np.random.default_rng(seed)

    def simulate(n_labelings: int) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.random((n_labelings, n)) < calibrated
        positives = labels.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            auc = (labels @ ranks - positives * (positives + 1) / 2) / (positives * (n - positives))
        return (labels == predicted).mean(axis=1), auc

    # In blocks of labelings, like the bootstrap: memory stays flat however many rows the batch has.
    block = max(1, min(n_simulations, BLOCK_CELLS // max(n, 1)))
    accuracy, auc = (np.concatenate(parts) for parts in zip(*(simulate(min(block, n_simulations - start))
                                                                 for start in range(0, n_simulations, block))))
    tail = (1 - confidence) / 2 * 100
    auc = auc[np.isfinite(auc)]
    return EstimatedPerformance(
        window, len(probability),
        {"accuracy": float(right.mean()), "roc_auc": float(auc.mean()) if len(auc) else float("nan")},
        {"accuracy": tuple(float(v) for v in np.percentile(accuracy, [tail, 100 - tail])),
         "roc_auc": tuple(float(v) for v in np.percentile(auc, [tail, 100 - tail])) if len(auc) else (float("nan"),) * 2},
        confidence,
    )


def _expected_labelings(right: np.ndarray, calibrated: np.ndarray, ranks: np.ndarray, confidence: float):
    """Mean and normal interval of accuracy and AUC over labelings drawn row by row from ``calibrated``.

    AUC of one labeling L is (S - P(P+1)/2) / (P(n-P)) with S = sum(L * rank), P = sum(L): the
    delta method on (S, P), whose means and covariance are sums over rows."""
    n, z = len(right), z_score(confidence)
    accuracy, accuracy_sd = right.mean(), np.sqrt(np.sum(right * (1 - right))) / n
    spread = calibrated * (1 - calibrated)
    s, p = calibrated @ ranks, calibrated.sum()
    var_s, var_p, cov = spread @ ranks**2, spread.sum(), spread @ ranks
    pairs = p * (n - p)
    auc = (s - p * (p + 1) / 2) / pairs
    d_s, d_p = 1 / pairs, (-(p + 0.5) * pairs - (s - p * (p + 1) / 2) * (n - 2 * p)) / pairs**2
    auc_sd = np.sqrt(d_s**2 * var_s + 2 * d_s * d_p * cov + d_p**2 * var_p)
    return ({"accuracy": float(accuracy), "roc_auc": float(auc)},
            {"accuracy": (float(accuracy - z * accuracy_sd), float(accuracy + z * accuracy_sd)),
             "roc_auc": (float(auc - z * auc_sd), float(auc + z * auc_sd))})
