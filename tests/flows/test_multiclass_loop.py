"""The same loop with a multiclass classifier: keep / upgrade / downgrade next month, macro and
per-class metrics, class-share drift on predictions and target, a gate on macro F1, no CBPE."""

from __future__ import annotations

import pandas as pd
import pytest

from driftloop import data
from driftloop.config import TASK_METRICS
from driftloop.demo import PLAN_CHANGE, PLAN_CHANGES
from driftloop.registry import CHALLENGER, CHAMPION, Registry
from tests.flows.conftest import monitor_scenario

MULTICLASS = {
    "columns": {"target": PLAN_CHANGE, "task": "multiclass_classification", "classes": list(PLAN_CHANGES)},
    "evaluation": {"thresholds": {"macro_f1": {"max_drop": 0.05}}, "fairness_columns": []},
    "gate": {"rules": {"macro_f1": {"min_improvement": 0.0, "max_segment_loss": 0.05}}},
    "demo": {"n_batches": 10},  # the concept drift (day 6) is retrained on by day 9 and breaches overall on day 10
}


@pytest.fixture(scope="module")
def multiclass_run(tmp_path_factory):
    return monitor_scenario(tmp_path_factory.mktemp("multiclass"), PLAN_CHANGE, **MULTICLASS)


def test_the_champion_predicts_the_users_own_class_names_and_logs_one_probability_per_class(multiclass_run):
    cfg, days, _ = multiclass_run
    champion = Registry(cfg.registry).by_alias(CHAMPION)
    assert 0.5 < float(champion.tags["driftloop.holdout_macro_f1"]) < 0.9 and "driftloop.holdout_roc_auc" not in champion.tags
    logged = data.read_predictions(cfg.data, [days[0].batch_id])
    probabilities = logged[[f"probability.{c}" for c in PLAN_CHANGES]]
    assert probabilities.sum(axis=1).to_numpy() == pytest.approx(1.0)
    assert set(logged["prediction"]) <= set(PLAN_CHANGES) and len(set(logged["prediction"])) >= 2
    assert (logged["prediction"] == probabilities.idxmax(axis=1).str.removeprefix("probability.")).all()


def test_a_clean_window_has_macro_and_per_class_metrics_with_intervals_and_no_estimate(multiclass_run):
    _, days, outcomes = multiclass_run
    clean = next(o.report for d, o in outcomes.items() if o.report.performance is not None and not days[d - 1].concept_drift)
    performance = clean.performance
    assert set(TASK_METRICS["multiclass_classification"]) <= set(performance.metrics)
    assert {f"recall.{c}" for c in PLAN_CHANGES} <= set(performance.intervals)
    assert all(performance.references.get(f"f1.{c}") is not None for c in PLAN_CHANGES)  # what each class earned on the holdout
    assert not performance.degraded and clean.estimated is None  # CBPE needs a binary classifier's calibration
    assert performance.segments and all(c.reference is not None for s in performance.segments for c in s.checks)
    assert [c.column for c in clean.prediction_drift.columns] == ["prediction"]
    assert "macro_f1" in clean.performance_summary and "f1.keep" not in clean.performance_summary
    assert "| all | f1.downgrade |" in clean.to_markdown()


def test_the_concept_drift_breaches_macro_f1_moves_class_shares_and_retrains_a_challenger_gated_on_macro_f1(multiclass_run):
    cfg, days, outcomes = multiclass_run
    retrained = [d for d, o in outcomes.items() if o.retrain is not None]
    assert retrained and days[retrained[0] - 1].concept_drift
    first = outcomes[retrained[0]].report
    assert any("macro_f1=" in b and "max_drop 0.05" in b for b in first.performance.breaches)  # a segment's, or all rows'
    overall = [o.report for o in outcomes.values() if o.report.performance is not None and o.report.performance.degraded]
    assert any(b.startswith("macro_f1=") for r in overall for b in r.performance.breaches)
    later = [o.report.target_drift for d, o in outcomes.items() if d >= retrained[0] and o.report.target_drift is not None]
    assert any(t.drifted for t in later)  # downgrades took a bigger share of the labels
    registry = Registry(cfg.registry)
    versions = [v for v in registry.versions() if v.tags.get("driftloop.trigger", "").startswith("monitor:")]
    assert versions and all("macro_f1 improvement: improvement" in v.description for v in versions)
    assert all(v.tags["driftloop.vs_parent"].startswith("macro_f1 ") for v in versions)
    passed = [v for v in versions if v.tags["driftloop.gate_verdict"] == "passed"]
    assert passed and registry.by_alias(CHALLENGER).version == passed[-1].version
    assert registry.by_alias(CHAMPION).version == "1"
    comparison = pd.read_json(cfg.data.reports / f"retrain-{passed[-1].tags['driftloop.as_of']}.comparison.json", typ="series")
    assert comparison["comparison"]["mcnemar"]["challenger_only_right"] > comparison["comparison"]["mcnemar"]["champion_only_right"]
