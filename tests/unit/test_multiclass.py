"""A multiclass classifier: macro, weighted and per-class metrics with intervals, the paired gate,
the class contract in config and labels, and the prediction log's per-class probabilities."""

import re

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn import metrics as skm

from driftloop import data, training
from driftloop.comparison import compare, weighted_multiclass_metrics
from driftloop.config import TASK_METRICS, EvaluationConfig, MetricThreshold, load_config
from driftloop.demo import PLAN_CHANGE, PLAN_CHANGES
from driftloop.errors import ConfigError, DataError
from driftloop.evaluation import evaluate_window, multiclass_metrics
from tests.conftest import write_project

CLASSES = ("keep", "upgrade", "downgrade")
MULTICLASS = {"target": PLAN_CHANGE, "task": "multiclass_classification", "classes": list(PLAN_CHANGES)}
EVALUATION = EvaluationConfig(min_labelled_rows=10, n_bootstrap=300, thresholds={"macro_f1": MetricThreshold(max_drop=0.05)})


def _window(rng, n: int, skill: float) -> tuple[np.ndarray, np.ndarray]:
    """Class codes and rows x classes probabilities whose argmax is right about ``skill`` of the time
    above chance; the rare third class makes macro and weighted averages differ."""
    y = rng.choice(3, size=n, p=[0.6, 0.3, 0.1])
    logits = rng.normal(0, 1, (n, 3))
    logits[np.arange(n), y] += skill
    probability = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y, probability


def test_multiclass_metrics_equal_scikit_learn(rng):
    y, probability = _window(rng, 3000, skill=1.5)
    predicted = probability.argmax(axis=1)
    values = multiclass_metrics(y, probability, CLASSES)
    assert values["accuracy"] == pytest.approx(skm.accuracy_score(y, predicted))
    assert values["macro_f1"] == pytest.approx(skm.f1_score(y, predicted, average="macro"))
    assert values["macro_precision"] == pytest.approx(skm.precision_score(y, predicted, average="macro"))
    assert values["macro_recall"] == pytest.approx(skm.recall_score(y, predicted, average="macro"))
    assert values["weighted_f1"] == pytest.approx(skm.f1_score(y, predicted, average="weighted"))
    assert values["macro_roc_auc"] == pytest.approx(skm.roc_auc_score(y, probability, multi_class="ovr", average="macro"))
    assert values["log_loss"] == pytest.approx(skm.log_loss(y, probability))
    assert values["brier"] == pytest.approx(skm.brier_score_loss(y, probability))
    per_class_f1 = skm.f1_score(y, predicted, average=None)
    assert [values[f"f1.{c}"] for c in CLASSES] == pytest.approx(per_class_f1)
    assert [values[f"recall.{c}"] for c in CLASSES] == pytest.approx(skm.recall_score(y, predicted, average=None))


def test_a_class_absent_from_the_window_is_left_out_of_the_macro_average_not_counted_as_zero(rng):
    y, probability = _window(rng, 2000, skill=2.0)
    keep = y != 2
    values = multiclass_metrics(y[keep], probability[keep])
    predicted = probability[keep].argmax(axis=1)
    assert values["macro_recall"] == pytest.approx(skm.recall_score(y[keep], predicted, labels=[0, 1], average="macro"))


def test_every_replicate_is_computed_at_once_one_row_of_weights_each(rng):
    y, probability = _window(rng, 500, skill=1.0)
    weights = rng.poisson(1.0, size=(7, 500)).astype("float64")
    replicates = weighted_multiclass_metrics(y, probability, weights, CLASSES)
    assert all(v.shape == (7,) for v in replicates.values())
    # a replicate equals the metric on rows repeated as often as their weight
    rows = np.repeat(np.arange(500), weights[3].astype("int64"))
    assert replicates["macro_f1"][3] == pytest.approx(skm.f1_score(y[rows], probability[rows].argmax(axis=1), average="macro"))


def test_every_macro_and_per_class_metric_has_an_interval_and_a_worse_model_breaches_max_drop(rng):
    y, good = _window(rng, 3000, skill=2.0)
    reference = multiclass_metrics(y, good)
    fine = evaluate_window(y, good, ("2026-02-10",), reference, EVALUATION, task="multiclass_classification", classes=CLASSES)
    assert set(TASK_METRICS["multiclass_classification"]) | {f"{m}.{c}" for m in ("precision", "recall", "f1") for c in CLASSES} \
        == set(fine.metrics)
    for metric, value in fine.metrics.items():
        low, high = fine.intervals[metric]
        assert low <= value <= high, metric
    assert not fine.degraded and fine.fairness == ()
    _, worse = _window(rng, 3000, skill=0.8)
    worse_report = evaluate_window(y, worse, ("2026-02-10",), reference, EVALUATION, task="multiclass_classification", classes=CLASSES)
    assert worse_report.degraded and worse_report.breaches[0].startswith("macro_f1=")


