"""A ledger or history database that is damaged or down is one line that names it and the fix, wherever
it is opened: the ledger, the history, `driftloop history --metrics`, `serve-metrics` and its scrapes."""

from __future__ import annotations

from wsgiref.util import setup_testing_defaults

import pytest

from driftloop import cli, exporter
from driftloop.config import LedgerConfig
from driftloop.errors import LedgerDamaged, LedgerUnavailable
from driftloop.history import History
from driftloop.ledger import Ledger

NOT_A_DATABASE = b"this is not a database" * 100


def _damaged(tmp_path) -> LedgerConfig:
    path = tmp_path / "ledger.db"
    path.write_bytes(NOT_A_DATABASE)
    return LedgerConfig(url=f"sqlite:///{path}")


def test_a_damaged_ledger_is_one_line_naming_the_file_and_the_fix(tmp_path):
    with pytest.raises(LedgerDamaged, match=r"ledger database sqlite:///.*ledger.db cannot be read \(file is not a database\); restore"):
        Ledger(_damaged(tmp_path)).states()


def test_a_damaged_history_is_the_same_line(tmp_path):
    with pytest.raises(LedgerDamaged, match="cannot be read"):
        History(_damaged(tmp_path), "churn").runs()


def test_a_database_server_that_is_down_is_worth_retrying_and_shows_no_password():
    with pytest.raises(LedgerUnavailable) as down:
        Ledger(LedgerConfig(url="postgresql://app:pa55@127.0.0.1:1/prod")).states()
    assert "postgresql+psycopg://app:***@127.0.0.1:1/prod is unreachable" in str(down.value) and "pa55" not in str(down.value)


def test_the_cli_and_the_metrics_endpoint_refuse_a_damaged_history_in_one_line(config_path, cfg, capsys):
    ledger_file = cfg.ledger.url.removeprefix("sqlite:///")
    from pathlib import Path

    Path(ledger_file).parent.mkdir(parents=True, exist_ok=True)
    Path(ledger_file).write_bytes(NOT_A_DATABASE)
    for command in (["history", "--metrics"], ["serve-metrics", "--port", "0"]):
        assert cli.main(["--config", str(config_path), *command]) == 2
        err = capsys.readouterr().err
        assert err.startswith("driftloop: error: the ledger database") and err.count("\n") == 1 and "Traceback" not in err


def test_a_history_damaged_while_served_answers_503_with_the_reason(tmp_path):
    path = tmp_path / "ledger.db"
    ledger = LedgerConfig(url=f"sqlite:///{path}")
    app = exporter.metrics_app(exporter.registry_for(ledger, "churn"))
    answered = []
    environ = {}
    setup_testing_defaults(environ)
    assert b"driftloop_batches" in b"".join(app(environ, lambda status, headers: answered.append(status)))
    path.write_bytes(NOT_A_DATABASE)
    body = b"".join(app(environ, lambda status, headers: answered.append(status))).decode()
    assert answered == ["200 OK", "503 Service Unavailable"]
    assert "cannot be read" in body and "Traceback" not in body
