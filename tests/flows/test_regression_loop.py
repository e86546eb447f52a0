"""The same loop with a regressor: next month's bill, MAE/RMSE/R2, a gate on MAE, no CBPE."""

from __future__ import annotations

import pytest

from driftloop.demo import SPEND
from driftloop.registry import CHALLENGER, CHAMPION, Registry
from tests.flows.conftest import monitor_scenario

REGRESSION = {
    "columns": {"target": SPEND, "task": "regression"},
    "evaluation": {"thresholds": {"mae": {"max_drop": 1.0}, "r2": {"floor": 0.5}}, "fairness_columns": []},
    "gate": {"rules": {"mae": {"max_value": 8.0, "min_improvement": 0.0, "max_segment_loss": 3.0}}},  # in MAE's own units
}


@pytest.fixture(scope="module")
def regression_run(tmp_path_factory):
    return monitor_scenario(tmp_path_factory.mktemp("regression"), SPEND, **REGRESSION)


def test_the_champion_is_a_regressor_with_holdout_mae_rmse_and_r2(regression_run):
    cfg, _, _ = regression_run
    champion = Registry(cfg.registry).by_alias(CHAMPION)
    tags = champion.tags
    assert float(tags["driftloop.holdout_mae"]) < 6 and float(tags["driftloop.holdout_r2"]) > 0.8
    assert "driftloop.holdout_roc_auc" not in tags


def test_matured_windows_have_regression_metrics_with_intervals_and_no_estimate(regression_run):
    _, days, outcomes = regression_run
    clean = next(o.report for d, o in outcomes.items() if o.report.performance is not None and not days[d - 1].concept_drift)
    assert set(clean.performance.metrics) == {"mae", "rmse", "r2"}
    for check in clean.performance.checks:
        assert check.low <= check.value <= check.high and not check.breached
    assert clean.estimated is None  # CBPE needs a classifier's probabilities
    # every segment is judged against its own baseline (max_drop), as the whole population is
    assert clean.performance.segments and all(c.reference is not None for s in clean.performance.segments for c in s.checks)
    assert [c.column for c in clean.prediction_drift.columns] == ["prediction"]
    assert "mae" in clean.performance_summary


def test_the_concept_drift_raises_mae_credibly_and_retrains_a_challenger_gated_on_mae(regression_run):
    cfg, days, outcomes = regression_run
    retrained = [d for d, o in outcomes.items() if o.retrain is not None]
    assert retrained and days[retrained[0] - 1].concept_drift
    first = outcomes[retrained[0]].report
    assert any(b.startswith("mae=") and "max_drop 1.0" in b for b in first.performance.breaches)
    later = [o.report.target_drift for d, o in outcomes.items() if d > retrained[0] and o.report.target_drift is not None]
    assert any(t.drifted for t in later)  # once the window holds only discounted bills
    registry = Registry(cfg.registry)
    versions = [v for v in registry.versions() if v.tags.get("driftloop.trigger", "").startswith("monitor:")]
    assert all("mae improvement: improvement" in v.description and "mae on " in v.description for v in versions)
    assert all(v.tags["driftloop.vs_parent"].startswith("mae ") for v in versions)  # status compares versions paired
    assert versions[-1].tags["driftloop.gate_verdict"] == "passed"
    assert registry.by_alias(CHALLENGER).version == versions[-1].version
    assert registry.by_alias(CHAMPION).version == "1"