def test_the_gate_compares_macro_metrics_paired_with_mcnemar_on_the_picked_class(rng):
    y, champion = _window(rng, 4000, skill=1.0)
    logits = np.log(champion)
    logits[np.arange(len(y)), y] += 1.0  # the challenger knows more about every row
    challenger = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    region = np.where(np.arange(len(y)) % 2 == 0, "north", "south")
    result = compare(y, challenger, champion, {"region": region}, metrics=TASK_METRICS["multiclass_classification"],
                     threshold=0.5, n_bootstrap=300, confidence=0.95, min_segment_rows=100, task="multiclass_classification")
    macro = result.overall["macro_f1"]
    assert 0 < macro.low < macro.improvement < macro.high
    assert result.overall["log_loss"].improvement > 0  # lower is better: the sign says "better"
    assert result.mcnemar.challenger_only_right > result.mcnemar.champion_only_right and result.mcnemar.p_value < 0.01
    assert set(result.segments) == {"region=north", "region=south"}
    same = compare(y, champion, champion, {}, metrics=("macro_f1",), threshold=0.5, n_bootstrap=300, confidence=0.95,
                   min_segment_rows=100, task="multiclass_classification")
    assert same.overall["macro_f1"].low == same.overall["macro_f1"].high == 0.0 and same.mcnemar.p_value == 1.0


def _config(tmp_path, drop=(), **columns):
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = write_project(tmp_path, columns=MULTICLASS | columns, evaluation={"fairness_columns": []})
    raw = yaml.safe_load(path.read_text())
    for section, key in drop:
        del raw[section][key]
    path.write_text(yaml.safe_dump(raw))
    return path


def test_a_multiclass_config_without_thresholds_is_judged_on_macro_f1(tmp_path):
    cfg = load_config(_config(tmp_path, drop=(("evaluation", "thresholds"), ("gate", "rules"))))
    assert cfg.columns.classes == PLAN_CHANGES
    assert set(cfg.evaluation.thresholds) == {"macro_f1"} and cfg.evaluation.thresholds["macro_f1"].max_drop == 0.05
    assert set(cfg.gate.rules) == {"macro_f1"} and cfg.gate.rules["macro_f1"].max_segment_loss == 0.05


@pytest.mark.parametrize(("columns", "message"), [
    ({"classes": ["keep", "upgrade"]}, "multiclass_classification needs classes: every value the target can take, at least three"),
    ({"classes": ["keep", "keep", "upgrade"]}, "classes lists a class twice"),
    ({"classes": []}, "multiclass_classification needs classes"),
    ({"task": "binary_classification", "target": "churned"}, "classes is for task multiclass_classification"),
])
def test_the_classes_must_fit_the_task(tmp_path, columns, message):
    with pytest.raises(ConfigError, match=re.escape(message)) as caught:
        load_config(_config(tmp_path, drop=(("evaluation", "thresholds"), ("gate", "rules")), **columns))
    assert "\n" not in str(caught.value)


def test_fairness_gaps_are_a_binary_classifiers_and_a_multiclass_config_naming_them_is_refused(tmp_path):
    path = write_project(tmp_path, columns=MULTICLASS, evaluation={"thresholds": {"macro_f1": {"max_drop": 0.05}}},
                         gate={"rules": {"macro_f1": {}}})
    with pytest.raises(ConfigError, match="evaluation.fairness_columns: the gaps measured .* are a binary classifier's"):
        load_config(path)


def test_a_label_outside_the_classes_is_one_line_and_numbers_match_classes_written_as_numbers(tmp_path):
    cfg = load_config(_config(tmp_path, drop=(("evaluation", "thresholds"), ("gate", "rules"))))
    with pytest.raises(DataError, match=re.escape("should hold one of columns.classes (keep, upgrade, downgrade) but has 'cancel' at rows 2")):
        data.check_target(pd.Series(["keep", "upgrade", "cancel"]), cfg.columns, "labels/2026-02-03.csv")
    numbered = load_config(_config(tmp_path / "n", drop=(("evaluation", "thresholds"), ("gate", "rules")), classes=[0, 1, 2]))
    assert numbered.columns.classes == ("0", "1", "2")
    assert data.check_target(pd.Series([2, 0, 1]), numbered.columns, "x").tolist() == ["2", "0", "1"]


def test_the_log_holds_one_probability_per_class_and_the_picked_class_even_for_a_class_the_model_never_saw(tmp_path):
    from sklearn.linear_model import LogisticRegression

    cfg = load_config(_config(tmp_path, drop=(("evaluation", "thresholds"), ("gate", "rules"))))
    schema = cfg.columns.model_copy(update={"numeric": ("x",), "categorical": (), "segments": ()})
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"customer_id": [f"c{i}" for i in range(300)], "event_ts": pd.Timestamp("2026-02-01", tz="UTC"),
                          "x": rng.normal(0, 1, 300)})
    # trained without "upgrade": its probability is 0, and the columns stay in the declared order
    model = LogisticRegression().fit(frame[["x"]], np.where(frame["x"] > 0, "downgrade", "keep"))
    scored = training.score(model, frame.assign(x=frame["x"].where(frame.index != 5)), schema, threshold=0.5).frame
    assert [c for c in scored if c.startswith("probability.")] == ["probability.keep", "probability.upgrade", "probability.downgrade"]
    assert (scored.loc[scored["scored"], "probability.upgrade"] == 0).all()
    assert set(scored.loc[scored["scored"], "prediction"]) == {"keep", "downgrade"}
    assert not scored.loc[5, "scored"] and pd.isna(scored.loc[5, "prediction"])  # a row it cannot score is kept, not dropped
    assert training.logged_output(scored[scored["scored"]], schema).shape == (299, 3)
    assert training.truth(pd.DataFrame({PLAN_CHANGE: ["downgrade", "keep"]}), schema).tolist() == [2, 0]
