"""The events a monitor run emits, on the model's resource (``driftloop.model.<name>``).

Automations act on them: prefect.yaml's trigger starts the retrain deployment on
``driftloop.model.degraded``; `make up`'s alert automations (driftloop_flows.alerts) notify a
person on all three. Each payload names the batch (``as_of``), the reasons and the monitor run.
"""

from __future__ import annotations

from prefect.events import emit_event

from driftloop.config import Config
from driftloop.report import MonitorReport

DEGRADED = "driftloop.model.degraded"
WATCH = "driftloop.model.watch"  # a signal below the retrain bar, or a retrain held back: for a person
OVERDUE = "driftloop.labels.overdue"  # predictions past the label deadline without a label: for a person


def _model(cfg: Config) -> dict[str, str]:
    return {"prefect.resource.id": f"driftloop.model.{cfg.registry.model_name}", "prefect.resource.name": cfg.registry.model_name}


def announce_degradation(cfg: Config, report: MonitorReport, trigger: str, run_id: str, config_path: str, inline: bool) -> None:
    """The event an automation in prefect.yaml turns into a retrain deployment run.

    Its `driftloop.retrain` label says who retrains: the automation matches only
    `deployment`, so a retrain already running inline is never started twice.
    """
    emit_event(
        event=DEGRADED,
        resource=_model(cfg) | {"driftloop.retrain": "inline" if inline else "deployment"},
        payload={"as_of": report.batch_id, "trigger": trigger, "reasons": list(report.decision.reasons),
                 "monitor_run_id": run_id, "config_path": config_path},
    )


def announce_watch(cfg: Config, report: MonitorReport, run_id: str) -> None:
    """An event a Prefect automation can turn into a notification: a label-free signal does not wait for labels."""
    emit_event(
        event=WATCH,
        resource=_model(cfg),
        payload={"as_of": report.batch_id, "action": report.decision.action, "reasons": list(report.decision.reasons),
                 "signals": {name: list(fired) for name, fired in report.signals.items() if fired}, "monitor_run_id": run_id},
    )


def announce_overdue(cfg: Config, report: MonitorReport, run_id: str) -> None:
    """Predictions older than the label deadline still without a label: the labels feed may be stuck."""
    labels = report.labels
    emit_event(
        event=OVERDUE,
        resource=_model(cfg),
        payload={"as_of": report.batch_id, "overdue": labels.overdue, "deadline_days": labels.deadline_days,
                 "coverage": f"{labels.coverage:.0%}", "since": labels.since, "monitor_run_id": run_id,
                 "reasons": [f"{labels.overdue} predictions of the batches since {labels.since} are older than "
                             f"{labels.deadline_days} days without a label; check the label export into {cfg.data.labels}"]},
    )
