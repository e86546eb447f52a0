"""What most likely explains a batch's signals: pure, results in, explanation out.

Drifted features are ranked by how far past their threshold they drifted times how much the
champion relies on them (permutation importance on its holdout, measured when it was trained and
kept in its reference profile): a large shift in a feature the model ignores explains nothing.
Segments are ranked by their share of the matured window times their loss in the metric against
their own holdout reference: where the rows that cost the most are. When performance fell and
no feature or prediction drifted, nothing label-free explains the drop: the relation between
the features and the target changed (concept drift), and the report says so in those words.
"""

from __future__ import annotations

from dataclasses import dataclass

from driftloop.comparison import METRIC_DIRECTION
from driftloop.drift import DriftReport
from driftloop.evaluation import MetricCheck, PerformanceReport


@dataclass(frozen=True)
class Suspect:
    column: str
    drift_ratio: float  # distance / max_distance: 1 is the threshold
    importance: float | None  # the champion's permutation importance (drop in its headline metric), None if not measured
    score: float  # drift_ratio x importance share (drift_ratio alone without importances)
    why: str


@dataclass(frozen=True)
class SegmentLoss:
    segment: str
    metric: str
    share: float  # of the matured window's rows
    loss: float  # how much worse than the segment's holdout reference (positive: worse)
    contribution: float  # share x loss
    why: str


@dataclass(frozen=True)
class RootCause:
    summary: str  # one plain sentence first, for the top of the report
    suspects: tuple[Suspect, ...]
    segments: tuple[SegmentLoss, ...]
    concept_drift: bool  # performance fell and nothing label-free moved


def _suspects(drift: DriftReport, importance: dict[str, float]) -> list[Suspect]:
    total = sum(max(v, 0.0) for v in importance.values())
    found = []
    for c in drift.columns:
        if not c.drifted or c.distance is None or not c.max_distance:
            continue
        ratio = c.distance / c.max_distance
        weight = importance.get(c.column)
        share = max(weight, 0.0) / total if weight is not None and total > 0 else None
        score = ratio * share if share is not None else ratio
        relied = f"; the champion's importance {weight:.3f} ({share:.0%} of the total)" if share is not None else ""
        found.append(Suspect(c.column, ratio, weight, score, f"{c.method} {c.distance:.3f} is {ratio:.1f}x max_distance {c.max_distance}{relied}"))
    return sorted(found, key=lambda s: s.score, reverse=True)


def _segment_losses(performance: PerformanceReport, limit: int) -> list[SegmentLoss]:
    found = []
    for segment in performance.segments:
        check: MetricCheck | None = next((c for c in segment.checks if c.reference is not None and c.value == c.value), None)
        if check is None or not performance.n_rows:
            continue
        loss = (check.reference - check.value) if METRIC_DIRECTION[check.metric] else (check.value - check.reference)
        share = segment.n_rows / performance.n_rows
        if loss > 0:
            found.append(SegmentLoss(segment.segment, check.metric, share, loss, share * loss,
                                     f"{share:.0%} of rows, {check.metric} {check.value:.3f} against {check.reference:.3f} on its holdout"))
    return sorted(found, key=lambda s: s.contribution, reverse=True)[:limit]


def explain(features: DriftReport, predictions: DriftReport | None, performance: PerformanceReport | None,
            estimated_breaches: tuple[str, ...], importance: dict[str, float], limit: int = 5) -> RootCause:
    suspects = _suspects(features, importance)[:limit]
    segments = _segment_losses(performance, limit) if performance is not None else []
    fell = bool(performance is not None and performance.breaches)
    predictions_moved = bool(predictions is not None and predictions.drifted)
    concept = fell and not suspects and not predictions_moved
    if concept:
        metrics = ", ".join(sorted({c.metric for c in performance.checks if c.breached}
                                   | {f"{c.metric} on {s.segment}" for s in performance.segments for c in s.checks if c.breached}))
        summary = (f"Performance fell ({metrics}) and no feature or prediction drifted: nothing label-free explains the drop. "
                   "The relation between the features and the target changed (concept drift); only recent labels can fix it.")
    elif suspects:
        top = ", ".join(f"{s.column} ({s.why})" for s in suspects[:3])
        outcome = ("performance fell" if fell else "estimated performance fell" if estimated_breaches
                   else "performance holds so far")
        summary = f"Most likely explanation, drift weighed by what the champion relies on: {top}; {outcome}."
    elif fell:
        summary = "Performance fell while the predictions moved but no input feature drifted: look at the segments below."
    elif estimated_breaches or predictions_moved:
        summary = "The predictions moved without a drifted input feature: a change in how the features combine, or in a column not monitored."
    else:
        summary = "Nothing to explain: no feature drifted and no metric crossed its threshold."
    if segments and fell:
        summary += f" The segment costing the most: {segments[0].segment} ({segments[0].why})."
    return RootCause(summary, tuple(suspects), tuple(segments), concept)
