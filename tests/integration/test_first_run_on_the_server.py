"""README "First run on the server", followed literally: its two blocks, run by bash in a fresh copy of the
project, against the stack its own `make up` starts (on free ports, so a developer's stack is never touched)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest
import yaml

from driftloop.config import TRACKING_URI_ENV, load_config
from driftloop.ledger import Ledger
from ops import stack
from tests.conftest import ROOT
from tests.integration.conftest import free_port, stop_all

pytestmark = pytest.mark.integration
# What a fresh checkout holds (git ls-files' top level), without the data and stores a session may have made.
PROJECT = ("Makefile", "pyproject.toml", "constraints.txt", "driftloop.yaml", "prefect.yaml", "expectations", "flows", "ops", "mlruns")
LAST_DAY = "2026-02-04"  # the block backfills 18 days; four show the same path at a quarter of the cost


def readme_blocks() -> list[str]:
    section = (ROOT / "README.md").read_text(encoding="utf-8").split("### First run on the server", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)```", section, re.S)[:2]


def _bash(script: str, cwd, env, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", f"set -euo pipefail\n{script}"], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    workspace = tmp_path_factory.mktemp("first-run") / "driftloop"
    workspace.mkdir()
    for name in PROJECT:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, workspace / name, ignore=shutil.ignore_patterns("mlflow.db", "artifacts", "__pycache__"))
        else:
            shutil.copy2(source, workspace / name)  # keeps mtimes: make sees the installed .venv as up to date
    (workspace / ".venv").symlink_to(ROOT / ".venv")
    raw = yaml.safe_load((workspace / "driftloop.yaml").read_text())
    raw["demo"] |= {"reference_rows": 4000, "rows_per_batch": 500, "n_batches": 4}
    (workspace / "driftloop.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))

    env = {k: v for k, v in os.environ.items()
           if k not in ("PREFECT_HOME", "PREFECT_API_URL", TRACKING_URI_ENV, "MLFLOW_TRACKING_URI", "MAKEFLAGS", "MAKELEVEL")}
    env |= {"DRIFTLOOP_PREFECT_PORT": str(free_port()), "DRIFTLOOP_MLFLOW_PORT": str(free_port()),
            "DRIFTLOOP_METRICS_PORT": str(free_port()), "PREFECT_WORKER_QUERY_SECONDS": "2"}
    setup, terminal = readme_blocks()
    try:
        started = _bash(setup, workspace, env, timeout=300)
        assert started.returncode == 0, f"the README's first block failed:\n{started.stdout[-2000:]}\n{started.stderr[-2000:]}"
        followed = _bash("source .run/env\n" + terminal.replace("end=2026-02-18", f"end={LAST_DAY}"), workspace, env, timeout=420)
        yield workspace, started, followed
    finally:
        subprocess.run(["make", "down"], cwd=workspace, env=env, capture_output=True, timeout=120)
        leftovers = stop_all(workspace / ".run")
        assert not leftovers, f"processes left running after make down: {leftovers}"


def test_the_readme_blocks_are_what_this_test_runs():
    setup, terminal = readme_blocks()
    assert [line.split("#")[0].strip() for line in setup.splitlines()] == [
        "make up", "source .run/env", ".venv/bin/driftloop demo-data"]
    assert "deployment run bootstrap/first-champion --watch" in terminal and "end=2026-02-18" in terminal


def test_demo_data_beside_the_running_stack_writes_the_data_and_leaves_its_stores(first_run):
    workspace, started, _ = first_run
    assert "wrote 4000 reference rows" in started.stdout and "4 daily batches" in started.stdout
    assert (workspace / "data" / "ledger.db").exists() and (workspace / "mlruns" / "mlflow.db").exists()
    assert sorted(p.stem for p in (workspace / "data" / "incoming").glob("*.parquet")) == [  # the fourth is quarantined
        "2026-02-01", "2026-02-02", "2026-02-03"]
    assert [p.name for p in (workspace / "data" / "quarantine").iterdir() if p.name.startswith("2026-02-04")]


def test_the_terminal_block_bootstraps_backfills_through_the_worker_and_shows_the_champion(first_run):
    workspace, _, followed = first_run
    assert followed.returncode == 0, f"the README's terminal block failed:\n{followed.stdout[-3000:]}\n{followed.stderr[-3000:]}"
    assert followed.stdout.count("Flow run finished successfully in 'Completed'") == 2  # both --watch runs
    status = followed.stdout[followed.stdout.rindex("version"):]
    assert re.search(r"^\s+1\s+champion\s", status, re.M), status
    cfg = load_config(workspace / "driftloop.yaml")
    states = {day: Ledger(cfg.ledger).state(day) for day in ("2026-02-01", "2026-02-02", "2026-02-03", "2026-02-04")}
    # The demo's quality incident is its fourth batch: quarantined, the others evaluated, all by the worker's runs.
    assert states == {"2026-02-01": "evaluated", "2026-02-02": "evaluated", "2026-02-03": "evaluated",
                      "2026-02-04": "quarantined"}

