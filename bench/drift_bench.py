"""`make bench-drift`: the drift engine against a plain per-column scipy.stats loop.

Both run the same tests on the same data: two-sample KS (asymptotic p-value) on 20 numeric
columns and chi-square on the category counts of 5 categorical columns, against a reference
as large as the batch. The loop recomputes everything from both frames, as a script calling
scipy would; the engine reuses its reference profile, fitted once (the whole reference is
kept, no subsampling, so the tests are identical) and adds the distances and the
Benjamini-Hochberg correction. Seconds are best of ``--repeat`` runs; peak memory is what
tracemalloc saw allocated during one run, beside the size of the two frames.
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc

import numpy as np
import pandas as pd
from scipy import stats

from driftloop.config import DriftConfig
from driftloop.drift import detect_drift, fit_reference

NUMERIC = tuple(f"x{i:02d}" for i in range(20))
CATEGORICAL = tuple(f"c{i}" for i in range(5))
LEVELS = np.array(["alpha", "beta", "gamma", "delta", "epsilon", "zeta"])


def make_frame(rng: np.random.Generator, n: int, shift: float) -> pd.DataFrame:
    data = {c: rng.normal(shift if i < 3 else 0.0, 1.0, n) for i, c in enumerate(NUMERIC)}
    data |= {c: pd.Categorical(rng.choice(LEVELS, n, p=[0.3, 0.25, 0.2, 0.12, 0.08, 0.05])) for c in CATEGORICAL}
    return pd.DataFrame(data)


def plain_scipy_loop(reference: pd.DataFrame, current: pd.DataFrame) -> list[float]:
    p_values = []
    for column in NUMERIC:
        ref, cur = reference[column].dropna().to_numpy(), current[column].dropna().to_numpy()
        p_values.append(stats.ks_2samp(ref, cur, method="asymp").pvalue)
    for column in CATEGORICAL:
        counts = pd.concat([reference[column].value_counts(), current[column].value_counts()], axis=1).fillna(0).to_numpy().T
        p_values.append(stats.chi2_contingency(counts[:, counts.sum(axis=0) > 0], correction=False)[1])
    return p_values


def best_seconds(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def peak_mb(fn) -> float:
    gc.collect()
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def run(sizes: list[int], repeat: int) -> list[dict]:
    rng = np.random.default_rng(0)
    cfg = DriftConfig(reference_sample=max(sizes))
    rows = []
    for n in sizes:
        reference, current = make_frame(rng, n, 0.0), make_frame(rng, n, 0.05)
        frames_mb = (reference.memory_usage(deep=True).sum() + current.memory_usage(deep=True).sum()) / 2**20
        started = time.perf_counter()
        profile = fit_reference(reference, NUMERIC, CATEGORICAL, cfg)
        fit_seconds = time.perf_counter() - started
        engine = lambda: detect_drift(profile, current, NUMERIC + CATEGORICAL, cfg)  # noqa: E731
        loop = lambda: plain_scipy_loop(reference, current)  # noqa: E731
        same = np.allclose([c.p_value for c in engine().columns], loop(), rtol=1e-6, atol=1e-12)
        engine_s, loop_s = best_seconds(engine, repeat), best_seconds(loop, repeat)
        engine_mb, loop_mb = peak_mb(engine), peak_mb(loop)
        rows.append({"rows": n, "fit (once) s": fit_seconds, "engine s": engine_s, "scipy loop s": loop_s,
                     "ratio": engine_s / loop_s, "engine peak MB": engine_mb, "loop peak MB": loop_mb,
                     "frames MB": frames_mb, "engine peak / frames": engine_mb / frames_mb, "same p-values": same})
    return rows


def table(rows: list[dict]) -> str:
    header = list(rows[0])
    fmt = lambda v: f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else (f"{v:.3f}" if isinstance(v, float) else str(v))  # noqa: E731
    cells = [[fmt(r[h]) for h in header] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += ["| " + " | ".join(c.rjust(w) for c, w in zip(row, widths)) + " |" for row in cells]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"25 columns (20 numeric, 5 categorical), reference as large as the batch, best of {args.repeat}")
    print(table(run(args.sizes, args.repeat)))


if __name__ == "__main__":
    main()
