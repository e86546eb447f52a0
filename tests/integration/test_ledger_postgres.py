"""The ledger on PostgreSQL, as in production: a database made and dropped by the test."""

import secrets

import psycopg
import pytest

from driftloop.config import LedgerConfig
from driftloop.ledger import Ledger

pytestmark = pytest.mark.integration


@pytest.fixture
def postgres_url():
    name = f"driftloop_it_ledger_{secrets.token_hex(4)}"
    with psycopg.connect(host="127.0.0.1", user="postgres", dbname="test", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(host="127.0.0.1", user="postgres", dbname="test", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_the_ledger_works_on_postgresql_and_a_retrain_is_requested_once_across_workers(postgres_url):
    first, second = Ledger(LedgerConfig(url=postgres_url)), Ledger(LedgerConfig(url=postgres_url))
    first.record("2026-02-01", "received")
    second.record("2026-02-01", "validated")  # another worker, same database
    assert first.state("2026-02-01") == "validated"
    assert [t.state for t in second.history()] == ["received", "validated"]
    assert first.request_retrain("monitor:2026-02-12", "2026-02-12") and not second.request_retrain("monitor:2026-02-12", "2026-02-12")
    first.engine.dispose()  # release the connections before the database is dropped
