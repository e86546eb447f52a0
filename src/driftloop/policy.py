"""The retraining decision: results in, decision out. Pure, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from driftloop.config import PolicyConfig
from driftloop.drift import ColumnDrift, DriftReport
from driftloop.evaluation import PerformanceReport

Action = Literal["ok", "watch", "hold", "retrain"]


@dataclass(frozen=True)
class RetrainDecision:
    action: Action  # ok: nothing; watch: a signal below the retrain bar; hold: would retrain, in cooldown
    reasons: tuple[str, ...]

    @property
    def retrain(self) -> bool:
        return self.action == "retrain"


def decide_retraining(
    drift: DriftReport,
    performance: PerformanceReport | None,
    prediction_drift: ColumnDrift | None,
    days_since_last_retrain: int | None,
    cfg: PolicyConfig,
) -> RetrainDecision:
    triggers: list[str] = []
    signals: list[str] = []
    if performance is not None:
        breached = [c.reason for c in performance.checks if c.breached]
        (triggers if cfg.retrain_on_performance else signals).extend(breached)
    if drift.drifted:
        message = (
            f"{drift.share_drifted:.0%} of features drifted ({', '.join(drift.drifted_columns)}); "
            f"retrain at max_drifted_share {cfg.max_drifted_share:.0%}"
        )
        (triggers if drift.share_drifted >= cfg.max_drifted_share else signals).append(message)
    if prediction_drift is not None and prediction_drift.drifted:
        signals.append(f"prediction drift: {prediction_drift.why}")

    if triggers:
        if days_since_last_retrain is not None and days_since_last_retrain < cfg.cooldown_days:
            wait = f"last retrain {days_since_last_retrain} day(s) ago, cooldown_days {cfg.cooldown_days}"
            return RetrainDecision("hold", (*triggers, *signals, wait))
        return RetrainDecision("retrain", (*triggers, *signals))
    if signals:
        return RetrainDecision("watch", tuple(signals))
    return RetrainDecision("ok", ())
