"""`make bench-evaluate`: seconds and peak memory of the per-batch statistics as rows grow.

For each size: scoring a batch with the default model (one call per 250,000-row chunk, and
the 256-row chunks scoring used before, on the smallest size only: it is the slow path), the
matured window's metrics with bootstrap intervals (evaluation.n_bootstrap replicates, two
segment columns), CBPE, and the gate's paired comparison (gate.n_bootstrap replicates).
Peak memory is what tracemalloc saw (numpy reports its buffers to it) during one call: it must
stay flat as rows grow, not grow with rows x replicates. Seconds are best of ``--repeat``.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from bench.drift_bench import best_seconds, peak_mb, table
from driftloop import demo, training
from driftloop.comparison import compare
from driftloop.config import EvaluationConfig, GateConfig, SchemaConfig, TrainingConfig
from driftloop.evaluation import Calibration, estimate_performance, evaluate_window

SCHEMA = SchemaConfig(id_column=demo.ID, timestamp_column=demo.TIMESTAMP, target=demo.TARGET,
                      numeric=demo.NUMERIC, categorical=demo.CATEGORICAL, segments=("region", "plan_tier"))


def run(sizes: list[int], repeat: int) -> list[dict]:
    rng = np.random.default_rng(0)
    reference = demo.customers(rng, 20_000, pd.Timestamp("2026-01-01", tz="UTC"), 10, shifted=False, id_offset=0)
    reference[demo.TARGET] = (rng.random(len(reference)) < demo.churn_probability(reference, concept_drift=False)).astype("int64")
    model = training.fit(reference, SCHEMA, TrainingConfig())
    ev, gate = EvaluationConfig(), GateConfig()
    calibration = Calibration(np.linspace(0, 1, 11), np.linspace(0, 1, 11))
    results = []
    for n in sizes:
        batch = demo.customers(rng, n, pd.Timestamp("2026-02-01", tz="UTC"), 1, shifted=False, id_offset=10**8)
        y = (rng.random(n) < demo.churn_probability(batch, concept_drift=False)).astype("int64")
        probability = training.predict_output(model, batch, SCHEMA)
        other = np.clip(probability + rng.normal(0, 0.05, n), 0, 1)
        segments = {c: batch[c].to_numpy() for c in SCHEMA.segments}
        steps = {
            "score (250k-row chunks)": lambda: training.score(model, batch, SCHEMA, 0.5),
            "evaluate window": lambda: evaluate_window(y, probability, ("d",), {}, ev, segments=segments),
            "estimate (CBPE)": lambda: estimate_performance(probability, calibration, 0.5, "d", ev.n_bootstrap, ev.confidence),
            "gate: paired comparison": lambda: compare(
                y, other, probability, segments, metrics=("roc_auc", "accuracy"), threshold=0.5, n_bootstrap=gate.n_bootstrap,
                confidence=gate.confidence, min_segment_rows=gate.min_segment_rows),
        }
        if n == min(sizes):
            steps["score (256-row chunks, before)"] = lambda: training.score(model, batch, SCHEMA, 0.5, chunk_rows=256)
        for name, step in steps.items():
            results.append({"rows": n, "step": name, "seconds": best_seconds(step, repeat), "peak MB": peak_mb(step)})
            print(table(results[-1:]).splitlines()[-1], flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 500_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    print(table(run(args.sizes, args.repeat)))


if __name__ == "__main__":
    main()
