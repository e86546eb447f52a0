"""What a person reads: monitor reports and model version descriptions, as JSON and markdown."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from driftloop.comparison import Comparison
from driftloop.drift import ColumnDrift, DriftReport
from driftloop.evaluation import EstimatedPerformance, LabelStatus, MetricCheck, PerformanceReport, ServedHealth, ServiceHealth
from driftloop.policy import GateRule, GateVerdict, RetrainDecision
from driftloop.rootcause import RootCause


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}g}" if abs(value) < 1e-3 and value != 0 else f"{value:.{digits}f}"


_SHORT = {"roc_auc": "auc", "accuracy": "acc", "precision": "prec", "recall": "rec", "log_loss": "logloss"}


@dataclass(frozen=True)
class MonitorReport:
    batch_id: str
    model_version: str
    n_rows: int
    validation: str
    drift: DriftReport
    prediction_drift: DriftReport | None
    target_drift: DriftReport | None
    performance: PerformanceReport | None
    decision: RetrainDecision
    labels: LabelStatus | None = None
    estimated: EstimatedPerformance | None = None  # this batch, before its labels arrive
    estimated_checks: tuple[MetricCheck, ...] = ()
    estimated_matured: EstimatedPerformance | None = None  # the matured window, to check the estimate against reality
    health: ServiceHealth | None = None
    root_cause: RootCause | None = None  # what most likely explains the signals, first in the report
    missing_before: tuple[str, ...] = ()  # batches the cadence expected since the previous one, never delivered
    served: ServedHealth | None = None  # a batch `driftloop serve` logged: its requests' traffic, errors and latency

    @property
    def drift_verdict(self) -> str:
        parts = []
        if self.drift.drifted:
            parts.append(f"{len(self.drift.drifted_columns)}/{len(self.drift.columns)} features")
        if self.prediction_drift is not None and self.prediction_drift.drifted:
            parts.append("predictions")
        if self.target_drift is not None and self.target_drift.drifted:
            parts.append("target")
        return "drift: " + " + ".join(parts) if parts else "no drift"

    @property
    def signals(self) -> dict[str, tuple[str, ...]]:
        """What each monitoring signal flagged on this batch: drifted columns, breached metrics."""
        drifted = lambda r: r.drifted_columns if r is not None else ()  # noqa: E731
        realized = () if self.performance is None else tuple(
            [c.metric for c in self.performance.checks if c.breached]
            + [f"{c.metric} on {s.segment}" for s in self.performance.segments for c in s.checks if c.breached])
        return {
            "feature drift": drifted(self.drift),
            "prediction drift": drifted(self.prediction_drift),
            "estimated performance": tuple(c.metric for c in self.estimated_checks if c.breached),
            "target drift": drifted(self.target_drift),
            "realized performance": realized,
        }

    @property
    def all_drift(self) -> tuple[ColumnDrift, ...]:
        return tuple(c for r in (self.drift, self.prediction_drift, self.target_drift) if r for c in r.columns)

    @property
    def performance_summary(self) -> str:
        """The headline metric estimated on this batch, and every metric of the task realized on the
        matured window (a drop in accuracy must not hide behind a steady AUC); a breached one is starred."""
        estimate = f"est {_fmt(self.estimated.metrics['roc_auc'])}" if self.estimated else ""
        if self.performance is None:
            return f"{estimate}, labels pending" if estimate else "labels pending"
        breached = {c.metric for c in self.performance.checks if c.breached}
        realized = " ".join(f"{_SHORT.get(m, m)} {_fmt(v)}{'*' if m in breached else ''}"
                            for m, v in self.performance.metrics.items() if "." not in m)  # per-class ones: in the table
        n = len(self.performance.window)
        return f"{estimate + ', ' if estimate else ''}{realized} ({n} batch{'es' if n != 1 else ''})"

    def metrics(self) -> dict[str, float]:
        values = {"rows": float(self.n_rows), "drift_share": self.drift.share_drifted}
        values |= {f"distance_{c.column}": c.distance for c in self.all_drift if c.distance is not None}
        if self.performance is not None:
            values |= {f"matured_{k}": v for k, v in self.performance.metrics.items()}
            values["matured_rows"] = float(self.performance.n_rows)
        if self.estimated is not None:
            values |= {f"estimated_{k}": v for k, v in self.estimated.metrics.items()}
        if self.estimated_matured is not None and self.performance is not None:
            # How far the label-free estimate was from what the labels then showed, on the same rows.
            values |= {f"estimate_error_{k}": self.performance.metrics[k] - v for k, v in self.estimated_matured.metrics.items()}
        if self.health is not None:
            values |= {"scoring_rows_per_second": self.health.rows_per_second, "failed_rows": float(self.health.failed_rows),
                       "failed_share": self.health.failed_share}
        if self.served is not None:
            values |= {"served_rows": float(self.served.rows), "served_invalid_requests": float(self.served.requests_invalid),
                       "served_error_rate": self.served.error_rate}
            values |= {f"served_latency_{q}_ms": v for q, v in (("p50", self.served.latency_p50_ms), ("p95", self.served.latency_p95_ms),
                                                                 ("p99", self.served.latency_p99_ms)) if v is not None}
        if self.labels is not None:
            values |= {"label_coverage": self.labels.coverage, "labels_overdue": float(self.labels.overdue),
                       "labels_unknown_ids": float(self.labels.unknown_ids), "labels_early": float(self.labels.early),
                       "labels_conflicts": float(self.labels.conflicts)}
        return values

    def to_dict(self) -> dict:
        return {
            "batch_id": self.batch_id,
            "model_version": self.model_version,
            "n_rows": self.n_rows,
            "validation": self.validation,
            "drift_verdict": self.drift_verdict,
            "drift": self.drift.records(),
            "drift_correction": self.drift.correction,
            "prediction_drift": self.prediction_drift.records() if self.prediction_drift else None,
            "target_drift": self.target_drift.records() if self.target_drift else None,
            "performance": asdict(self.performance) if self.performance else None,
            "labels": asdict(self.labels) if self.labels else None,
            "estimated": asdict(self.estimated) if self.estimated else None,
            "estimated_matured": asdict(self.estimated_matured) if self.estimated_matured else None,
            "service_health": asdict(self.health) if self.health else None,
            "served": asdict(self.served) if self.served else None,
            "decision": {"action": self.decision.action, "reasons": list(self.decision.reasons)},
            "root_cause": asdict(self.root_cause) if self.root_cause else None,
            "missing_before": list(self.missing_before),
        }

    def to_markdown(self) -> str:
        lines = [
            f"# Monitor report for batch {self.batch_id}",
            "",
            f"Champion version {self.model_version}, {self.n_rows} rows. Validation {self.validation}.",
            "",
            *([f"**{len(self.missing_before)} batch(es) the cadence expected before this one never arrived:** "
               f"{', '.join(self.missing_before[:5])}{' ...' if len(self.missing_before) > 5 else ''}", ""] if self.missing_before else []),
            f"**Decision: {self.decision.action}**",
            "",
            *[f"- {r}" for r in self.decision.reasons or ("no threshold crossed",)],
            "",
            *root_cause_lines(self.root_cause),
            "## Performance on the matured window",
            "",
        ]
        if self.performance is None:
            lines.append("Not enough labelled rows yet.")
        else:
            perf = self.performance
            checked = {c.metric: c for c in perf.checks}
            lines += [f"{perf.n_rows} labelled rows of {', '.join(perf.window)}. Every metric of the task, with its "
                      "interval; those with a threshold (evaluation.thresholds) are judged, overall and per segment.", "",
                      "| scope | metric | value | interval | reference | verdict |", "|---|---|---|---|---|---|"]
            for metric, value in perf.metrics.items():
                low, high = perf.intervals.get(metric, (float("nan"), float("nan")))
                check = checked.get(metric)
                verdict = "-" if check is None else "**breached**" if check.breached else "ok"
                lines.append(f"| all | {metric} | {_fmt(value)} | [{_fmt(low)}, {_fmt(high)}] | "
                             f"{_fmt(perf.references.get(metric))} | {verdict} |")
            lines += [f"| {s.segment} | {c.metric} | {_fmt(c.value)} | [{_fmt(c.low)}, {_fmt(c.high)}] | {_fmt(c.reference)} | "
                      f"{'**breached**' if c.breached else 'ok'} |" for s in perf.segments for c in s.checks]
            lines += [f"- fairness: {g.detail}" for g in self.performance.fairness]
        for title, est in (("this batch (no labels yet)", self.estimated), ("the matured window, for comparison", self.estimated_matured)):
            if est is not None:
                lines += ["", f"Estimated from calibrated probabilities on {title}: " + ", ".join(
                    f"{m} {_fmt(v)} [{_fmt(est.intervals[m][0])}, {_fmt(est.intervals[m][1])}]" for m, v in est.metrics.items())]
        if self.health is not None:
            lines += ["", f"Service health: {self.health.detail}."]
        if self.served is not None:
            lines += ["", f"Serving (the request log of `driftloop serve`): {self.served.detail}."]
        if self.labels is not None:
            lb = self.labels
            lines += ["", f"Labels{f' (batches since {lb.since})' if lb.since else ''}: {lb.n_labelled}/{lb.n_predictions} "
                      f"predictions labelled ({lb.coverage:.0%}), "
                      f"{lb.overdue} overdue (older than {lb.deadline_days} days, no label), {lb.unknown_ids} labels for unknown ids, "
                      f"latency median {_fmt(lb.median_latency_days, 1)} days."]
            if lb.conflicts:
                lines += [f"{lb.conflicts} ids were labelled twice with different labels within one label file: the file's "
                          "last row for each is used; fix the export if that is not the truth."]
            if lb.early:
                lines += [f"{lb.early} labels came in files dated before their batch: left out of evaluation; a label file "
                          "is named by the day it arrived, so check those files' names."]
        lines += ["", "## Drift against the champion's reference", "",
                  f"Each family (features, predictions, target) is corrected with {self.drift.correction}; a column "
                  "drifts when its adjusted p-value is below alpha and its distance is above max_distance.", "",
                  drift_table(self.all_drift)]
        return "\n".join(lines) + "\n"


def root_cause_lines(cause: RootCause | None) -> list[str]:
    """The report's opening section: what most likely explains it, suspects and costly segments ranked."""
    if cause is None:
        return []
    lines = ["## What most likely explains it", "", cause.summary, ""]
    if cause.suspects:
        lines += ["| drifted feature | drift / max_distance | champion's importance | rank score | why |", "|---|---|---|---|---|"]
        lines += [f"| {s.column} | {s.drift_ratio:.1f}x | {_fmt(s.importance)} | {_fmt(s.score)} | {s.why} |" for s in cause.suspects]
        lines.append("")
    if cause.segments:
        lines += ["| segment | metric | share of rows | loss vs its holdout | contribution (share x loss) |", "|---|---|---|---|---|"]
        lines += [f"| {g.segment} | {g.metric} | {g.share:.0%} | {_fmt(g.loss)} | {_fmt(g.contribution)} |" for g in cause.segments]
        lines.append("")
    return lines


