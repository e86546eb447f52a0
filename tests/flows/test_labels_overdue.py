"""A labels feed that stops: once predictions pass the label deadline without a label, the monitor
says so in its report and emits the event the alert automation notifies a person on."""

import shutil

from prefect.settings import PREFECT_API_URL

from driftloop.config import load_config
from driftloop.demo import generate
from driftloop_flows.bootstrap import bootstrap
from driftloop_flows.events import OVERDUE
from driftloop_flows.monitor import monitor
from tests.conftest import stored_events, write_project


def test_predictions_past_the_label_deadline_without_labels_are_reported_and_announced(tmp_path):
    path = write_project(tmp_path, evaluation={"label_deadline_batches": 1})
    cfg = load_config(path)
    days = [d.batch_id for d in generate(cfg.demo, cfg.data).days if not d.quality_incident][:3]
    assert bootstrap(config_path=str(path), return_state=True).is_completed()
    shutil.rmtree(cfg.data.labels)  # the labels export stopped
    cfg.data.labels.mkdir()

    outcomes = [monitor(batch_id=day, config_path=str(path), return_state=True).result() for day in days]

    assert outcomes[0].report.labels.overdue == 0  # nothing is past the deadline on the first day
    last = outcomes[-1].report.labels
    assert last.overdue > 0 and last.coverage == 0
    ours = {o.monitor_run_id for o in outcomes}  # other flow tests share this API and the demo's dates
    overdue_days = {d for d, o in zip(days, outcomes) if o.report.labels.overdue}
    events = stored_events(PREFECT_API_URL.value(), OVERDUE, where=lambda e: e["payload"]["monitor_run_id"] in ours,
                           at_least=len(overdue_days))
    announced = {e["payload"]["as_of"]: e for e in events}
    assert set(announced) == overdue_days
    payload = announced[days[-1]]["payload"]
    assert payload["overdue"] == last.overdue and "without a label" in payload["reasons"][0]
    assert announced[days[-1]]["resource"]["prefect.resource.name"] == cfg.registry.model_name
