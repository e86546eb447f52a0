"""The monitoring history: every monitor run's figures, in the ledger's database.

One row per (model, batch) in ``driftloop_monitor_runs`` (the decision and its reasons, drift share,
label coverage, scoring health), one per metric in ``driftloop_metric_values`` (value, interval,
reference and thresholds, realized overall and per segment, or estimated), and one per tested
column in ``driftloop_drift_values`` (test, statistic, p-values, distance, both thresholds). A
rerun of a batch replaces its rows in one transaction: the history never holds a batch twice.
Trends, charts and the metrics endpoint read it back; the same SQLAlchemy URL as the ledger
(SQLite by default, PostgreSQL in production) keeps a model's whole record in one database.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import sqlalchemy as sa

from driftloop.config import LedgerConfig
from driftloop.ledger import engine as ledger_engine

if TYPE_CHECKING:  # reading the history (the CLI, the metrics endpoint) needs neither scipy nor scikit-learn
    from driftloop.evaluation import MetricCheck
    from driftloop.report import MonitorReport

_metadata = sa.MetaData()
_key = lambda: (sa.Column("model", sa.String(200), primary_key=True), sa.Column("batch_id", sa.String(64), primary_key=True))  # noqa: E731
_runs = sa.Table(
    "driftloop_monitor_runs", _metadata, *_key(),
    sa.Column("model_version", sa.String(16), nullable=False),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("monitor_run_id", sa.String(64), nullable=True),
    sa.Column("n_rows", sa.Integer, nullable=False),
    sa.Column("validation", sa.Text, nullable=False),
    sa.Column("drift_verdict", sa.Text, nullable=False),
    sa.Column("drift_share", sa.Float, nullable=False),
    sa.Column("decision", sa.String(16), nullable=False),
    sa.Column("reasons", sa.Text, nullable=False),  # JSON list, as the policy gave them
    sa.Column("matured_window", sa.String(64), nullable=False),  # "first..last" labelled batch, or ""
    sa.Column("matured_rows", sa.Integer, nullable=False),
    sa.Column("label_coverage", sa.Float, nullable=True),
    sa.Column("labels_overdue", sa.Integer, nullable=True),
    sa.Column("failed_share", sa.Float, nullable=True),
    sa.Column("rows_per_second", sa.Float, nullable=True),
)
_metrics = sa.Table(
    "driftloop_metric_values", _metadata, *_key(),
    sa.Column("source", sa.String(32), primary_key=True),  # realized | estimated | estimated on matured
    sa.Column("segment", sa.String(200), primary_key=True),  # "" overall, else column=value
    sa.Column("metric", sa.String(64), primary_key=True),
    sa.Column("value", sa.Float, nullable=True),
    sa.Column("low", sa.Float, nullable=True),
    sa.Column("high", sa.Float, nullable=True),
    sa.Column("reference", sa.Float, nullable=True),
    sa.Column("floor", sa.Float, nullable=True),
    sa.Column("max_drop", sa.Float, nullable=True),
    sa.Column("breached", sa.Boolean, nullable=True),  # None: the metric has no threshold
    sa.Column("reason", sa.Text, nullable=False),
)
_drift = sa.Table(
    "driftloop_drift_values", _metadata, *_key(),
    sa.Column("family", sa.String(16), primary_key=True),  # features | predictions | target
    sa.Column("column", sa.String(200), primary_key=True),
    sa.Column("test", sa.String(16), nullable=False),
    sa.Column("statistic", sa.Float, nullable=True),
    sa.Column("p_value", sa.Float, nullable=True),
    sa.Column("p_adjusted", sa.Float, nullable=True),
    sa.Column("alpha", sa.Float, nullable=False),
    sa.Column("method", sa.String(32), nullable=False),
    sa.Column("distance", sa.Float, nullable=True),
    sa.Column("max_distance", sa.Float, nullable=False),
    sa.Column("drifted", sa.Boolean, nullable=False),
    sa.Column("why", sa.Text, nullable=False),
)
REALIZED, ESTIMATED, ESTIMATED_MATURED = "realized", "estimated", "estimated on matured"


@dataclass(frozen=True)
class RunRecord:
    batch_id: str
    model_version: str
    recorded_at: datetime
    monitor_run_id: str | None
    n_rows: int
    validation: str
    drift_verdict: str
    drift_share: float
    decision: str
    reasons: tuple[str, ...]
    matured_window: str
    matured_rows: int
    label_coverage: float | None
    labels_overdue: int | None
    failed_share: float | None
    rows_per_second: float | None


@dataclass(frozen=True)
class MetricValue:
    batch_id: str
    source: str
    segment: str
    metric: str
    value: float | None
    low: float | None
    high: float | None
    reference: float | None
    floor: float | None
    max_drop: float | None
    breached: bool | None
    reason: str


@dataclass(frozen=True)
class DriftValue:
    batch_id: str
    family: str
    column: str
    test: str
    statistic: float | None
    p_value: float | None
    p_adjusted: float | None
    alpha: float
    method: str
    distance: float | None
    max_distance: float
    drifted: bool
    why: str


@functools.lru_cache(maxsize=8)
def _engine(url: str) -> sa.Engine:
    engine = ledger_engine(url)
    _metadata.create_all(engine)
    return engine


def _number(value: float | None) -> float | None:
    """NaN and infinities are stored as NULL: PostgreSQL and SQLite disagree on them, a reader does not."""
    return None if value is None or not math.isfinite(value) else float(value)


def metric_rows(report: MonitorReport) -> list[dict]:
    """Every metric of ``report`` as history rows (without the model and batch keys)."""
    rows: dict[tuple[str, str, str], dict] = {}

    def put(source: str, segment: str, metric: str, value: float, interval: tuple[float, float] | None,
            check: MetricCheck | None = None, reference: float | None = None) -> None:
        low, high = interval if interval else (None, None)
        rows[source, segment, metric] = {
            "source": source, "segment": segment, "metric": metric, "value": _number(value), "low": _number(low),
            "high": _number(high), "reference": _number(check.reference if check else reference),
            "floor": check.floor if check else None, "max_drop": check.max_drop if check else None,
            "breached": check.breached if check else None, "reason": check.reason if check else ""}

    if report.performance is not None:
        performance = report.performance
        checks = {c.metric: c for c in performance.checks}
        for metric, value in performance.metrics.items():
            put(REALIZED, "", metric, value, performance.intervals.get(metric), checks.get(metric), performance.references.get(metric))
        for segment in performance.segments:
            for check in segment.checks:
                put(REALIZED, segment.segment, check.metric, check.value, (check.low, check.high), check)
    for source, estimate, checks in ((ESTIMATED, report.estimated, report.estimated_checks),
                                     (ESTIMATED_MATURED, report.estimated_matured, ())):
        if estimate is not None:
            by_metric = {c.metric: c for c in checks}
            for metric, value in estimate.metrics.items():
                put(source, "", metric, value, estimate.intervals.get(metric), by_metric.get(metric))
    return list(rows.values())


def drift_rows(report: MonitorReport) -> list[dict]:
    families = (("features", report.drift), ("predictions", report.prediction_drift), ("target", report.target_drift))
    return [{"family": family, "column": c.column, "test": c.test, "statistic": _number(c.statistic), "p_value": _number(c.p_value),
             "p_adjusted": _number(c.p_adjusted), "alpha": c.alpha, "method": c.method, "distance": _number(c.distance),
             "max_distance": c.max_distance, "drifted": c.drifted, "why": c.why}
            for family, found in families if found is not None for c in found.columns]


def run_row(report: MonitorReport, monitor_run_id: str | None) -> dict:
    performance, labels, health = report.performance, report.labels, report.health
    window = performance.window if performance else ()
    return {
        "model_version": report.model_version, "recorded_at": datetime.now(timezone.utc), "monitor_run_id": monitor_run_id,
        "n_rows": report.n_rows, "validation": report.validation, "drift_verdict": report.drift_verdict,
        "drift_share": report.drift.share_drifted, "decision": report.decision.action, "reasons": json.dumps(list(report.decision.reasons)),
        "matured_window": f"{window[0]}..{window[-1]}" if window else "", "matured_rows": performance.n_rows if performance else 0,
        "label_coverage": _number(labels.coverage) if labels else None, "labels_overdue": labels.overdue if labels else None,
        "failed_share": _number(health.failed_share) if health else None,
        "rows_per_second": _number(health.rows_per_second) if health else None,
    }


class History:
    """A model's monitoring record, beside the ledger (``ledger.url``)."""

    def __init__(self, cfg: LedgerConfig, model: str):
        self.engine = _engine(cfg.url)
        self.model = model

    def record(self, report: MonitorReport, monitor_run_id: str | None = None) -> int:
        """Write ``report``'s figures, replacing whatever an earlier run of the same batch wrote; rows written."""
        key = {"model": self.model, "batch_id": report.batch_id}
        metrics, drift = metric_rows(report), drift_rows(report)
        with self.engine.begin() as conn:  # one transaction: a reader sees the old run's rows or the new one's
            for table in (_runs, _metrics, _drift):
                conn.execute(table.delete().where((table.c.model == self.model) & (table.c.batch_id == report.batch_id)))
            conn.execute(_runs.insert().values(**key, **run_row(report, monitor_run_id)))
            for table, rows in ((_metrics, metrics), (_drift, drift)):
                if rows:
                    conn.execute(table.insert(), [key | row for row in rows])
        return 1 + len(metrics) + len(drift)

    def _batches(self, last: int | None) -> list[str]:
        query = sa.select(_runs.c.batch_id).where(_runs.c.model == self.model).order_by(_runs.c.batch_id.desc())
        with self.engine.connect() as conn:
            found = [r.batch_id for r in conn.execute(query.limit(last) if last else query)]
        return found[::-1]

    def runs(self, last: int | None = None) -> list[RunRecord]:
        """The newest ``last`` batches' runs (all by default), oldest first."""
        batches = self._batches(last)
        query = sa.select(_runs).where((_runs.c.model == self.model) & _runs.c.batch_id.in_(batches)).order_by(_runs.c.batch_id)
        with self.engine.connect() as conn:
            return [RunRecord(**({c: getattr(r, c) for c in RunRecord.__dataclass_fields__} | {"reasons": tuple(json.loads(r.reasons))}))
                    for r in conn.execute(query)]

    def metrics(self, last: int | None = None, source: str | None = None, segment: str | None = "") -> list[MetricValue]:
        """Metric values of the newest ``last`` batches, oldest first; ``segment`` "" is overall, None every segment."""
        query = sa.select(_metrics).where((_metrics.c.model == self.model) & _metrics.c.batch_id.in_(self._batches(last)))
        if source is not None:
            query = query.where(_metrics.c.source == source)
        if segment is not None:
            query = query.where(_metrics.c.segment == segment)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(_metrics.c.batch_id, _metrics.c.source, _metrics.c.segment, _metrics.c.metric))
            return [MetricValue(**{c: getattr(r, c) for c in MetricValue.__dataclass_fields__}) for r in rows]

    def drift(self, last: int | None = None, family: str | None = None) -> list[DriftValue]:
        query = sa.select(_drift).where((_drift.c.model == self.model) & _drift.c.batch_id.in_(self._batches(last)))
        if family is not None:
            query = query.where(_drift.c.family == family)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(_drift.c.batch_id, _drift.c.family, _drift.c.column))
            return [DriftValue(**{c: getattr(r, c) for c in DriftValue.__dataclass_fields__}) for r in rows]
