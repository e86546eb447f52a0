"""Fitting the default or a team's own estimator; scoring keeps every row (what the model cannot score is marked)."""

import re

import numpy as np
import pandas as pd
import pytest

from driftloop import training
from driftloop.config import SchemaConfig, TrainingConfig
from driftloop.errors import ConfigError

SCHEMA = SchemaConfig(id_column="id", timestamp_column="ts", target="y", numeric=("a", "b"), categorical=("c",))


def _fitted(rng, n=1000):
    frame = pd.DataFrame({"id": np.arange(n).astype(str), "ts": pd.Timestamp("2026-02-01"),
                          "a": rng.normal(size=n), "b": rng.normal(size=n), "c": rng.choice(["u", "v"], n)})
    frame["y"] = (frame["a"] + rng.normal(0, 0.5, n) > 0).astype(int)
    return frame, training.fit(frame, SCHEMA, TrainingConfig(min_train_rows=10, max_iter=20))


def test_only_the_rows_the_model_cannot_score_are_marked_and_every_row_is_kept(rng):
    frame, model = _fitted(rng)
    broken = frame.astype({"b": object})
    broken.loc[[300, 301, 777], "b"] = "not a number"
    scoring = training.score(model, broken, SCHEMA, threshold=0.5)
    scored = scoring.frame
    assert len(scored) == len(frame) and sorted(scored.index[~scored["scored"]]) == [300, 301, 777]
    assert scored.loc[[300, 777], "probability"].isna().all() and scored.loc[[300, 777], "prediction"].isna().all()
    good = scored["scored"]
    assert scored.loc[good, "probability"].to_numpy() == pytest.approx(model.predict_proba(frame.loc[good, ["a", "b", "c"]])[:, 1])
    # halving around three bad rows: a few dozen calls, not one per row
    assert 3 < scoring.model_calls < 60 and scoring.seconds > 0


def test_a_clean_batch_is_scored_in_one_model_call_per_chunk(rng):
    frame, model = _fitted(rng)
    assert training.score(model, frame, SCHEMA, threshold=0.5).model_calls == 1
    assert training.score(model, frame, SCHEMA, threshold=0.5, chunk_rows=300).model_calls == 4


USER_MODULE = '''
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler


def make_pipeline(C=1.0, numeric=(), categorical=()):
    encode = ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore"), list(categorical)),
                                ("num", StandardScaler(), list(numeric))])
    return Pipeline([("encode", encode), ("model", LogisticRegression(C=C, max_iter=500))])


def not_a_model():
    return "nope"
'''


def _frame(rng, n=800):
    frame = pd.DataFrame({"id": np.arange(n).astype(str), "ts": pd.Timestamp("2026-02-01"),
                          "a": rng.normal(size=n), "b": rng.normal(size=n), "c": rng.choice(["u", "v"], n)})
    return frame.assign(y=(frame["a"] + rng.normal(0, 0.5, n) > 0).astype(int))


def test_a_teams_own_estimator_is_imported_from_next_to_the_config_and_given_its_columns(rng, tmp_path):
    (tmp_path / "teammodels.py").write_text(USER_MODULE)
    cfg = TrainingConfig(min_train_rows=10, estimator="teammodels:make_pipeline", estimator_params={"C": 0.5},
                         estimator_path=tmp_path)
    model = training.fit(_frame(rng), SCHEMA, cfg)
    assert type(model.named_steps["model"]).__name__ == "LogisticRegression" and model.named_steps["model"].C == 0.5
    scored = training.score(model, _frame(rng), SCHEMA, threshold=0.5).frame
    assert scored["scored"].all() and scored["probability"].between(0, 1).all()
    assert training.estimator_fingerprint(cfg) != training.estimator_fingerprint(TrainingConfig())


@pytest.mark.parametrize(("estimator", "message"), [
    ("nosuchmodule:make", "cannot import nosuchmodule (ModuleNotFoundError"),
    ("teammodels:missing", "teammodels has no function missing"),
    ("teammodels:not_a_model", "returned a str without fit, predict_proba"),
])
def test_an_estimator_that_cannot_be_used_is_one_config_line(rng, tmp_path, estimator, message):
    (tmp_path / "teammodels.py").write_text(USER_MODULE)
    cfg = TrainingConfig(min_train_rows=10, estimator=estimator, estimator_path=tmp_path)
    with pytest.raises(ConfigError, match=re.escape(message)) as caught:
        training.fit(_frame(rng), SCHEMA, cfg)
    assert "\n" not in str(caught.value)
