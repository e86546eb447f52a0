"""README "On the server", followed on the stack `make up` starts: a second model gets a deployment
of its own by pasting the README's snippet into prefect.yaml, and the worker runs its loop."""

from __future__ import annotations

import re
import shutil
import subprocess
import textwrap
import time

import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType
from prefect.deployments import run_deployment

from driftloop.config import load_config
from driftloop.ledger import Ledger
from ops import stack
from tests.conftest import ROOT
from tests.integration.conftest import runs_of

pytestmark = pytest.mark.integration


def readme_deployment() -> str:
    """The yaml block of step 6 of "Use it on your own model", as written there."""
    section = (ROOT / "README.md").read_text(encoding="utf-8").split("6. **On the server**", 1)[1]
    return textwrap.dedent(re.search(r"```yaml\n(.*?)```", section, re.S).group(1))


@pytest.fixture(scope="module")
def second_model(made_up, tmp_path_factory):
    """The loans example (a few weeks of it) in a folder of its own, its snippet deployed beside the demo's."""
    workspace = tmp_path_factory.mktemp("second-model")
    shutil.copytree(ROOT / "examples" / "loans", workspace / "loans", ignore=shutil.ignore_patterns("data", "mlruns", ".driftloop-demo.json"))
    config = workspace / "loans" / "driftloop.yaml"
    raw = yaml.safe_load(config.read_text())
    raw["demo"] |= {"n_batches": 3, "quality_incident_batch": 2}  # three weeks, one of them a bad export
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    env = made_up["env"]
    run = lambda *args: subprocess.run([str(stack.BIN / "driftloop"), *args, "--config", str(config)],  # noqa: E731
                                       env=env, capture_output=True, text=True, check=True)
    run("demo-data")
    run("suite", "init", "--force")
    # The only change to the snippet: the config is this copy, not the checkout's example (whose data would land in the checkout).
    snippet = readme_deployment().replace("examples/loans/driftloop.yaml", str(config))
    prefect_file = workspace / "prefect.yaml"
    prefect_file.write_text((ROOT / "prefect.yaml").read_text(encoding="utf-8") + textwrap.indent(snippet, "  "), encoding="utf-8")
    # From the checkout, as `make up` deploys: the folder a worker runs flows in is the one deployed from.
    deployed = subprocess.run([str(stack.BIN / "prefect"), "--no-prompt", "deploy", "--all", "--prefect-file", str(prefect_file)],
                              cwd=ROOT, env=env, capture_output=True, text=True)
    assert deployed.returncode == 0, deployed.stdout[-3000:] + deployed.stderr[-3000:]
    return load_config(config), str(config)


def test_the_snippet_gives_the_second_model_its_own_schedule_and_config(second_model):
    _, config_path = second_model
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("monitor/loans-daily")
    assert deployment.parameters == {"config_path": config_path, "retrain_inline": False}
    assert [s.schedule.cron for s in deployment.schedules] == ["0 7 * * *"]
    deadline = time.monotonic() + 150  # the scheduler visits deployments every 5 s here (made_up), 60 s by default
    while not (scheduled := [r for r in runs_of("monitor/loans-daily") if r.state and r.state.type == StateType.SCHEDULED]):
        assert time.monotonic() < deadline, "no scheduled monitor/loans-daily run after 150 s"
        time.sleep(2)
    assert all((r.expected_start_time.hour, r.expected_start_time.minute) == (7, 0) for r in scheduled)


def test_the_worker_runs_the_second_models_loop_on_its_own_data_and_model(second_model, made_up):
    cfg, config_path = second_model
    first = run_deployment("bootstrap/first-champion", parameters={"config_path": config_path}, timeout=600)
    assert first.state.is_completed(), first.state.message
    monitored = run_deployment("monitor/loans-daily", timeout=600)
    assert monitored.state.is_completed(), monitored.state.message
    states = Ledger(cfg.ledger).states()
    assert sorted(states.values()) == ["evaluated", "evaluated", "quarantined"]
    from driftloop.registry import CHAMPION, Registry

    registry = Registry(cfg.registry.model_copy(update={"tracking_uri": made_up["mlflow"]}))
    champion = registry.by_alias(CHAMPION)
    assert champion is not None and champion.name == "loan-default"  # on the stack's MLflow server, beside the demo's model
