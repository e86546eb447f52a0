"""The request log of `driftloop serve`: durable groups, torn tails, and each period as one batch."""

from __future__ import annotations

import threading
from datetime import date, datetime, timezone

import numpy as np
import pandas as pd
import pytest

from driftloop import data, requestlog
from driftloop.config import ServeConfig, load_config

DAY = "2026-12-03"


@pytest.fixture
def cfg(config_path):
    return load_config(config_path)


def _served(cfg, n: int, day: str = DAY, start: int = 0, status: str = requestlog.OK, version: str = "1") -> pd.DataFrame:
    """``n`` answered rows of the demo's columns, received on ``day``."""
    schema, rng = cfg.columns, np.random.default_rng(start)
    received = np.datetime64(f"{day}T10:00:00", "us") + np.arange(n).astype("timedelta64[s]")
    frame = pd.DataFrame({schema.id_column: [f"r{start + i}" for i in range(n)], schema.timestamp_column: received}
                         | {c: rng.normal(size=n) for c in schema.numeric}
                         | {c: rng.choice(["a", "b"], n).astype(object) for c in schema.categorical})
    return frame.assign(probability=rng.uniform(size=n), prediction=rng.integers(0, 2, n)).assign(**{
        requestlog.RECEIVED: received, requestlog.STATUS: status, requestlog.ERROR: None,
        requestlog.VERSION: version, requestlog.LATENCY: rng.uniform(0.001, 0.01, n)})


def _log(cfg) -> requestlog.GroupCommitLog:
    serve = cfg.serve
    period = lambda received: requestlog.period_ends(  # noqa: E731
        received.astype("datetime64[D]"), cfg.data.period_days, serve.period_anchor).astype(str)
    return requestlog.GroupCommitLog(cfg.data.request_log, requestlog.log_schema(cfg.columns), period)


def _append_and_wait(log, frame) -> None:
    done = threading.Event()
    errors = []
    log.append(frame, lambda error: (errors.append(error), done.set()))
    assert done.wait(10)
    assert errors == [None]


def test_a_period_ends_on_the_anchor_and_every_cadence_after_it():
    days = np.array(["2026-11-29", "2026-11-30", "2026-12-05", "2026-12-06"], dtype="datetime64[D]")  # Sun, Mon, Sat, Sun
    assert requestlog.period_ends(days, 1, date(1970, 1, 4)).astype(str).tolist() == days.astype(str).tolist()
    assert requestlog.period_ends(days, 7, date(1970, 1, 4)).astype(str).tolist() == [
        "2026-11-29", "2026-12-06", "2026-12-06", "2026-12-06"]


