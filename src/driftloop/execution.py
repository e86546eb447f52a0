"""A batch's per-partition work, scoring and the drift summaries, in process or on a Dask cluster.

One code path: the batch is cut into row partitions, each is scored and summarised by
``score_partition``, and the parts merge into one ``ScoredBatch``. In process (the default) the
batch is one partition; with ``execution.dask_address`` set, partitions of
``execution.partition_rows`` run on the cluster's workers (``driftloop.cluster``). The drift
summaries merge value for value (``drift.DriftSummary.merge``), so the verdicts and figures are
the same either way.

Validation stays with the flow: a GX suite checks the whole batch (uniqueness, row counts, means
span partitions) and GX Core validates pandas, Spark or SQL, not Dask.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import pandas as pd

from driftloop import drift, training
from driftloop.config import ExecutionConfig, SchemaConfig

# run(fn, parts, **shared) -> [fn(part, **shared) for part in parts], wherever it runs them
Runner = Callable[..., list]


def in_process(fn: Callable, parts: list, **shared) -> list:
    return [fn(part, **shared) for part in parts]


@dataclass(frozen=True)
class ScoredBatch:
    outputs: pd.DataFrame  # the model's outputs and `scored`, a row per batch row in its order (the log adds the features)
    seconds: float  # model seconds, summed over the partitions
    model_calls: int
    drift: drift.DriftSummary  # the features and the model's outputs, merged over the partitions
    partitions: int
    where: str  # "in process", or the scheduler's address


def score_partition(part: pd.DataFrame, model, schema: SchemaConfig, threshold: float, profile: drift.ReferenceProfile,
                    columns: tuple[str, ...]) -> tuple[training.Scoring, drift.DriftSummary]:
    """The outputs of one partition (not its features: those stay where they are) and its drift summary."""
    found = training.score_outputs(model, part, schema, threshold)
    summary = drift.summarise(profile, part.assign(**{c: found.frame[c].array for c in found.frame.columns}), columns)
    return found, summary


def runner(cfg: ExecutionConfig) -> tuple[Runner, int | None, str]:
    """How to run partitions under ``cfg``, their size (None: the whole batch is one) and where."""
    if not cfg.dask_address:
        return in_process, None, "in process"
    from driftloop import cluster  # imports dask: only for those who use it

    return cluster.runner(cfg.dask_address, cfg.connect_timeout_seconds), cfg.partition_rows, cfg.dask_address


def connect(cfg: ExecutionConfig) -> str:
    """Reach the cluster ``cfg`` names before any work is done (a run that cannot reach it fails
    before it touches the batch); returns where partitions will run."""
    if cfg.dask_address:
        from driftloop import cluster

        cluster.client(cfg.dask_address, cfg.connect_timeout_seconds)
    return cfg.dask_address or "in process"


def score_batch(model, frame: pd.DataFrame, schema: SchemaConfig, threshold: float, profile: drift.ReferenceProfile,
                columns: tuple[str, ...], cfg: ExecutionConfig, run: Runner | None = None) -> ScoredBatch:
    """Score ``frame`` and summarise ``columns`` (features and outputs) for the drift tests, in partitions.
    ``run`` replaces the runner ``cfg`` names, cutting partitions of ``cfg.partition_rows`` all the same."""
    run, rows, where = runner(cfg) if run is None else (run, cfg.partition_rows, "in process")
    rows = rows or max(len(frame), 1)
    features = frame[list(schema.features)]  # all a partition needs: ids, timestamps and passthrough stay here
    parts = [features.iloc[start:start + rows] for start in range(0, max(len(frame), 1), rows)]
    found = run(score_partition, parts, model=model, schema=schema, threshold=threshold, profile=profile, columns=columns)
    outputs = pd.concat([scoring.frame for scoring, _ in found], ignore_index=True) if len(found) > 1 else found[0][0].frame
    return ScoredBatch(
        outputs=outputs,
        seconds=sum(scoring.seconds for scoring, _ in found),
        model_calls=sum(scoring.model_calls for scoring, _ in found),
        drift=drift.DriftSummary.merge([summary for _, summary in found]),
        partitions=len(parts),
        where=where,
    )
