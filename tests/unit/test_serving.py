"""What `driftloop serve` accepts: MLflow's request shapes, the config's columns, and ids that sort by time."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from prometheus_client import CollectorRegistry, Histogram

from driftloop.config import load_config
from driftloop.exporter import ServingMetrics, _observe_all
from driftloop.serving import InvalidRequest, check_feedback, check_rows, columns_of, new_ids

NOW = pd.Timestamp("2026-12-03T10:00:00", tz="UTC")


@pytest.fixture
def schema(config_path):
    return load_config(config_path).columns


def _row(schema, **changes) -> dict:
    row = {c: 1.5 for c in schema.numeric} | {c: "a" for c in schema.categorical}
    return row | changes


def _check(schema, body, route="predict"):
    names = (schema.id_column, schema.timestamp_column, *schema.features, *schema.passthrough)
    columns, fields, n = columns_of(body, route, names)
    return check_rows(columns, fields, n, schema, 1, NOW)


def test_mlflow_s_request_formats_give_the_same_rows(schema):
    rows = [_row(schema, age=30.0), _row(schema, age=41.0)]
    split = {"dataframe_split": {"columns": list(rows[0]), "data": [list(r.values()) for r in rows]}}
    as_columns = {"inputs": {k: [r[k] for r in rows] for k in rows[0]}}
    seen = [_check(schema, body, "invocations")[1] for body in
            (split, {"dataframe_records": rows}, {"instances": rows}, as_columns)] + [_check(schema, rows)[1]]
    for columns in seen[1:]:
        assert columns["age"].tolist() == seen[0]["age"].tolist() == [30.0, 41.0]
        assert columns["region"].tolist() == seen[0]["region"].tolist()


@pytest.mark.parametrize("change, field, says", [
    (lambda r: r.pop("age"), "age", "field age is missing (rows [1])"),
    (lambda r: r.update(age="forty"), "age", "field age should be a number but is 'forty' (rows [1])"),
    (lambda r: r.update(age=True), "age", "should be a number but is True"),
    (lambda r: r.update(region=3), "region", "field region should be a string (a category) but is 3"),
    (lambda r: r.update(coupon="x"), "coupon", "unexpected field(s) coupon"),
    (lambda r: r.update(event_ts="2026-11-20T00:00:00Z"), "event_ts", "more than 1 day(s) from now"),
    (lambda r: r.update(event_ts="yesterday"), "event_ts", "not a timestamp at rows [1]"),
])
def test_a_row_that_does_not_fit_the_columns_is_a_422_naming_the_field(schema, change, field, says):
    rows = [_row(schema), _row(schema)]
    change(rows[1])
    with pytest.raises(InvalidRequest) as refused:
        _check(schema, rows)
    assert refused.value.status == 422 and refused.value.body["field"] == field and says in refused.value.body["error"]
    assert refused.value.body["expected"]


def test_nulls_are_unknown_values_not_errors(schema):
    ids, columns, generated = _check(schema, _row(schema, age=None, region=None))
    assert np.isnan(columns["age"][0]) and columns["region"][0] is None and generated


def test_a_clients_ids_are_kept_and_must_differ_within_a_request(schema):
    ids, _, generated = _check(schema, [_row(schema, customer_id="c-1"), _row(schema, customer_id=7)])
    assert ids.tolist() == ["c-1", "7"] and not generated
    with pytest.raises(InvalidRequest, match="repeats an id"):
        _check(schema, [_row(schema, customer_id="c-1"), _row(schema, customer_id="c-1")])


def test_generated_ids_are_uuid7_and_sort_by_time():
    first = new_ids(3)
    time.sleep(0.002)
    later = new_ids(1)
    assert all(len(i) == 36 and i[14] == "7" and i[19] in "89ab" for i in (*first, *later))
    assert len(set(first)) == 3 and max(first) < later[0]


def test_a_sent_timestamp_is_kept_and_a_missing_one_is_the_arrival(schema):
    _, columns, _ = _check(schema, [_row(schema, event_ts="2026-12-03T09:30:00+00:00"), _row(schema)])
    assert columns["event_ts"].astype(str).tolist() == ["2026-12-03T09:30:00.000000", "2026-12-03T10:00:00.000000"]


def test_feedback_is_checked_as_a_label_file_is(schema):
    labels = check_feedback([{"customer_id": "c-1", "churned": 1}, {"customer_id": 2, "churned": 0}], schema)
    assert labels.to_dict("list") == {"customer_id": ["c-1", "2"], "churned": [1, 0]}
    with pytest.raises(InvalidRequest) as refused:
        check_feedback([{"customer_id": "c-1", "churned": "yes"}], schema)
    assert refused.value.body["field"] == "churned" and "0 or 1" in refused.value.body["error"]


def test_a_whole_model_call_is_observed_as_its_rows_one_by_one_would_be(rng):
    values = rng.uniform(size=500).round(1)  # many on the bucket bounds themselves
    one_by_one, at_once = (Histogram("score", "s", buckets=(0.1, 0.5, 1.0), registry=CollectorRegistry()) for _ in range(2))
    for v in values:
        one_by_one.observe(v)
    _observe_all(at_once, values)
    assert [s.value for s in one_by_one.collect()[0].samples] == pytest.approx([s.value for s in at_once.collect()[0].samples])


def test_a_newly_served_version_is_scraped_at_zero_before_its_first_request():
    # a series born with its first requests has no earlier sample, so Prometheus's rate() sees nothing
    metrics = ServingMetrics("loans")
    metrics.serving("3", ("0", "1"), scores=True)
    text = metrics.exposition().decode()
    for series in ('driftloop_request_duration_seconds_count{model="loans",route="predict",version="3"} 0.0',
                   'driftloop_requests_total{model="loans",route="invocations",status="error"} 0.0',
                   'driftloop_predicted_class_total{class="1",model="loans",version="3"} 0.0',
                   'driftloop_predicted_score_count{model="loans",version="3"} 0.0'):
        assert series in text


def test_a_multiclass_or_regression_answer_names_its_output_and_a_failed_row_says_so():
    from driftloop.config import SchemaConfig
    from driftloop.serving import Answers, answer_rows, mlflow_predictions

    base = dict(id_column="id", timestamp_column="ts", numeric=("x",), categorical=())
    three = SchemaConfig(target="kind", task="multiclass_classification", classes=("a", "b", "c"), **base)
    value = SchemaConfig(target="spend", task="regression", **base)
    ids = ["r1", "r2"]
    classes = pd.DataFrame({"probability.a": [0.7, np.nan], "probability.b": [0.2, np.nan], "probability.c": [0.1, np.nan],
                            "prediction": pd.array(["a", None], dtype="str"), "scored": [True, False]})
    spends = pd.DataFrame({"prediction": [12.5, np.nan], "scored": [True, False]})

    classes, spends = Answers.of("4", classes), Answers.of("4", spends)

    assert answer_rows(ids, classes, three) == [
        {"id": "r1", "prediction": "a", "probabilities": {"a": 0.7, "b": 0.2, "c": 0.1}, "model_version": "4"},
        {"id": "r2", "error": "the model could not score this row", "model_version": "4"}]
    assert answer_rows(ids, spends, value)[0] == {"id": "r1", "prediction": 12.5, "model_version": "4"}
    assert mlflow_predictions(classes) == ["a", None] and mlflow_predictions(spends) == [12.5, None]
    assert classes.rows(1, 2).scored == [False] and spends.rows(0, 1).values == {"prediction": [12.5]}


def test_a_binary_answer_is_plain_json_values_with_the_failed_row_empty():
    from driftloop.serving import Answers

    outputs = pd.DataFrame({"probability": [0.9, np.nan, 0.2], "prediction": pd.array([1, pd.NA, 0], dtype="Int64"),
                            "scored": [True, False, True]})
    answers = Answers.of("7", outputs)

    assert answers.values == {"probability": [0.9, None, 0.2], "prediction": [1, None, 0]}
    assert [type(v) for v in answers.values["prediction"]] == [int, type(None), int] and answers.failed == 1