def test_appends_from_many_threads_are_all_durable_in_fewer_groups_than_appends(cfg):
    log = _log(cfg)
    threads = [threading.Thread(target=_append_and_wait, args=(log, _served(cfg, 5, start=10 * i))) for i in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    log.close()

    table = requestlog.read_folder(cfg.data.request_log / DAY, requestlog.log_schema(cfg.columns))
    assert table.num_rows == 200 and len(set(table.column(cfg.columns.id_column).to_pylist())) == 200
    assert log.groups < 40  # appends queued during a write shared the next fsync


def test_rows_written_by_the_callers_thread_are_acknowledged_after_the_logs_thread_synced_them(cfg):
    log = _log(cfg)
    table = requestlog.log_table({c: v.to_numpy() for c, v in _served(cfg, 3).items()}, 3, log.schema)
    done, errors = threading.Event(), []

    log.commit(table, lambda error: (errors.append(error), done.set()))

    segment = next((cfg.data.request_log / DAY).glob("*.arrows"))  # written before commit returned
    assert requestlog.read_segment(segment).column(cfg.columns.id_column).to_pylist() == ["r0", "r1", "r2"]
    assert done.wait(10) and errors == [None] and log.groups == 1
    log.close()


def test_a_late_row_of_a_period_whose_stream_was_closed_goes_to_a_second_file_of_the_same_writer(cfg):
    log = requestlog.GroupCommitLog(cfg.data.request_log, requestlog.log_schema(cfg.columns),
                                    lambda f: f.astype("datetime64[D]").astype(str), name="host-1")
    _append_and_wait(log, _served(cfg, 2, day="2026-12-03"))
    _append_and_wait(log, _served(cfg, 2, day="2026-12-04", start=10))  # a new day: the 3rd's stream is closed
    _append_and_wait(log, _served(cfg, 1, day="2026-12-03", start=20))  # arrived before midnight, written after
    log.close()

    folder = cfg.data.request_log / "2026-12-03"
    assert sorted(p.name for p in folder.glob("*.arrows")) == ["host-1+1.arrows", "host-1.arrows"]
    assert sorted(requestlog.read_folder(folder, log.schema).column(cfg.columns.id_column).to_pylist()) == ["r0", "r1", "r20"]
    (period, _) = requestlog.close_periods(cfg.data, cfg.columns, ServeConfig(close_grace_minutes=0),
                                           now=datetime(2026, 12, 6, tzinfo=timezone.utc))
    assert (period.batch_id, period.rows, period.writers) == ("2026-12-03", 3, 1)


def test_a_write_torn_by_a_crash_loses_only_the_batch_being_written(cfg):
    log = _log(cfg)
    _append_and_wait(log, _served(cfg, 30))
    segment = next((cfg.data.request_log / DAY).glob("*.arrows"))
    first = segment.stat().st_size
    _append_and_wait(log, _served(cfg, 30, start=100))
    second = segment.stat().st_size
    log.close()
    segment.write_bytes(segment.read_bytes()[:(first + second) // 2])  # the crash came while the second group was written

    table = requestlog.read_segment(segment)

    assert table is not None and table.num_rows == 30
    assert table.column(cfg.columns.id_column).to_pylist()[0] == "r0"


def test_an_ended_period_becomes_one_batch_of_the_contract_with_every_row_once(cfg):
    for writer in range(2):  # two server processes, each its own file
        log = requestlog.GroupCommitLog(cfg.data.request_log, requestlog.log_schema(cfg.columns),
                                        lambda f: np.full(len(f), DAY), name=f"host-{writer}")
        _append_and_wait(log, _served(cfg, 50, start=1000 * writer))
        log.close()
    retried = _served(cfg, 1, start=0, version="2")  # a client retried r0; the newest answer counts
    invalid = _served(cfg, 1, start=5000, status=requestlog.INVALID)
    log = requestlog.GroupCommitLog(cfg.data.request_log, requestlog.log_schema(cfg.columns), lambda f: np.full(len(f), DAY), name="host-2")
    _append_and_wait(log, pd.concat([retried, invalid], ignore_index=True))
    log.close()

    too_soon = requestlog.close_periods(cfg.data, cfg.columns, cfg.serve, now=datetime(2026, 12, 4, 0, 5, tzinfo=timezone.utc))
    closed = requestlog.close_periods(cfg.data, cfg.columns, cfg.serve, now=datetime(2026, 12, 4, 0, 11, tzinfo=timezone.utc))

    assert too_soon == []  # within serve.close_grace_minutes of the period's end
    (period,) = closed
    assert (period.rows, period.requests_invalid, period.duplicate_ids, period.writers) == (100, 1, 1, 3)
    assert period.versions == {"1": 99, "2": 1} and period.latency_p50_ms < period.latency_p99_ms < 10
    batch = data.check_batch(data.read_batch(cfg.data, DAY), cfg.columns, DAY)  # the contract the monitor reads
    assert len(batch) == 100 and batch[cfg.columns.id_column].is_unique
    data.check_period(batch, cfg.columns, cfg.data, DAY, DAY)
    assert requestlog.served_period(cfg.data, DAY) == period
    assert requestlog.close_periods(cfg.data, cfg.columns, cfg.serve) == []  # closed once


def test_a_period_whose_batch_was_delivered_otherwise_keeps_that_file(cfg):
    log = _log(cfg)
    _append_and_wait(log, _served(cfg, 10))
    log.close()
    delivered = data.batch_path(cfg.data, DAY)
    delivered.parent.mkdir(parents=True, exist_ok=True)
    delivered.write_bytes(b"theirs")

    (period,) = requestlog.close_periods(cfg.data, cfg.columns, ServeConfig(close_grace_minutes=0))

    assert delivered.read_bytes() == b"theirs" and period.batch is None and "already there" in period.note


def test_posted_feedback_becomes_the_days_label_file(cfg):
    schema = cfg.columns
    log = requestlog.GroupCommitLog(cfg.data.request_log / requestlog.FEEDBACK, requestlog.feedback_schema(schema),
                                    lambda f: np.full(len(f), DAY))
    received = np.datetime64(f"{DAY}T12:00:00", "us")
    _append_and_wait(log, pd.DataFrame({schema.id_column: ["r1", "r2"], schema.target: [1, 0], requestlog.RECEIVED: received}))
    _append_and_wait(log, pd.DataFrame({schema.id_column: ["r2"], schema.target: [1], requestlog.RECEIVED: received}))  # corrected
    log.close()

    requestlog.close_periods(cfg.data, schema, ServeConfig(close_grace_minutes=0))

    labels = data.read_labels(cfg.data, schema, date(2026, 12, 3))
    assert dict(zip(labels[schema.id_column], labels[schema.target])) == {"r1": 1, "r2": 1}


def test_a_slow_or_failing_served_period_is_a_watch_signal_and_never_a_retrain():
    from driftloop.config import PolicyConfig
    from driftloop.drift import DriftReport
    from driftloop.evaluation import served_health
    from driftloop.policy import decide_retraining

    period = requestlog.ServedPeriod(DAY, rows=1000, requests_invalid=3, rows_failed=20, error_rate=0.02, latency_p50_ms=4.0,
                                     latency_p95_ms=9.0, latency_p99_ms=42.0, duplicate_ids=0, versions={"1": 1000}, writers=1,
                                     batch=None)
    quiet = served_health(period, ServeConfig())
    judged = served_health(period, ServeConfig(max_p99_ms=25, max_error_rate=0.01))
    no_drift = DriftReport((), "bh", 0.05)

    assert not quiet.breached and "p99 42.0 ms" in quiet.detail  # no thresholds: reported, not judged
    assert judged.breaches == (f"p99 latency 42.0 ms on {DAY} > serve.max_p99_ms 25", f"error rate 2.00% on {DAY} > serve.max_error_rate 1.00%")
    decision = decide_retraining(no_drift, None, None, None, None, PolicyConfig(), served=judged)
    assert decision.action == "watch" and decision.reasons[0].startswith("serving: p99 latency")


@pytest.mark.parametrize("batch_format", ["parquet", "csv"])
def test_a_period_is_written_a_slice_at_a_time_oldest_first_with_every_id_once(cfg, monkeypatch, batch_format):
    monkeypatch.setattr(requestlog, "_WRITE_ROWS", 7)  # slices smaller than the period
    data_cfg = cfg.data.model_copy(update={"batch_format": batch_format})
    log = _log(cfg)
    _append_and_wait(log, _served(cfg, 30, start=0))
    _append_and_wait(log, _served(cfg, 5, start=10).assign(**{requestlog.RECEIVED: np.datetime64(f"{DAY}T11:00:00", "us")}))  # retries
    log.close()

    (period,) = requestlog.close_periods(data_cfg, cfg.columns, ServeConfig(close_grace_minutes=0),
                                         now=datetime(2026, 12, 5, tzinfo=timezone.utc))

    batch = data.read_batch(data_cfg, DAY)
    ids = batch[cfg.columns.id_column].tolist()
    assert (period.rows, period.duplicate_ids, len(ids), len(set(ids))) == (30, 5, 30, 30)
    assert ids[:10] == [f"r{i}" for i in range(10)] and ids[-5:] == [f"r{i}" for i in range(10, 15)]  # the retries, newest
