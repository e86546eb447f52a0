import numpy as np
import pytest
from sklearn import metrics as skm

from driftloop.comparison import compare, mcnemar, weighted_metrics
from driftloop.config import GateConfig, GateMetricRule
from driftloop.policy import evaluate_gate

GATE = GateConfig(rules={"roc_auc": GateMetricRule(min_value=0.6, min_improvement=0.0, max_segment_loss=0.05)},
                  min_segment_rows=200, n_bootstrap=500)


def _scores(rng, y, signal):
    """Probabilities whose ranking quality grows with ``signal``."""
    return 1 / (1 + np.exp(-(signal * (2 * y - 1) + rng.normal(0, 1, len(y)))))


def _compare(y, new, old, segments=None):
    return compare(y, new, old, segments or {}, metrics=("roc_auc", "accuracy", "log_loss"), threshold=0.5,
                   n_bootstrap=GATE.n_bootstrap, confidence=0.95, min_segment_rows=GATE.min_segment_rows, seed=1)


def test_weighted_metrics_with_unit_weights_match_scikit_learn(rng):
    y = rng.integers(0, 2, 500)
    p = np.round(_scores(rng, y, 0.8), 2)  # rounding makes ties, which AUC must count as half
    got = {k: v[0] for k, v in weighted_metrics(y, p, np.ones((1, 500)), 0.5).items()}
    c = (p >= 0.5).astype(int)
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p))
    assert got["f1"] == pytest.approx(skm.f1_score(y, c))
    assert got["log_loss"] == pytest.approx(skm.log_loss(y, p))
    assert got["brier"] == pytest.approx(skm.brier_score_loss(y, p))


def test_mcnemar_counts_only_disagreements():
    y = np.array([1, 1, 0, 0, 1])
    result = mcnemar(y, np.array([0.9, 0.9, 0.1, 0.9, 0.2]), np.array([0.1, 0.9, 0.1, 0.1, 0.2]), 0.5)
    assert (result.challenger_only_right, result.champion_only_right) == (1, 1)
    assert result.p_value == pytest.approx(1.0)


def test_a_challenger_better_only_within_noise_fails_the_gate(rng):
    y = rng.integers(0, 2, 1500)
    old = _scores(rng, y, 1.0)
    new = np.clip(old + rng.normal(0, 0.01, len(y)), 0, 1)  # same model, a hair of noise
    verdict = evaluate_gate(_compare(y, new, old), GATE)
    assert not verdict.passed
    assert [r.rule for r in verdict.failed] == ["roc_auc improvement"]
    assert "does not clear +0.0000" in verdict.failed[0].detail


def test_a_clearly_better_challenger_passes(rng):
    y = rng.integers(0, 2, 1500)
    comparison = _compare(y, _scores(rng, y, 1.6), _scores(rng, y, 0.6))
    verdict = evaluate_gate(comparison, GATE)
    assert verdict.passed, verdict.markdown()
    assert comparison.overall["roc_auc"].low > 0.05
    assert comparison.mcnemar.p_value < 0.001


def test_better_overall_but_worse_on_a_segment_fails_naming_it(rng):
    n = 3000
    y = rng.integers(0, 2, n)
    region = rng.choice(["north", "south", "east"], n)
    old = _scores(rng, y, 1.0)
    new = np.where(region == "south", _scores(rng, y, 0.3), _scores(rng, y, 2.0))
    verdict = evaluate_gate(_compare(y, new, old, {"region": region}), GATE)
    assert not verdict.passed
    assert [r.rule for r in verdict.failed] == ["roc_auc on region=south"]
    assert "region=south" in verdict.failed[0].detail and "worse than max_segment_loss 0.05" in verdict.failed[0].detail


def test_segments_below_the_minimum_size_are_not_judged(rng):
    y = rng.integers(0, 2, 1000)
    tiny = np.where(np.arange(1000) < 50, "tiny", "big")
    comparison = _compare(y, _scores(rng, y, 1.5), _scores(rng, y, 0.5), {"s": tiny})
    assert list(comparison.segments) == ["s=big"]


def test_a_floor_is_checked_on_the_challenger_itself(rng):
    y = rng.integers(0, 2, 1000)
    strict = GATE.model_copy(update={"rules": {"roc_auc": GateMetricRule(min_value=0.99, min_improvement=-1.0)}})
    verdict = evaluate_gate(_compare(y, _scores(rng, y, 1.0), _scores(rng, y, 0.5)), strict)
    assert [r.rule for r in verdict.failed] == ["roc_auc min_value"]


def test_replicates_are_drawn_in_blocks_of_bounded_size_and_equal_drawing_them_all_at_once(monkeypatch):
    from driftloop import comparison

    y = np.random.default_rng(1).integers(0, 2, 300)
    probability = np.random.default_rng(2).random(300)
    dense = comparison.weighted_metrics(y, probability, np.random.default_rng(3).poisson(1.0, (50, 300)).astype("float64"), 0.5)
    shapes = []

    def measure(weights):
        shapes.append(weights.shape)
        return comparison.weighted_metrics(y, probability, weights, 0.5)

    monkeypatch.setattr(comparison, "BLOCK_CELLS", 1000)  # 3 replicates of 300 rows per block
    blocked = comparison.poisson_replicates(measure, 300, 50, np.random.default_rng(3))
    assert max(r * n for r, n in shapes) <= 1000 and sum(r for r, _ in shapes) == 50
    assert set(blocked) == set(dense)
    for metric, values in dense.items():  # the same draws, so the same replicates
        np.testing.assert_allclose(blocked[metric], values)
