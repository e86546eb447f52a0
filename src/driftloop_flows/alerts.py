"""Alerts: Prefect automations that notify a person through a webhook (Slack, or any endpoint).

`make up` runs ``python -m driftloop_flows.alerts --config driftloop.yaml`` against its server: with
``alerts.webhook_url`` (or DRIFTLOOP_ALERT_WEBHOOK) set, it saves a notification block and creates
one automation per signal, replacing those of an earlier `make up`:

- ``driftloop.model.watch``: a signal below the retrain bar, or a retrain held back;
- ``driftloop.model.degraded``: the policy says retrain;
- ``driftloop.labels.overdue``: predictions older than the label deadline still have no label;
- a monitor flow run that failed or crashed (a quarantined batch, MLflow down, a bad file).

Each message names the model, the batch and the reasons. The notification is sent by the
server's automation service, so it arrives whatever process ran the monitor.
"""

from __future__ import annotations

import argparse
import re
import sys

from prefect.automations import Automation, EventTrigger, SendNotification
from prefect.blocks.notifications import CustomWebhookNotificationBlock, SlackWebhook
from prefect.events.schemas.automations import Posture

from driftloop.config import Config, load_config
from driftloop_flows.events import DEGRADED, OVERDUE, WATCH
_MODEL = "{{ event.resource['prefect.resource.name'] }}"
# name -> (events, match, match_related, subject, body); bodies are Jinja templates over the event.
SIGNALS = {
    "watch": ([WATCH], {"prefect.resource.id": "driftloop.model.{model}"}, {},
              f"driftloop: {_MODEL} needs a look (batch {{{{ event.payload.as_of }}}})",
              f"Model {_MODEL}, batch {{{{ event.payload.as_of }}}}: decision {{{{ event.payload.action }}}}. "
              "Reasons: {{ event.payload.reasons | join('; ') }}"),
    "degraded": ([DEGRADED], {"prefect.resource.id": "driftloop.model.{model}"}, {},
                 f"driftloop: {_MODEL} degraded (batch {{{{ event.payload.as_of }}}}), retraining",
                 f"Model {_MODEL}, batch {{{{ event.payload.as_of }}}}: retrain requested ({{{{ event.payload.trigger }}}}). "
                 "Reasons: {{ event.payload.reasons | join('; ') }}"),
    "labels overdue": ([OVERDUE], {"prefect.resource.id": "driftloop.model.{model}"}, {},
                       f"driftloop: labels overdue for {_MODEL} (batch {{{{ event.payload.as_of }}}})",
                       f"Model {_MODEL}, batch {{{{ event.payload.as_of }}}}: {{{{ event.payload.overdue }}}} predictions are older "
                       "than the label deadline ({{ event.payload.deadline_days }} days) and have no label; "
                       "label coverage {{ event.payload.coverage }}. Reasons: {{ event.payload.reasons | join('; ') }}"),
    # A flow run's event is named by its state's name: a quarantined batch's run ends Failed, named Quarantined.
    "monitor failed": (["prefect.flow-run.Failed", "prefect.flow-run.Quarantined", "prefect.flow-run.Crashed"],
                       {"prefect.resource.id": "prefect.flow-run.*"},
                       {"prefect.resource.role": "flow", "prefect.resource.name": "monitor"},
                       "driftloop: monitor run {{ flow_run.name }} failed",
                       "Monitor run {{ flow_run.name }} (model {model}, batch {{ flow_run.parameters.batch_id }}) ended "
                       "{{ flow_run.state.name }}: {{ flow_run.state.message }}"),
}


def _block_name(model: str) -> str:
    return "driftloop-alerts-" + re.sub(r"[^a-z0-9-]+", "-", model.lower()).strip("-")


def automation_name(model: str, signal: str) -> str:
    return f"driftloop: notify on {signal} ({model})"


def install(cfg: Config) -> list[str]:
    """Save the notification block and (re)create the automations; the names created (none without a webhook)."""
    alerts, model = cfg.alerts, cfg.registry.model_name
    if not alerts.webhook_url:
        return []
    block = (SlackWebhook(url=alerts.webhook_url) if alerts.kind == "slack" else
             CustomWebhookNotificationBlock(name="driftloop", url=alerts.webhook_url,
                                            json_data={"subject": "{{subject}}", "body": "{{body}}", "text": "{{subject}}\n{{body}}"}))
    block_id = block.save(_block_name(model), overwrite=True)
    created = []
    for signal, (events, match, related, subject, body) in SIGNALS.items():
        name = automation_name(model, signal)
        try:
            Automation.read(name=name).delete()  # replaced, not duplicated, by a second `make up`
        except ValueError:
            pass
        Automation(
            name=name,
            description=f"driftloop alert for {model}: {signal} (created by make up from alerts.webhook_url)",
            trigger=EventTrigger(expect=set(events), match={k: v.format(model=model) for k, v in match.items()},
                                 match_related=related, posture=Posture.Reactive, threshold=1, within=0),
            actions=[SendNotification(block_document_id=block_id, subject=subject, body=body.replace("{model}", model))],
        ).create()
        created.append(name)
    return created


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m driftloop_flows.alerts", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="driftloop.yaml")
    cfg = load_config(parser.parse_args(argv).config)
    created = install(cfg)
    if not created:
        print(f"alerts: no alerts.webhook_url (or DRIFTLOOP_ALERT_WEBHOOK) for {cfg.registry.model_name}: no notification automations")
    for name in created:
        print(f"alerts: automation '{name}' sends to the {cfg.alerts.kind} webhook")
    return 0


if __name__ == "__main__":
    sys.exit(main())
