"""The retraining decision: results in, decision out. Pure, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from driftloop.comparison import Comparison
from driftloop.config import GateConfig, PolicyConfig
from driftloop.drift import DriftReport
from driftloop.evaluation import MetricCheck, PerformanceReport, ServedHealth, ServiceHealth

Action = Literal["ok", "watch", "hold", "retrain"]
ACTIONS: tuple[Action, ...] = get_args(Action)


@dataclass(frozen=True)
class RetrainDecision:
    action: Action  # ok: nothing; watch: a signal below the retrain bar; hold: would retrain, in cooldown
    reasons: tuple[str, ...]

    @property
    def retrain(self) -> bool:
        return self.action == "retrain"


@dataclass(frozen=True)
class GateFailure:
    """The newest retrained version, which failed the promotion gate, and the evidence gathered since."""

    version: str
    holdout_end: str  # the newest labelled batch it was judged on
    newer_labelled_batches: int  # labelled batches that arrived after it, up to the matured window's newest


def decide_retraining(
    drift: DriftReport,
    performance: PerformanceReport | None,
    prediction_drift: DriftReport | None,
    target_drift: DriftReport | None,
    batches_since_last_retrain: int | None,
    cfg: PolicyConfig,
    estimated: tuple[MetricCheck, ...] = (),
    health: ServiceHealth | None = None,
    batch_id: str = "this batch",
    gate_failure: GateFailure | None = None,
    served: ServedHealth | None = None,
) -> RetrainDecision:
    """``estimated``: checks of performance estimated without labels (a signal: no labels to retrain on yet);
    ``health``: rows that failed to score (a signal: retraining does not fix a broken input);
    ``served``: a served period's latency and error rate past ``serve`` thresholds (a signal, an alert:
    a slow or failing server is not a stale model);
    ``gate_failure``: the last retrain failed the gate, so drift alone does not retrain again until
    ``retry_after_batches`` newer labelled batches are in (a performance breach is new evidence).
    Feature and prediction drift are measured on ``batch_id``, target drift on the matured window."""
    triggers: list[str] = []
    signals: list[str] = []
    breached = performance is not None and cfg.retrain_on_performance and performance.degraded
    if health is not None and health.breached:
        signals.append(f"service health: {health.detail}")
    if served is not None:
        signals.extend(f"serving: {breach}" for breach in served.breaches)
    if performance is not None:
        (triggers if cfg.retrain_on_performance else signals).extend(performance.breaches)
        signals.extend(f"fairness: {alert}" for alert in performance.fairness_alerts)
    signals.extend(f"estimated (no labels yet): {c.reason}" for c in estimated if c.breached)
    if drift.drifted:
        message = (
            f"{drift.share_drifted:.0%} of features drifted on {batch_id} vs the champion's reference "
            f"({', '.join(drift.drifted_columns)}); "
            f"retrain at max_drifted_share {cfg.max_drifted_share:.0%}"
        )
        (triggers if cfg.retrain_on_drift and drift.share_drifted >= cfg.max_drifted_share else signals).append(message)
    matured = f"{performance.window[0]}..{performance.window[-1]}" if performance is not None and performance.window else "the matured window"
    for name, report, where in (("prediction", prediction_drift, batch_id), ("target", target_drift, matured)):
        for column in (c for c in (report.columns if report else ()) if c.drifted):
            signals.append(f"{name} drift on {column.column} ({where}): {column.why}")

    if triggers:
        if not breached and gate_failure is not None and gate_failure.newer_labelled_batches < cfg.retry_after_batches:
            wait = (f"drift alone, and v{gate_failure.version} (judged on labels up to {gate_failure.holdout_end}) failed the gate: "
                    f"not retraining on the same evidence until a performance breach or {cfg.retry_after_batches} newer "
                    f"labelled batches (retry_after_batches; {gate_failure.newer_labelled_batches} so far)")
            return RetrainDecision("hold", (*triggers, *signals, wait))
        if batches_since_last_retrain is not None and batches_since_last_retrain < cfg.cooldown_batches:
            wait = f"last retrain asked for {batches_since_last_retrain} batch(es) ago, cooldown_batches {cfg.cooldown_batches}"
            return RetrainDecision("hold", (*triggers, *signals, wait))
        return RetrainDecision("retrain", (*triggers, *signals))
    if signals:
        return RetrainDecision("watch", tuple(signals))
    return RetrainDecision("ok", ())


@dataclass(frozen=True)
class GateRule:
    rule: str
    value: float
    threshold: float
    passed: bool
    detail: str


@dataclass(frozen=True)
class GateVerdict:
    passed: bool
    rules: tuple[GateRule, ...]

    @property
    def failed(self) -> tuple[GateRule, ...]:
        return tuple(r for r in self.rules if not r.passed)

    def markdown(self) -> str:
        rows = ["| rule | value | threshold | verdict |", "|---|---|---|---|"]
        rows += [f"| {r.rule} | {r.value:.4f} | {r.threshold:.4f} | {'pass' if r.passed else '**FAIL**'}: {r.detail} |" for r in self.rules]
        return "\n".join(rows)


def evaluate_gate(comparison: Comparison, cfg: GateConfig) -> GateVerdict:
    """Every configured rule, each with the number it judged and the threshold it used."""
    rules: list[GateRule] = []
    for metric, rule in cfg.rules.items():
        diff = comparison.overall[metric]
        if rule.min_value is not None:
            ok = diff.challenger >= rule.min_value
            rules.append(GateRule(f"{metric} min_value", diff.challenger, rule.min_value, ok,
                                  f"challenger {metric} {diff.challenger:.4f} {'>=' if ok else '<'} {rule.min_value}"))
        if rule.max_value is not None:
            ok = diff.challenger <= rule.max_value
            rules.append(GateRule(f"{metric} max_value", diff.challenger, rule.max_value, ok,
                                  f"challenger {metric} {diff.challenger:.4f} {'<=' if ok else '>'} {rule.max_value}"))
        ok = diff.low > rule.min_improvement
        rules.append(GateRule(
            f"{metric} improvement", diff.low, rule.min_improvement, ok,
            f"improvement {diff.improvement:+.4f}, {diff.confidence:.0%} interval [{diff.low:+.4f}, {diff.high:+.4f}] "
            f"{'clears' if ok else 'does not clear'} {rule.min_improvement:+.4f}",
        ))
        if rule.max_segment_loss is None:
            continue
        for segment, by_metric in comparison.segments.items():
            seg = by_metric[metric]
            ok = seg.improvement >= -rule.max_segment_loss
            rules.append(GateRule(
                f"{metric} on {segment}", seg.improvement, -rule.max_segment_loss, ok,
                f"{segment} ({comparison.segment_rows[segment]} rows): challenger {seg.challenger:.4f} vs champion "
                f"{seg.champion:.4f}, {'within' if ok else 'worse than'} max_segment_loss {rule.max_segment_loss}",
            ))
    return GateVerdict(all(r.passed for r in rules), tuple(rules))
