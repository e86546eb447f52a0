"""A batch scored and summarised in partitions gets the verdicts and figures it gets in one piece."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from driftloop import data, drift, execution, training
from driftloop.config import ExecutionConfig
from driftloop.errors import ClusterUnavailable


def _columns(cfg, candidate) -> tuple[str, ...]:
    return (*cfg.columns.features, *candidate.profile.known((training.PROBABILITY, training.PREDICTION)))


def test_a_batch_cut_in_partitions_gets_the_drift_verdicts_and_log_of_one_piece(demo_project, candidate):
    cfg, plan = demo_project
    shifted = next(d for d in plan.days if d.day == cfg.demo.covariate_shift_batch)
    frame = data.read_batch(cfg.data, shifted.batch_id)
    frame.loc[frame.index[::7], cfg.columns.numeric[0]] = np.nan  # nulls fall in several partitions
    columns = _columns(cfg, candidate)
    score = lambda cut, run=None: execution.score_batch(  # noqa: E731
        candidate.model, frame, cfg.columns, 0.5, candidate.profile, columns, cut, run=run)

    whole = score(ExecutionConfig())
    parts = score(ExecutionConfig(partition_rows=170), run=execution.in_process)

    assert (whole.partitions, parts.partitions) == (1, -(-len(frame) // 170))
    pd.testing.assert_frame_equal(parts.outputs, whole.outputs)
    one, cut = (drift.test_summary(candidate.profile, s.drift, columns, cfg.drift) for s in (whole, parts))
    assert cut == one  # every statistic, p-value, distance and verdict, to the last bit
    assert one.drifted_columns, "the covariate-shift day must drift, or this compares nothing"
    assert cut == drift.detect_drift(candidate.profile, training.log_rows(frame, whole.outputs, cfg.columns), columns, cfg.drift)
    assert parts.model_calls == parts.partitions


def test_merged_summaries_hold_every_value_and_category_of_the_parts():
    a = drift.DriftSummary({"x": np.array([1.0, 3.0])}, {"c": pd.Series({"a": 2, "b": 1})})
    b = drift.DriftSummary({"x": np.array([0.5, 2.0, 3.0])}, {"c": pd.Series({"b": 4, "z": 1})})
    merged = drift.DriftSummary.merge([a, b])
    assert merged.numeric["x"].tolist() == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert merged.categorical["c"].sort_index().to_dict() == {"a": 2, "b": 5, "z": 1}


def test_an_unreachable_scheduler_is_one_line_naming_the_address_and_the_fix(demo_project, candidate):
    cfg, _ = demo_project
    frame = data.read_batch(cfg.data, data.incoming_batches(cfg.data)[0])
    dead = ExecutionConfig(dask_address="tcp://127.0.0.1:9", connect_timeout_seconds=1)
    with pytest.raises(ClusterUnavailable) as raised:
        execution.score_batch(candidate.model, frame, cfg.columns, 0.5, candidate.profile, _columns(cfg, candidate), dead)
    message = str(raised.value)
    assert "\n" not in message and "tcp://127.0.0.1:9" in message and "DRIFTLOOP_DASK_ADDRESS" in message
