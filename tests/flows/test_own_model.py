"""README "Use it on your own model", followed literally: its commands, run in a copy of examples/loans."""

from __future__ import annotations

import re
import shlex
import shutil

import pandas as pd
import pytest

from driftloop import cli, data
from driftloop.config import load_config
from driftloop.ledger import Ledger
from driftloop.registry import CHALLENGER, CHAMPION, Registry
from tests.conftest import ROOT


def readme_commands() -> list[str]:
    """The shell lines of the section's first bash block, comments dropped."""
    section = (ROOT / "README.md").read_text(encoding="utf-8").split("## Use it on your own model", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line.split("#", 1)[0].strip() for line in block.splitlines() if line.split("#", 1)[0].strip()]


@pytest.fixture(scope="module")
def followed(tmp_path_factory):
    """Run every README line in a copy of the example (its data and stores stay in the copy)."""
    workspace = tmp_path_factory.mktemp("readme")
    shutil.copytree(ROOT / "examples", workspace / "examples", ignore=shutil.ignore_patterns("data", "mlruns", ".driftloop-demo.json"))
    # The one change to the example: no charts (a sixth of the run's time; test_loop and test_charts draw them).
    with (workspace / "examples" / "loans" / "driftloop.yaml").open("a") as config:
        config.write("\nreports:\n  charts: false\n")
    exits = {}
    with pytest.MonkeyPatch.context() as env:
        env.chdir(workspace)
        for line in readme_commands():
            program, *args = shlex.split(line)
            if program == "cd":
                env.chdir(args[0])
                continue
            assert program == "driftloop", f"the README asks for {program!r}, which this test cannot run"
            exits[line] = cli.main(args)
        cfg = load_config("driftloop.yaml")
    return exits, cfg


def test_every_line_runs_and_the_monitor_reports_the_quarantined_week(followed):
    exits, _ = followed
    assert list(exits) == ["driftloop demo-data", "driftloop suite init --force", "driftloop run bootstrap",
                           "driftloop run monitor", "driftloop status"]
    assert exits["driftloop run monitor"] == 3  # one batch quarantined: a non-zero exit a scheduler notices
    assert all(code == 0 for line, code in exits.items() if line != "driftloop run monitor")


def test_weekly_csv_batches_are_taken_and_the_incident_week_is_quarantined(followed):
    _, cfg = followed
    assert cfg.data.cadence == "weekly" and cfg.data.batch_format == "csv"
    states = Ledger(cfg.ledger).states()
    assert len(states) == cfg.demo.n_batches
    quarantined = [b for b, s in states.items() if s == "quarantined"]
    assert len(quarantined) == 1 and "income" in (cfg.data.quarantine / f"{quarantined[0]}.validation.md").read_text()


def test_the_teams_own_pipeline_is_the_champion_and_passthrough_columns_are_logged_not_used(followed):
    _, cfg = followed
    champion = Registry(cfg.registry).load(CHAMPION)
    assert type(champion.model.steps[-1][1]).__name__ == "LogisticRegression"
    assert "bureau_score" not in champion.model.feature_names_in_ and "has_cosigner" in champion.model.feature_names_in_
    log = data.read_predictions(cfg.data, data.logged_batches(cfg.data)[:1])
    assert {"bureau_score", "exported_at"} <= set(log.columns)


def test_drift_alone_retrains_once_and_performance_then_brings_a_challenger(followed):
    _, cfg = followed
    registry = Registry(cfg.registry)
    retrained = [v for v in registry.versions() if v.tags.get("driftloop.trigger", "").startswith("monitor:")]
    first = retrained[0]
    assert first.tags["driftloop.gate_verdict"] == "failed" and "features drifted" in first.tags["driftloop.reasons"]
    assert "accuracy=" not in first.tags["driftloop.reasons"]  # drift alone
    later = [v for v in retrained[1:] if "accuracy=" in v.tags["driftloop.reasons"]]
    assert later and registry.by_alias(CHALLENGER).tags["driftloop.gate_verdict"] == "passed"
    reports = sorted(cfg.data.reports.glob("2026-*[0-9].json"))
    held = [r for r in reports if "retry_after_batches" in r.read_text()]
    assert held  # after the failed gate, drift alone waited for new evidence instead of retraining every cooldown


def test_labels_arrive_as_csv_and_are_joined(followed):
    _, cfg = followed
    assert sorted(p.suffix for p in cfg.data.labels.iterdir()) == [".csv"] * len(list(cfg.data.labels.iterdir()))
    window = data.labelled_batches(cfg.data, cfg.columns, pd.Timestamp(max(Ledger(cfg.ledger).states())).date(), n_batches=2)
    assert len(window) > 1000 and window[cfg.columns.target].isin([0, 1]).all()
