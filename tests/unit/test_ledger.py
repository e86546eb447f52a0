import socket
import subprocess
import sys
from datetime import timedelta

import pytest

from driftloop.config import LedgerConfig
from driftloop.errors import ConfigError
from driftloop.ledger import Ledger, claim_owner


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


def test_a_requested_retrain_counts_for_the_cooldown_until_it_fails(tmp_path):
    ledger = Ledger(LedgerConfig(url=f"sqlite:///{tmp_path / 'ledger.db'}"))
    assert ledger.request_retrain("monitor:2026-02-12", "2026-02-12", ["roc_auc below floor"], "run-a")
    assert not ledger.request_retrain("monitor:2026-02-12", "2026-02-12")  # asked twice: one request
    assert ledger.last_retrain_as_of() == "2026-02-12"  # requested, not started: it already holds the next one back
    ledger.request_retrain("monitor:2026-02-15", "2026-02-15")
    ledger.retrain_state("monitor:2026-02-15", "2026-02-15", "failed", detail="MLflow down")
    assert ledger.last_retrain_as_of() == "2026-02-12"  # a failed retrain does not
    waiting = ledger.retrains(state="requested", before="2026-02-15")
    assert [(r.trigger, r.as_of, r.reasons, r.monitor_run_id) for r in waiting] == [
        ("monitor:2026-02-12", "2026-02-12", ("roc_auc below floor",), "run-a")]


def test_a_retrain_started_by_hand_gets_its_ledger_entry(tmp_path):
    ledger = Ledger(LedgerConfig(url=f"sqlite:///{tmp_path / 'ledger.db'}"))
    ledger.retrain_state("manual", "2026-03-01", "running")
    ledger.retrain_state("manual", "2026-03-01", "registered", version="7")
    assert [(r.trigger_id, r.state, r.version) for r in ledger.retrains()] == [("manual@2026-03-01", "registered", "7")]


def _ledger(tmp_path) -> Ledger:
    return Ledger(LedgerConfig(url=f"sqlite:///{tmp_path / 'ledger.db'}"))


def test_a_batch_held_by_a_live_run_is_refused_to_another_until_released(tmp_path):
    ledger, hour = _ledger(tmp_path), timedelta(hours=1)
    first, second = claim_owner("run-a"), claim_owner("run-b")  # this process: alive
    assert ledger.claim("2026-02-01", first, hour).owner == first
    assert ledger.claim("2026-02-01", second, hour) is None
    assert ledger.holder("2026-02-01").owner == first
    assert ledger.claim("2026-02-01", first, hour) is not None  # the holder renews its lease
    ledger.release("2026-02-01", first)
    assert ledger.claim("2026-02-01", second, hour).owner == second


def test_an_expired_lease_is_taken_over(tmp_path):
    ledger = _ledger(tmp_path)
    elsewhere = "run-a@another-machine:1"  # its process cannot be checked from here: only the lease speaks for it
    assert ledger.claim("2026-02-01", elsewhere, timedelta(hours=1)) is not None
    assert ledger.claim("2026-02-01", claim_owner("run-b"), timedelta(hours=1)) is None
    ledger.release("2026-02-01", elsewhere)
    assert ledger.claim("2026-02-01", elsewhere, timedelta(seconds=-1)) is not None  # a lease already over
    assert ledger.claim("2026-02-01", claim_owner("run-b"), timedelta(hours=1)).owner == claim_owner("run-b")


def test_the_claim_of_a_process_that_is_gone_is_taken_over_at_once(tmp_path):
    ledger = _ledger(tmp_path)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dead = f"run-a@{socket.gethostname()}:{gone.pid}"
    assert ledger.claim("2026-02-01", dead, timedelta(hours=1)) is not None
    assert ledger.claim("2026-02-01", claim_owner("run-b"), timedelta(hours=1)).owner == claim_owner("run-b")
