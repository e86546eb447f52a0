"""The ledger on PostgreSQL, as in production: a database made and dropped by the test."""

import pytest

from driftloop.config import LedgerConfig
from driftloop.ledger import Ledger

pytestmark = pytest.mark.integration


def test_the_ledger_works_on_postgresql_and_a_retrain_is_requested_once_across_workers(postgres_url):
    first, second = Ledger(LedgerConfig(url=postgres_url)), Ledger(LedgerConfig(url=postgres_url))
    first.record("2026-02-01", "received")
    second.record("2026-02-01", "validated")  # another worker, same database
    assert first.state("2026-02-01") == "validated"
    assert [t.state for t in second.history()] == ["received", "validated"]
    assert first.request_retrain("monitor:2026-02-12", "2026-02-12") and not second.request_retrain("monitor:2026-02-12", "2026-02-12")
    first.engine.dispose()  # release the connections before the database is dropped


def test_a_batch_is_claimed_by_one_worker_at_a_time_on_postgresql(postgres_url):
    from datetime import timedelta

    from driftloop.ledger import claim_owner

    first, second = Ledger(LedgerConfig(url=postgres_url)), Ledger(LedgerConfig(url=postgres_url))
    assert first.claim("2026-02-01", claim_owner("run-a"), timedelta(hours=1)) is not None
    assert second.claim("2026-02-01", claim_owner("run-b"), timedelta(hours=1)) is None
    first.release("2026-02-01", claim_owner("run-a"))
    assert second.claim("2026-02-01", claim_owner("run-b"), timedelta(hours=1)) is not None
