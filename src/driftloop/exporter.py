"""Prometheus metrics from the monitoring history: the only module that imports prometheus_client.

``driftloop serve-metrics`` serves them on 127.0.0.1 (port 9753 by default). Every scrape reads
the history store and the ledger afresh (a collector, not gauges set by a loop), so the series
are the last report's figures however many processes wrote them, and the endpoint holds no state
of its own. Series, all labelled with the model:

- ``driftloop_metric_value`` / ``_lower`` / ``_upper`` / ``_threshold_breached`` per metric, source
  (realized | estimated | estimated on matured) and segment ("" overall), of the newest batch;
  ``driftloop_metric_floor`` where a floor is set
- ``driftloop_drift_distance`` / ``_max_distance`` / ``_detected`` per family and column;
  ``driftloop_drifted_share``
- ``driftloop_decision`` (1 for the newest batch's action, 0 for the others), ``driftloop_label_coverage``,
  ``driftloop_labels_overdue``, ``driftloop_seconds_since_last_evaluated_batch``, ``driftloop_last_batch_timestamp_seconds``
- ``driftloop_batches`` per ledger state (the ledger is the project's: every model's batches)

``ServingMetrics`` are the live ones of `driftloop serve`, counted as requests are answered (model and
version labels): ``driftloop_request_duration_seconds`` (arrival to durable answer),
``driftloop_requests_total`` by status (ok, invalid, error), ``driftloop_requests_in_progress``,
``driftloop_model_duration_seconds`` (one model call, whatever it batched), ``driftloop_rows_total``
by status, and ``driftloop_predicted_score`` (binary) or ``driftloop_predicted_class_total``.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator

from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import numpy as np
from prometheus_client import CollectorRegistry, Counter as PromCounter, Gauge, Histogram, generate_latest, make_wsgi_app
from prometheus_client import multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from driftloop.config import METRICS_PORT, LedgerConfig
from driftloop.errors import DriftloopError
from driftloop.history import History
from driftloop.ledger import STATES, Ledger
from driftloop.policy import ACTIONS
from driftloop.redaction import redact


class HistoryCollector(Collector):
    def __init__(self, ledger: LedgerConfig, model: str):
        self.ledger, self.model = ledger, model

    def collect(self) -> Iterator[GaugeMetricFamily]:
        history = History(self.ledger, self.model)
        model = self.model
        runs = history.runs(last=1)
        gauge = lambda name, doc, labels=(): GaugeMetricFamily(f"driftloop_{name}", doc, labels=["model", *labels])  # noqa: E731
        batches = gauge("batches", "batches in the ledger by their current state", ("state",))
        counts = Counter(Ledger(self.ledger).states().values())
        for state in STATES:
            batches.add_metric([model, state], counts.get(state, 0))
        yield batches
        if not runs:
            return
        run = runs[0]
        last = gauge("last_batch_timestamp_seconds", "when the newest batch's monitor run was recorded", ("batch_id", "model_version"))
        last.add_metric([model, run.batch_id, run.model_version], run.recorded_at.timestamp())
        yield last
        since = gauge("seconds_since_last_evaluated_batch", "seconds since the newest batch's monitor run was recorded")
        since.add_metric([model], max(0.0, time.time() - run.recorded_at.timestamp()))
        yield since
        decision = gauge("decision", "the newest batch's decision: 1 for its action, 0 for the others", ("action",))
        for action in ACTIONS:
            decision.add_metric([model, action], float(run.decision == action))
        yield decision
        share = gauge("drifted_share", "share of the tested features that drifted on the newest batch")
        share.add_metric([model], run.drift_share)
        yield share
        for name, value, doc in (("label_coverage", run.label_coverage, "share of the horizon's predictions with a label"),
                                 ("labels_overdue", run.labels_overdue, "predictions past the label deadline without one")):
            if value is not None:
                family = gauge(name, doc)
                family.add_metric([model], float(value))
                yield family

        labels = ("metric", "source", "segment")
        families = {key: gauge(f"metric_{key}", doc, labels) for key, doc in (
            ("value", "the newest batch's metric: realized on the matured window, or estimated"),
            ("lower", "lower bound of the metric's interval"), ("upper", "upper bound of the metric's interval"),
            ("floor", "the metric's floor (evaluation.thresholds)"),
            ("threshold_breached", "1 when the whole interval is past a threshold"))}
        for m in history.metrics(last=1, segment=None):
            key = [model, m.metric, m.source, m.segment]
            for name, value in (("value", m.value), ("lower", m.low), ("upper", m.high), ("floor", m.floor),
                                ("threshold_breached", None if m.breached is None else float(m.breached))):
                if value is not None:
                    families[name].add_metric(key, value)
        yield from families.values()

        labels = ("family", "column")
        drift = {key: gauge(f"drift_{key}", doc, labels) for key, doc in (
            ("distance", "the column's distance between reference and the newest batch"),
            ("max_distance", "the distance threshold (drift.max_distance)"),
            ("detected", "1 when both the test and the distance are past their thresholds"))}
        for d in history.drift(last=1):
            key = [model, d.family, d.column]
            if d.distance is not None:
                drift["distance"].add_metric(key, d.distance)
            drift["max_distance"].add_metric(key, d.max_distance)
            drift["detected"].add_metric(key, float(d.drifted))
        yield from drift.values()


def registry_for(ledger: LedgerConfig, model: str) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HistoryCollector(ledger, model))
    return registry


def metrics_app(registry: CollectorRegistry):
    """prometheus_client's WSGI app, except that a history it cannot read is a 503 with the reason
    (what a scraper shows as the target's error), not a 500 with a traceback."""
    metrics = make_wsgi_app(registry)

    def app(environ, start_response):
        try:
            return metrics(environ, start_response)
        except DriftloopError as exc:  # raised while the output is built, before any response was started
            start_response("503 Service Unavailable", [("Content-Type", "text/plain; charset=utf-8")])
            return [f"{exc}\n".encode()]

    return app


class _Quiet(WSGIRequestHandler):
    def log_message(self, format, *args):  # noqa: A002  (the http.server API); a scrape every 15 s is not news
        pass


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


def serve(ledger: LedgerConfig, model: str, host: str = "127.0.0.1", port: int = METRICS_PORT) -> None:
    """Serve /metrics until SIGINT or SIGTERM; a history that cannot be read is refused before it starts."""
    registry = registry_for(ledger, model)
    generate_latest(registry)  # a damaged or unreachable history: one line now, not a 503 on every scrape
    server = make_server(host, port, metrics_app(registry), _Server, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    print(f"serving driftloop_* metrics of {model} at http://{host}:{port}/metrics (history: {redact(ledger.url)})", flush=True)
    stop.wait()
    server.shutdown()
    thread.join(timeout=5)


# --- driftloop serve --------------------------------------------------------------------------

# From 1 ms: a served one-row request takes a few; percentiles need the buckets where the mass is.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SCORE_BUCKETS = tuple(round(0.1 * i, 1) for i in range(1, 11))


class ServingMetrics:
    """The counters of one `driftloop serve` process. Under several worker processes each writes its
    own files under ``PROMETHEUS_MULTIPROC_DIR`` and a scrape of any of them sums them all."""

    def __init__(self, model: str):
        self.model = model
        self.registry = CollectorRegistry(auto_describe=True)
        shared = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        own = {} if shared else {"registry": self.registry}
        self.duration = Histogram("driftloop_request_duration_seconds", "a request's time from arrival to its durable answer",
                                  ["model", "version", "route"], buckets=LATENCY_BUCKETS, **own)
        self.requests = PromCounter("driftloop_requests_total", "requests answered, by status (ok, invalid, error)",
                                    ["model", "route", "status"], **own)
        self.in_progress = Gauge("driftloop_requests_in_progress", "requests received and not yet answered", ["model"],
                                 multiprocess_mode="livesum", **own)
        self.model_duration = Histogram("driftloop_model_duration_seconds", "one model call, for all the rows it batched",
                                        ["model", "version"], buckets=LATENCY_BUCKETS, **own)
        self.batch_rows = Histogram("driftloop_model_batch_rows", "rows scored together in one model call", ["model"],
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048), **own)
        self.rows = PromCounter("driftloop_rows_total", "rows answered, by status (ok: scored, error: the model could not)",
                                ["model", "version", "status"], **own)
        self.score = Histogram("driftloop_predicted_score", "the positive class's predicted probability, per scored row",
                               ["model", "version"], buckets=SCORE_BUCKETS, **own)
        self.classes = PromCounter("driftloop_predicted_class_total", "scored rows by predicted class", ["model", "version", "class"], **own)
        if shared:
            multiprocess.MultiProcessCollector(self.registry)

    def serving(self, version: str, classes: tuple[str, ...], scores: bool, routes: tuple[str, ...] = ("predict", "invocations")) -> None:
        """Create a newly served version's series at zero. A series first scraped after its first
        requests has no earlier sample, so ``rate`` would see no increase (and p50 would be NaN)."""
        for route in routes:
            self.duration.labels(self.model, version, route)
            for status in ("ok", "invalid", "error"):
                self.requests.labels(self.model, route, status)
        self.in_progress.labels(self.model)
        self.model_duration.labels(self.model, version)
        self.batch_rows.labels(self.model)
        for status in ("ok", "error"):
            self.rows.labels(self.model, version, status)
        for name in classes:
            self.classes.labels(self.model, version, name)
        if scores:
            self.score.labels(self.model, version)

    def answered(self, route: str, status: str, version: str, seconds: float) -> None:
        self.requests.labels(self.model, route, status).inc()
        if status != "invalid":
            self.duration.labels(self.model, version, route).observe(seconds)

    def scored(self, version: str, seconds: float, rows: int, failed: int, scores=None, classes=None) -> None:
        """One model call: its time and rows, and what it predicted (``scores``: positive-class
        probabilities; ``classes``: {class: rows})."""
        self.model_duration.labels(self.model, version).observe(seconds)
        self.batch_rows.labels(self.model).observe(rows)
        if rows - failed:
            self.rows.labels(self.model, version, "ok").inc(rows - failed)
        if failed:
            self.rows.labels(self.model, version, "error").inc(failed)
        if scores is not None and len(scores):
            _observe_all(self.score.labels(self.model, version), scores)
        for name, count in (classes or {}).items():
            self.classes.labels(self.model, version, name).inc(count)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def _observe_all(histogram, values: np.ndarray) -> None:
    """``observe`` each of a model call's rows at once (one call per row would loop in Python).
    prometheus_client has no bulk observe; its pinned version keeps a non-cumulative count per upper
    bound (the first bound at or above the value), which this adds to (tests/unit/test_serving.py)."""
    counts = np.bincount(np.searchsorted(histogram._upper_bounds, values, side="left"), minlength=len(histogram._upper_bounds))
    for bucket, count in zip(histogram._buckets, counts):
        if count:
            bucket.inc(int(count))
    histogram._sum.inc(float(np.sum(values)))
