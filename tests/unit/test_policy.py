from driftloop.config import EvaluationConfig, MetricThreshold, PolicyConfig
from driftloop.drift import ColumnDrift, DriftReport
from driftloop.evaluation import evaluate_window
from driftloop.policy import GateFailure, decide_retraining

import numpy as np

POLICY = PolicyConfig(max_drifted_share=0.3, cooldown_batches=3)


def _drift(n_drifted: int, n_columns: int = 10) -> DriftReport:
    cols = tuple(
        ColumnDrift(f"f{i}", "numeric", "ks", 0.3, 1e-9, 1e-8, 0.05, "wasserstein", 0.3, 0.1, 1000, 1000, i < n_drifted)
        for i in range(n_columns)
    )
    return DriftReport(cols, "bh", 0.01)


def _performance(auc_like_quality: float, rng):
    y = rng.integers(0, 2, 2000)
    noise = rng.normal(0, 1, 2000)
    p = 1 / (1 + np.exp(-(auc_like_quality * (2 * y - 1) + noise)))
    cfg = EvaluationConfig(thresholds={"roc_auc": MetricThreshold(floor=0.7, max_drop=0.05)})
    return evaluate_window(y, p, ("2026-02-01",), {"roc_auc": 0.85}, cfg)


def test_clean_signals_mean_ok(rng):
    decision = decide_retraining(_drift(0), _performance(1.5, rng), None, None, None, POLICY)
    assert decision.action == "ok" and decision.reasons == ()


def test_some_drift_below_the_share_is_watched_not_retrained(rng):
    decision = decide_retraining(_drift(2), _performance(1.5, rng), None, None, None, POLICY)
    assert decision.action == "watch"
    assert "20% of features drifted" in decision.reasons[0]


def test_a_performance_breach_retrains_and_names_metric_window_value_and_threshold(rng):
    decision = decide_retraining(_drift(0), _performance(0.3, rng), None, None, None, POLICY)
    assert decision.retrain
    assert "roc_auc=" in decision.reasons[0] and "2026-02-01" in decision.reasons[0] and "floor 0.7" in decision.reasons[0]


def test_drift_beyond_the_share_retrains_without_labels():
    decision = decide_retraining(_drift(4), None, None, None, None, POLICY, batch_id="2026-02-10")
    assert decision.retrain and decision.reasons[0].startswith("40% of features drifted on 2026-02-10 vs the champion's reference")


def test_prediction_and_target_drift_are_watched_with_their_reason(rng):
    decision = decide_retraining(_drift(0), _performance(1.5, rng), _drift(1, 2), _drift(1, 1), None, POLICY, batch_id="2026-02-10")
    assert decision.action == "watch" and decision.reasons[0].startswith("prediction drift on f0 (2026-02-10): ")
    assert decision.reasons[-1].startswith("target drift on f0 (2026-02-01..2026-02-01): ")  # the matured window


def test_a_recent_retrain_holds_the_next_one(rng):
    decision = decide_retraining(_drift(0), _performance(0.3, rng), None, None, 1, POLICY)
    assert decision.action == "hold"
    assert "cooldown_batches 3" in decision.reasons[-1]
    assert decide_retraining(_drift(0), _performance(0.3, rng), None, None, 3, POLICY).retrain


def test_drift_alone_can_be_told_not_to_retrain():
    decision = decide_retraining(_drift(4), None, None, None, None, PolicyConfig(retrain_on_drift=False))
    assert decision.action == "watch" and "40% of features drifted" in decision.reasons[0]


def test_after_a_gate_failure_drift_alone_waits_for_new_evidence(rng):
    failed = GateFailure(version="5", holdout_end="2026-02-14", newer_labelled_batches=2)
    held = decide_retraining(_drift(4), _performance(1.5, rng), None, None, 9, POLICY, gate_failure=failed)
    assert held.action == "hold"
    assert "v5 (judged on labels up to 2026-02-14) failed the gate" in held.reasons[-1] and "(retry_after_batches; 2 so far)" in held.reasons[-1]
    enough = GateFailure(version="5", holdout_end="2026-02-14", newer_labelled_batches=POLICY.retry_after_batches)
    assert decide_retraining(_drift(4), _performance(1.5, rng), None, None, 9, POLICY, gate_failure=enough).retrain
    # a performance breach is new evidence: it retrains, failed gate or not
    assert decide_retraining(_drift(4), _performance(0.3, rng), None, None, 9, POLICY, gate_failure=failed).retrain