# Label-free signals first: they can fire the day a batch arrives; the last two wait for its labels.
SIGNALS = ("prediction drift", "estimated performance", "feature drift", "target drift", "realized performance")


@dataclass(frozen=True)
class Detection:
    """When a signal first flagged something new after an event, and what."""

    signal: str
    day: int | None  # None: it never did
    lag_days: int | None
    new: tuple[str, ...]  # what it flagged that it had not flagged the day before the event
    already_on: tuple[str, ...]  # what it was already flagging before the event (an earlier cause)


def detection_timeline(reports: dict[int, MonitorReport], event_day: int) -> tuple[Detection, ...]:
    """For each signal, the first day on or after ``event_day`` it flagged something it was not
    flagging on the last monitored day before the event. ``reports``: day number -> report."""
    before = [day for day in reports if day < event_day]
    baseline = reports[max(before)].signals if before else {}
    timeline = []
    for signal in SIGNALS:
        already = baseline.get(signal, ())
        found = Detection(signal, None, None, (), already)
        for day in sorted(d for d in reports if d >= event_day):
            new = tuple(x for x in reports[day].signals[signal] if x not in already)
            if new:
                found = Detection(signal, day, day - event_day, new, already)
                break
        timeline.append(found)
    return tuple(timeline)


def drift_table(columns: tuple[ColumnDrift, ...]) -> str:
    rows = ["| column | test | p (adjusted) | distance | max_distance | drifted | why |", "|---|---|---|---|---|---|---|"]
    for c in columns:
        rows.append(
            f"| {c.column} | {c.test} | {_fmt(c.p_adjusted)} | {c.method} {_fmt(c.distance)} | {c.max_distance} | "
            f"{'**yes**' if c.drifted else 'no'} | {c.why} |"
        )
    return "\n".join(rows)


