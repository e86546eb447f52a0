"""`make bench-window`: what reading the matured window costs as the prediction log grows.

Writes ``--days`` daily partitions of the demo's customers (``--rows`` a day, 2,000 by default,
every column the monitor logs) and a label file per day arriving two days later, then times the
reads a monitor run makes: the matured window (the newest ``evaluation.window_batches`` labelled
batches, walking back from today), the same rows from a read of the whole history (what
the window cost before it walked back), the whole-history reads label coverage made before it
was bounded, and what label coverage reads now (the newest ``2 x label_deadline_batches``
batches' ids matched to their labels). Seconds are best of ``--repeat``; peak memory is what
tracemalloc saw during one read (numpy and pandas; Arrow's own buffers are not traced), peak
RSS the process's high-water mark during it.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from bench.drift_bench import best_seconds, peak_mb, table
from driftloop import data, demo, stages
from driftloop.config import Config, load_config

ROOT = Path(__file__).resolve().parents[1]
START = date(2025, 1, 1)


def write_history(cfg: Config, days: int, rows: int, rng: np.random.Generator) -> date:
    cfg.data.labels.mkdir(parents=True, exist_ok=True)
    for i in range(days):
        day = START + timedelta(days=i)
        frame = demo.customers(rng, rows, pd.Timestamp(day.isoformat(), tz="UTC"), 1, shifted=False, id_offset=i * 1_000_000)
        scored = frame.assign(probability=rng.random(rows), prediction=1, scored=True, model_version="1")
        data.write_predictions(cfg.data, day.isoformat(), scored)
        labels = pd.DataFrame({demo.ID: frame[demo.ID], demo.TARGET: rng.integers(0, 2, rows)})
        labels.to_parquet(cfg.data.labels / f"{(day + timedelta(days=2)).isoformat()}.parquet", index=False)
    return START + timedelta(days=days - 1)


def run(histories: list[int], repeat: int, rows: int = 2000) -> list[dict]:
    results = []
    for days in histories:
        with tempfile.TemporaryDirectory() as tmp:
            shutil.copy(ROOT / "driftloop.yaml", Path(tmp) / "driftloop.yaml")
            shutil.copytree(ROOT / "expectations", Path(tmp) / "expectations")
            cfg = load_config(Path(tmp) / "driftloop.yaml")
            as_of = write_history(cfg, days, rows, np.random.default_rng(0))
            n = cfg.evaluation.window_batches
            horizon = data.logged_batches(cfg.data)[-2 * cfg.evaluation.label_deadline_batches:]
            reads = {
                f"matured window ({n} batches, walking back)": lambda: data.labelled_batches(cfg.data, cfg.columns, as_of, n_batches=n),
                "same window from the whole history": lambda: data.last_batches(data.labelled_batches(cfg.data, cfg.columns, as_of), n),
                "ids of every logged prediction": lambda: data.read_predictions(
                    cfg.data, data.logged_batches(cfg.data), columns=[cfg.columns.id_column, data.PARTITION]),
                "every label": lambda: data.read_labels(cfg.data, cfg.columns, as_of),
                f"label coverage now ({len(horizon)} batches' ids and labels)": lambda: data.label_arrivals(
                    cfg.data, cfg.columns, horizon, as_of).batch_date,
            }
            for name, read in reads.items():
                stages.reset_peak_rss()
                found = len(read())
                results.append({"days logged": days, "read": name, "seconds": best_seconds(read, repeat),
                                "peak MB": peak_mb(read), "peak RSS MB": round(stages.peak_rss_mb()), "rows": found})
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, nargs="+", default=[30, 365])
    parser.add_argument("--rows", type=int, default=2000, help="predictions a day")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"{args.rows:,} predictions a day, labels 2 days late, best of {args.repeat}")
    print(table(run(args.days, args.repeat, args.rows)))


if __name__ == "__main__":
    main()
