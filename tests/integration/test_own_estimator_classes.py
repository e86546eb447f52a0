"""A team's own estimator class, defined beside the config: registered only once it loads in a new
process, and then loaded by every later process (as a monitor run on a worker would)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from driftloop import training
from driftloop.config import SchemaConfig, TrainingConfig
from driftloop.errors import ConfigError, RegistryError
from driftloop.registry import CHAMPION, Registry

SCHEMA = SchemaConfig(id_column="id", timestamp_column="ts", target="y", numeric=("a", "b"), categorical=("c",))

CLIPPER = '''
import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin


class Clip(BaseEstimator, TransformerMixin):
    """The team's own step: numbers clipped to the range seen in training."""

    def fit(self, X, y=None):
        X = np.asarray(X, dtype=float)
        self.low_, self.high_ = X.min(axis=0), X.max(axis=0)
        return self

    def transform(self, X):
        return np.clip(np.asarray(X, dtype=float), self.low_, self.high_)
'''

PIPELINE = '''
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from {module} import Clip


def make_pipeline(numeric=(), categorical=()):
    encode = ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore"), list(categorical)),
                                ("num", Clip(), list(numeric))])
    return Pipeline([("encode", encode), ("model", LogisticRegression(max_iter=500))])


def broken(numeric=(), categorical=()):
    class Fails(LogisticRegression):
        def fit(self, X, y):
            raise ValueError("the team's code has a bug")
    return Fails()
'''


def _frame(n: int = 800) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"id": np.arange(n).astype(str), "ts": pd.Timestamp("2026-02-01"),
                          "a": rng.normal(size=n), "b": rng.normal(size=n), "c": rng.choice(["u", "v"], n)})
    return frame.assign(y=(frame["a"] + rng.normal(0, 0.5, n) > 0).astype(int))


def _register(cfg, training_cfg: TrainingConfig):
    frame = _frame()
    candidate = training.train_candidate(frame.iloc[:600], frame.iloc[600:], "ts", SCHEMA, training_cfg, cfg.drift, 0.5)
    return Registry(cfg.registry).register(
        model=candidate.model, input_example=candidate.input_example, profile=candidate.profile, params={}, metrics={},
        artifacts={}, run_name="own", tags={}, description="own", alias=CHAMPION, why="test", code_path=training_cfg.code_path)


def test_a_class_beside_the_config_loads_in_every_new_process(cfg, config_path, tmp_path):
    (tmp_path / "clipping.py").write_text(CLIPPER)
    (tmp_path / "team_model.py").write_text(PIPELINE.format(module="clipping"))
    own = TrainingConfig(estimator="team_model:make_pipeline", estimator_path=tmp_path, min_train_rows=10)
    version = _register(cfg, own).version
    loads = textwrap.dedent(f"""
        from pathlib import Path
        from driftloop.registry import Registry
        from driftloop.config import load_config
        cfg = load_config({str(config_path)!r})
        model = Registry(cfg.registry).load("champion", Path({str(tmp_path)!r})).model
        print(type(model.named_steps["encode"].named_transformers_["num"]).__module__)
    """)
    found = subprocess.run([sys.executable, "-P", "-c", loads], capture_output=True, text=True, cwd="/")
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip() == "clipping" and version == "1"


def test_a_class_importable_only_in_the_training_process_is_never_registered(cfg, tmp_path, monkeypatch):
    hidden = tmp_path / "only-here"
    hidden.mkdir()
    (hidden / "hand_imported.py").write_text(CLIPPER)
    monkeypatch.syspath_prepend(str(hidden))  # as a notebook that put it on its own path
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "team_model2.py").write_text(PIPELINE.format(module="hand_imported"))
    own = TrainingConfig(estimator="team_model2:make_pipeline", estimator_path=folder, min_train_rows=10)
    with pytest.raises(RegistryError) as refused:
        _register(cfg, own)
    message = str(refused.value)
    assert "does not load in a new process (ModuleNotFoundError: No module named 'hand_imported')" in message
    assert "training.estimator_path" in message and "\n" not in message
    assert Registry(cfg.registry).versions() == []


def test_an_own_estimator_that_raises_is_one_line_naming_the_setting(tmp_path):
    (tmp_path / "clipping3.py").write_text(CLIPPER)
    (tmp_path / "team_model3.py").write_text(PIPELINE.format(module="clipping3"))
    own = TrainingConfig(estimator="team_model3:broken", estimator_path=tmp_path, min_train_rows=10)
    with pytest.raises(ConfigError, match=r"^training.estimator 'team_model3:broken' raised ValueError: the team's code has a bug; fix"):
        training.fit(_frame(), SCHEMA, own)
