"""The daily schedule of prefect.yaml creates runs on the server `make up` starts."""

from __future__ import annotations

import time

import pytest
from prefect.client.schemas.objects import StateType

from tests.integration.conftest import runs_of

pytestmark = pytest.mark.integration


def test_the_daily_monitor_deployment_gets_scheduled_runs(made_up):
    # The scheduler service visits deployments every 60 s: two visits are plenty.
    deadline = time.monotonic() + 150
    while not (scheduled := [r for r in runs_of("monitor/daily") if r.state and r.state.type == StateType.SCHEDULED]):
        assert time.monotonic() < deadline, "no scheduled monitor/daily run after 150 s; see the scheduler errors in prefect-server.log"
        time.sleep(2)
    times = sorted(r.expected_start_time for r in scheduled)
    assert all((t.hour, t.minute) == (6, 0) for t in times)  # cron "0 6 * * *" in UTC
    assert len({t.date() for t in times}) == len(times)  # one run a day
    log = (made_up["run_dir"] / "prefect-server.log").read_text(errors="replace")
    assert "Can't evaluate bulk DML" not in log
