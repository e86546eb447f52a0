"""Scoring keeps every row: what the model cannot score is marked, not dropped."""

import numpy as np
import pandas as pd

from driftloop import training
from driftloop.config import SchemaConfig, TrainingConfig

SCHEMA = SchemaConfig(id_column="id", timestamp_column="ts", target="y", numeric=("a", "b"), categorical=("c",))


def test_a_chunk_that_cannot_be_scored_is_marked_and_kept(rng):
    n = 1000
    frame = pd.DataFrame({"id": np.arange(n).astype(str), "ts": pd.Timestamp("2026-02-01"),
                          "a": rng.normal(size=n), "b": rng.normal(size=n), "c": rng.choice(["u", "v"], n)})
    frame["y"] = (frame["a"] + rng.normal(0, 0.5, n) > 0).astype(int)
    model = training.fit(frame, SCHEMA, TrainingConfig(min_train_rows=10, max_iter=20))
    broken = frame.astype({"b": object})
    broken.loc[300, "b"] = "not a number"  # lands in the second chunk of 256 rows
    scored = training.score(model, broken, SCHEMA, threshold=0.5, chunk_rows=256)
    assert len(scored) == n
    assert (~scored["scored"]).sum() == 256 and not scored.loc[256:511, "scored"].any()
    assert scored.loc[256:511, "probability"].isna().all() and scored.loc[256:511, "prediction"].isna().all()
    assert scored.loc[:255, "scored"].all() and (scored["latency_ms"] > 0).all()
