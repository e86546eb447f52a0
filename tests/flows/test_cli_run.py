"""`driftloop run ...`: the loop's flows on any config, from the command line, as real flow runs."""

from __future__ import annotations

import pytest

from driftloop import cli
from driftloop.config import load_config
from driftloop.demo import generate
from driftloop.ledger import Ledger
from driftloop.registry import CHAMPION, Registry
from tests.conftest import write_project


@pytest.fixture
def project(tmp_path):
    path = write_project(tmp_path, demo={"n_batches": 5})  # day 3 is the quality incident
    cfg = load_config(path)
    return path, cfg, [d.batch_id for d in generate(cfg.demo, cfg.data).days]


def test_the_loop_runs_on_a_config_given_anywhere_on_the_line_or_in_the_environment(project, capsys, monkeypatch):
    path, cfg, days = project
    assert cli.main(["run", "bootstrap", "--config", str(path)]) == 0
    assert "v1 is the champion" in capsys.readouterr().out
    assert Registry(cfg.registry).by_alias(CHAMPION).version == "1"

    monkeypatch.setenv("DRIFTLOOP_CONFIG", str(path))
    assert cli.main(["run", "monitor"]) == 3  # every new batch, oldest first; one was quarantined
    lines = capsys.readouterr().out.strip().splitlines()[-len(days):]
    assert [line.split(":")[0] for line in lines] == days
    assert lines[2].startswith(f"{days[2]}: QUARANTINED; batch {days[2]} quarantined")
    assert Ledger(cfg.ledger).states() == {d: "quarantined" if i == 2 else "evaluated" for i, d in enumerate(days)}

    assert cli.main(["run", "monitor"]) == 0
    assert "no new batch in" in capsys.readouterr().out
    assert cli.main(["run", "backfill", "--start", days[0], "--end", days[1]]) == 0
    assert capsys.readouterr().out.count("already processed") == 2
    assert cli.main(["run", "monitor", days[-1], "--force"]) == 0


def test_a_bad_batch_id_on_the_command_line_is_one_line_and_exit_2(project, capsys):
    path, cfg, _ = project
    assert cli.main(["--config", str(path), "run", "monitor", "../labels/2026-02-03"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("driftloop: error: batch id '../labels/2026-02-03' is not a date") and err.count("\n") == 1
    assert Ledger(cfg.ledger).states() == {}


def test_a_retrain_by_hand_is_registered_and_counted_in_the_ledger(project, capsys):
    path, cfg, days = project
    assert cli.main(["--config", str(path), "run", "bootstrap"]) == 0
    cli.main(["--config", str(path), "run", "monitor"])
    assert cli.main(["--config", str(path), "run", "retrain", "--reason", "new pricing"]) == 0
    assert "churn-classifier v2 (gate" in capsys.readouterr().out
    retrain = Ledger(cfg.ledger).retrains()[-1]
    assert (retrain.trigger, retrain.as_of, retrain.state, retrain.version) == ("manual", days[-1], "registered", "2")
