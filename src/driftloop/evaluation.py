"""Performance against ground truth on the matured window, with scikit-learn metrics."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from sklearn import metrics as skm

from driftloop.config import EvaluationConfig, MetricThreshold

# name -> (function of (y_true, probability, predicted class), higher is better)
CLASSIFIER_METRICS = {
    "roc_auc": (lambda y, p, c: skm.roc_auc_score(y, p), True),
    "accuracy": (lambda y, p, c: skm.accuracy_score(y, c), True),
    "f1": (lambda y, p, c: skm.f1_score(y, c, zero_division=0), True),
    "log_loss": (lambda y, p, c: skm.log_loss(y, p, labels=[0, 1]), False),
    "brier": (lambda y, p, c: skm.brier_score_loss(y, p), False),
}


def classification_metrics(y_true: np.ndarray, probability: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Every classifier metric; one that is undefined on this window (one class only) is NaN, not 0."""
    y_true = np.asarray(y_true, dtype="int64")
    probability = np.asarray(probability, dtype="float64")
    predicted = (probability >= threshold).astype("int64")
    single_class = len(np.unique(y_true)) < 2
    return {
        name: float("nan") if single_class and name == "roc_auc" else float(fn(y_true, probability, predicted))
        for name, (fn, _) in CLASSIFIER_METRICS.items()
    }


@dataclass(frozen=True)
class MetricCheck:
    metric: str
    value: float
    reference: float | None
    floor: float | None
    max_drop: float | None
    breached: bool
    reason: str


@dataclass(frozen=True)
class PerformanceReport:
    window: tuple[str, ...]  # batch ids whose labels are in
    n_rows: int
    metrics: dict[str, float]
    checks: tuple[MetricCheck, ...]

    @property
    def degraded(self) -> bool:
        return any(c.breached for c in self.checks)


def check_metric(name: str, value: float, reference: float | None, threshold: MetricThreshold, window: str) -> MetricCheck:
    higher_is_better = CLASSIFIER_METRICS[name][1]
    problems = []
    if math.isnan(value):
        return MetricCheck(name, value, reference, threshold.floor, threshold.max_drop, False, f"{name} undefined on {window}")
    if threshold.floor is not None and (value < threshold.floor if higher_is_better else value > threshold.floor):
        problems.append(f"{'below' if higher_is_better else 'above'} floor {threshold.floor}")
    if threshold.max_drop is not None and reference is not None and not math.isnan(reference):
        drop = (reference - value) if higher_is_better else (value - reference)
        if drop > threshold.max_drop:
            problems.append(f"{'down' if higher_is_better else 'up'} {drop:.3f} from reference {reference:.3f} (max_drop {threshold.max_drop})")
    detail = "; ".join(problems) if problems else "within thresholds"
    return MetricCheck(name, value, reference, threshold.floor, threshold.max_drop, bool(problems), f"{name}={value:.3f} on {window}: {detail}")


def evaluate_window(
    y_true: np.ndarray, probability: np.ndarray, window: tuple[str, ...], reference: dict[str, float], cfg: EvaluationConfig
) -> PerformanceReport | None:
    """Metrics and threshold checks for a matured window; None when too few labels have arrived."""
    if len(y_true) < cfg.min_labelled_rows:
        return None
    values = classification_metrics(y_true, probability, cfg.decision_threshold)
    label = f"{window[0]}..{window[-1]} ({len(y_true)} labelled rows)" if window else "empty window"
    checks = tuple(check_metric(m, values[m], reference.get(m), t, label) for m, t in cfg.thresholds.items())
    return PerformanceReport(window, len(y_true), values, checks)