def comparison_markdown(comparison: Comparison, verdict: GateVerdict, champion_version: str) -> str:
    """Challenger vs champion on the shared holdout: the gate, every metric, McNemar, segments."""
    lines = [
        f"**Gate: {'PASSED' if verdict.passed else 'FAILED'}**",
        "",
        verdict.markdown(),
        "",
        f"Holdout of {comparison.n_rows} labelled rows neither model trained on. *Improvement* is how much better the "
        f"challenger is (for log_loss, brier, mae and rmse lower is better, so their sign is flipped); intervals are "
        f"{next(iter(comparison.overall.values())).confidence:.0%} paired bootstrap intervals.",
        "",
        f"| metric | challenger | champion v{champion_version} | improvement | interval |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {d.metric} | {_fmt(d.challenger)} | {_fmt(d.champion)} | {d.improvement:+.4f} | [{d.low:+.4f}, {d.high:+.4f}] |"
        for d in comparison.overall.values()
    ]
    if (m := comparison.mcnemar) is not None:
        lines += [
            "",
            f"McNemar on disagreements: challenger alone right on {m.challenger_only_right} rows, champion alone right on "
            f"{m.champion_only_right}, p = {_fmt(m.p_value)}.",
        ]
    if comparison.segments:
        lines += ["", "| segment | rows | metric | challenger | champion | improvement | interval |", "|---|---|---|---|---|---|---|"]
        for segment, by_metric in comparison.segments.items():
            for d in by_metric.values():
                lines.append(
                    f"| {segment} | {comparison.segment_rows[segment]} | {d.metric} | {_fmt(d.challenger)} | {_fmt(d.champion)} | "
                    f"{d.improvement:+.4f} | [{d.low:+.4f}, {d.high:+.4f}] |"
                )
    return "\n".join(lines) + "\n"


