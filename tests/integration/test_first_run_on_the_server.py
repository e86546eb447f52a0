"""README "First run on the server", followed literally: its two blocks, run by bash in a fresh copy of the
project, against the stack its own `make up` starts (on free ports, so a developer's stack is never touched).
The session fixture ``made_up`` runs them; the other server tests then use the stack they left running."""

from __future__ import annotations

import re

import pytest

from driftloop.config import load_config
from driftloop.ledger import Ledger
from tests.integration.conftest import readme_first_run

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def first_run(made_up):
    """The README's two blocks as `made_up` ran them: (workspace, the first block's output, the terminal's)."""
    return made_up["first_run"]


def test_the_readme_blocks_are_what_this_test_runs():
    setup, terminal = readme_first_run()
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

