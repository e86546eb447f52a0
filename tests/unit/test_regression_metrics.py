"""A regressor's MAE, RMSE and R2 on a matured window: values, bootstrap intervals, thresholds, segments."""

import math

import numpy as np
import pytest
from sklearn import metrics as skm

from driftloop.comparison import compare, weighted_regression_metrics
from driftloop.config import EvaluationConfig, MetricThreshold, load_config
from driftloop.errors import ConfigError
from driftloop.evaluation import check_metric, evaluate_window, regression_metrics
from tests.conftest import write_project

CFG = EvaluationConfig(min_labelled_rows=10, n_bootstrap=400,
                       thresholds={"mae": MetricThreshold(floor=12.0, max_drop=2.0), "r2": MetricThreshold(floor=0.5)})


def _window(rng, n, noise=5.0):
    y = rng.normal(100, 20, n)
    return y, y + rng.normal(0, noise, n)


def test_regression_metrics_equal_scikit_learn_and_at_unit_weights_the_weighted_ones(rng):
    y, prediction = _window(rng, 2000)
    values = regression_metrics(y, prediction)
    assert values["mae"] == pytest.approx(skm.mean_absolute_error(y, prediction))
    assert values["rmse"] == pytest.approx(skm.root_mean_squared_error(y, prediction))
    assert values["r2"] == pytest.approx(skm.r2_score(y, prediction))
    weighted = weighted_regression_metrics(y, prediction, np.ones((1, len(y))))
    assert {k: v[0] for k, v in weighted.items()} == pytest.approx(values)


def test_r2_on_a_window_whose_target_does_not_vary_is_nan_not_zero():
    values = regression_metrics(np.full(50, 3.0), np.linspace(2, 4, 50))
    assert math.isnan(values["r2"]) and values["mae"] > 0


def test_each_metric_comes_with_an_interval_around_it_that_narrows_with_more_rows(rng):
    small = evaluate_window(*_window(rng, 300), ("d",), {}, CFG, task="regression")
    large = evaluate_window(*_window(rng, 30_000), ("d",), {}, CFG, task="regression")
    for report in (small, large):
        for check in report.checks:
            assert check.low < check.value < check.high
    mae_width = lambda report: next(c.high - c.low for c in report.checks if c.metric == "mae")  # noqa: E731
    assert mae_width(large) < mae_width(small) / 5


def test_a_credible_rise_in_mae_is_a_breach_that_names_metric_window_interval_and_threshold(rng):
    reference = {"mae": 4.0, "r2": 0.94}
    fine = evaluate_window(*_window(rng, 3000, noise=5.0), ("2026-02-10",), reference, CFG, task="regression")
    worse = evaluate_window(*_window(rng, 3000, noise=9.0), ("2026-02-10",), reference, CFG, task="regression")
    assert not fine.degraded
    assert worse.degraded
    reason = next(b for b in worse.breaches if b.startswith("mae"))
    assert "2026-02-10" in reason and "up at least" in reason and "from reference 4.000 (max_drop 2.0)" in reason


def test_a_lower_is_better_metric_breaches_a_ceiling_only_when_its_whole_interval_is_above_it():
    rule = MetricThreshold(floor=12.0)
    assert not check_metric("rmse", 12.5, (11.8, 13.2), None, rule, "w").breached
    assert check_metric("rmse", 13.0, (12.4, 13.6), None, rule, "w").breached


def test_a_segment_whose_error_doubles_is_named_while_overall_barely_moves(rng):
    n = 20_000
    region = rng.choice(["north", "south", "east", "west"], n, p=[0.32, 0.04, 0.32, 0.32])
    y, prediction = _window(rng, n, noise=5.0)
    south = region == "south"
    prediction[south] = y[south] + rng.normal(0, 12.0, south.sum())
    reference = {"mae": 4.0, "r2": 0.94} | {f"seg.region.{r}.mae": 4.0 for r in ("north", "south", "east", "west")}
    cfg = CFG.model_copy(update={"thresholds": {"mae": MetricThreshold(max_drop=1.0)}})
    report = evaluate_window(y, prediction, ("d",), reference, cfg, segments={"region": region}, task="regression")
    assert [b.split(":")[0] for b in report.breaches] == ["segment region=south"]
    assert report.fairness == ()  # positive-rate gaps are a classifier's notion


def test_the_gate_compares_a_regressor_on_paired_differences_without_mcnemar(rng):
    y, champion = _window(rng, 4000, noise=8.0)
    challenger = y + rng.normal(0, 4.0, len(y))
    result = compare(y, challenger, champion, {}, metrics=("mae", "rmse", "r2"), threshold=0.5, n_bootstrap=400,
                     confidence=0.95, min_segment_rows=100, task="regression")
    mae = result.overall["mae"]
    assert mae.champion > mae.challenger and mae.improvement == pytest.approx(mae.champion - mae.challenger)
    assert 0 < mae.low < mae.improvement < mae.high  # lower is better: a positive improvement is a smaller error
    assert result.overall["r2"].improvement > 0 and result.mcnemar is None


def test_thresholds_and_gate_rules_must_name_metrics_of_the_task(tmp_path):
    regression = {"target": "spend_next_month", "task": "regression"}
    path = write_project(tmp_path, columns=regression, evaluation={"thresholds": {"roc_auc": {"floor": 0.7}}, "fairness_columns": []},
                         gate={"rules": {"mae": {}}})
    with pytest.raises(ConfigError, match="evaluation.thresholds names roc_auc, not a regression metric; use one of mae, rmse, r2"):
        load_config(path)
    path = write_project(tmp_path, columns=regression, evaluation={"thresholds": {"mae": {"max_drop": 2.0}}, "fairness_columns": []})
    with pytest.raises(ConfigError, match="gate.rules names roc_auc") as caught:
        load_config(path)
    assert "\n" not in str(caught.value)
    path = write_project(tmp_path, columns=regression, evaluation={"thresholds": {"mae": {"max_drop": 2.0}}, "fairness_columns": []},
                         gate={"rules": {"mae": {"min_improvement": 0.0}}})
    assert load_config(path).columns.task == "regression"


def test_a_regressor_gets_a_baseline_per_segment_so_max_drop_is_checked_there_too(rng):
    from driftloop.evaluation import segment_metrics

    y = rng.normal(50, 10, 1000)
    predicted = y + rng.normal(0, 2, 1000)
    region = np.where(np.arange(1000) % 2 == 0, "north", "south")
    baseline = segment_metrics("regression", y, predicted, {"region": region}, 0.5, min_rows=100)
    assert {"seg.region.north.mae", "seg.region.south.mae", "seg.region.north.r2"} <= set(baseline)


def test_a_regressor_without_thresholds_is_told_to_set_them_in_the_targets_units(tmp_path):
    import yaml

    path = write_project(tmp_path, columns={"target": "spend_next_month", "task": "regression"}, evaluation={"fairness_columns": []})
    raw = yaml.safe_load(path.read_text())
    del raw["evaluation"]["thresholds"], raw["gate"]["rules"]
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"a regressor has no default evaluation.thresholds or gate.rules: MAE and RMSE are in "
                                          r"the target's units; set them, e.g. evaluation.thresholds: \{mae: \{max_drop: 2.0\}\}"):
        load_config(path)
