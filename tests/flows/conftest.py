import pytest


@pytest.fixture(autouse=True, scope="session")
def prefect_api(prefect_harness):
    """Every flow test runs its flows on the session's Prefect API (tests/conftest.py)."""


def monitor_scenario(folder, target: str, **overrides):
    """The demo customers with ``target`` as the label, bootstrapped and monitored day by day, inline:
    (config, day plans, day number -> MonitorOutcome of each run that completed)."""
    from driftloop.config import load_config
    from driftloop.demo import generate
    from driftloop_flows.bootstrap import bootstrap
    from driftloop_flows.monitor import monitor
    from tests.conftest import write_project

    path = write_project(folder, **overrides)
    cfg = load_config(path)
    days = generate(cfg.demo, cfg.data, target=target).days
    assert bootstrap(config_path=str(path), return_state=True).is_completed()
    outcomes = {}
    for day in days:
        state = monitor(batch_id=day.batch_id, config_path=str(path), return_state=True)
        if state.is_completed():
            outcomes[day.day] = state.result()
    return cfg, days, outcomes
