"""The Prometheus exposition of the monitoring history, parsed back as Prometheus would read it."""

import numpy as np
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from driftloop.config import LedgerConfig
from driftloop.exporter import registry_for
from driftloop.history import History
from driftloop.ledger import Ledger
from tests.unit.test_history import _report


def _samples(registry) -> dict[tuple[str, tuple], float]:
    text = generate_latest(registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_the_newest_batch_of_the_model_is_exposed_with_its_intervals_drift_decision_and_the_ledger_states(tmp_path, rng):
    ledger = LedgerConfig(url=f"sqlite:///{tmp_path / 'ledger.db'}")
    history = History(ledger, "churn")
    history.record(_report(rng, "2026-02-02", 0.6))
    newest = _report(rng, "2026-02-03", 0.2, "retrain", ("auc fell",))
    history.record(newest)
    History(ledger, "fraud").record(_report(rng, "2026-02-04", 0.6, "watch"))
    Ledger(ledger).record("2026-02-03", "evaluated")
    Ledger(ledger).record("2026-02-04", "quarantined")

    found = _samples(registry_for(ledger, "churn"))

    label = lambda **kw: tuple(sorted({"model": "churn", **kw}.items()))  # noqa: E731
    auc = newest.performance.checks[0]
    assert found["driftloop_metric_value", label(metric="roc_auc", source="realized", segment="")] == pytest.approx(auc.value)
    assert found["driftloop_metric_lower", label(metric="roc_auc", source="realized", segment="")] == pytest.approx(auc.low)
    assert found["driftloop_metric_upper", label(metric="roc_auc", source="realized", segment="")] == pytest.approx(auc.high)
    assert found["driftloop_metric_threshold_breached", label(metric="roc_auc", source="realized", segment="")] == float(auc.breached)
    assert ("driftloop_metric_value", label(metric="roc_auc", source="realized", segment="region=north")) in found
    assert found["driftloop_drift_distance", label(family="features", column="tenure_months")] == 0.3
    assert found["driftloop_drift_detected", label(family="features", column="age")] == 0.0
    assert found["driftloop_drifted_share", label()] == 0.5
    assert found["driftloop_decision", label(action="retrain")] == 1.0 and found["driftloop_decision", label(action="ok")] == 0.0
    assert found["driftloop_label_coverage", label()] == 0.75
    assert found["driftloop_batches", label(state="evaluated")] == 1.0 and found["driftloop_batches", label(state="quarantined")] == 1.0
    assert 0 <= found["driftloop_seconds_since_last_evaluated_batch", label()] < 60
    assert {dict(k[1]).get("batch_id") for k in found if k[0] == "driftloop_last_batch_timestamp_seconds"} == {"2026-02-03"}


def test_a_model_with_no_monitor_run_yet_exposes_only_its_ledger_states(tmp_path):
    found = _samples(registry_for(LedgerConfig(url=f"sqlite:///{tmp_path / 'ledger.db'}"), "churn"))
    assert {name for name, _ in found} == {"driftloop_batches"}


def test_the_shipped_grafana_dashboard_queries_only_series_the_endpoints_expose(tmp_path, rng):
    import json
    import re
    from pathlib import Path

    from driftloop.exporter import ServingMetrics

    ledger = LedgerConfig(url=f"sqlite:///{tmp_path / 'ledger.db'}")
    History(ledger, "churn").record(_report(rng, "2026-02-03", 0.2, "retrain", ("auc fell",)))
    serving = ServingMetrics("churn")  # what `driftloop serve` exposes, after one answered request
    serving.answered("predict", "ok", "1", 0.01)
    serving.scored("1", 0.004, 2, 0, scores=np.array([0.2, 0.9]), classes={"0": 1, "1": 1})
    serving.in_progress.labels("churn").inc()
    exposed = {name for name, _ in _samples(registry_for(ledger, "churn"))} | {name for name, _ in _samples(serving.registry)}
    dashboard = json.loads((Path(__file__).parents[2] / "ops" / "grafana" / "driftloop-dashboard.json").read_text())
    queried = {name for panel in dashboard["panels"] for target in panel["targets"] for name in re.findall(r"driftloop_[a-z_]+", target["expr"])}
    assert queried and queried <= exposed, queried - exposed