def gate_lines(verdict: GateVerdict) -> list[str]:
    """The gate as markdown bullets: every overall rule, every failing segment, and each metric's passing segments in one line."""
    segment = lambda r: " on " in r.rule  # noqa: E731
    lines = [f"- **{'pass' if r.passed else 'FAIL'}** {r.rule}: {r.detail}" for r in verdict.rules if not segment(r) or not r.passed]
    passed: dict[str, list[GateRule]] = {}
    for r in verdict.rules:
        if segment(r) and r.passed:
            passed.setdefault(r.rule.split(" on ")[0], []).append(r)
    for metric, rules in passed.items():
        closest = min(rules, key=lambda r: r.value)
        lines.append(f"- **pass** {metric} on {len(rules)} segment(s), each within max_segment_loss {-closest.threshold:g} "
                     f"(closest: {closest.rule.split(' on ')[1]}, improvement {closest.value:+.4f})")
    return lines


def version_description(
    *, trigger: str, reasons: list[str], window: str, n_train: int, holdout: str, n_holdout: int,
    verdict: GateVerdict, champion_version: str, monitor_run: str | None, offer: str, comparison_artifact: str,
) -> str:
    """The markdown a reviewer sees on the model version page in the MLflow UI (and above the review form).

    The verdict comes first; the gate is a list, not a table: MLflow's renderer draws tables with no cell spacing."""
    lines = [
        f"**Promotion gate: {'PASSED' if verdict.passed else 'FAILED'}** against champion v{champion_version} on the same holdout. "
        f"**Review:** {offer}.",
        "",
        *gate_lines(verdict),
        "",
        f"**Training window:** {window} ({n_train} rows). **Holdout:** {holdout} ({n_holdout} rows, not trained on by "
        f"either model). **Parent:** champion v{champion_version}.",
        "",
        f"**Why trained:** {trigger}" + (f" (monitor run `{monitor_run}`, experiment *-monitoring)" if monitor_run else ""),
        "",
        *[f"- {r}" for r in reasons],
        "",
        f"Full comparison (all metrics, McNemar, every segment): artifact `{comparison_artifact}` of this version's run.",
    ]
    return "\n".join(lines)
