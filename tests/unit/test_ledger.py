import pytest

from driftloop.config import LedgerConfig
from driftloop.errors import ConfigError
from driftloop.ledger import Ledger


def test_transitions_are_kept_in_order_and_the_current_state_follows(tmp_path):
    ledger = Ledger(LedgerConfig(url=f"sqlite:///{tmp_path / 'ledger.db'}"))
    for state in ("received", "validated", "scored"):
        ledger.record("2026-02-01", state)
    ledger.record("2026-02-02", "quarantined", "tenure_months nulls")
    assert ledger.state("2026-02-01") == "scored" and ledger.state("2026-02-03") is None
    assert [t.state for t in ledger.history("2026-02-01")] == ["received", "validated", "scored"]
    assert ledger.unfinished() == ["2026-02-01"]  # cut off after scoring: the next run takes it
    ledger.record("2026-02-01", "evaluated")
    assert ledger.unfinished() == []


def test_an_unknown_state_is_a_bug_not_a_row(tmp_path):
    with pytest.raises(ValueError, match="one of received"):
        Ledger(LedgerConfig(url=f"sqlite:///{tmp_path / 'l.db'}")).record("b", "done")


def test_a_bad_url_is_a_config_error():
    with pytest.raises(ConfigError, match="fix ledger.url"):
        Ledger(LedgerConfig(url="nosuchdb://x"))
