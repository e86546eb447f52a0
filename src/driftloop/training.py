"""Build, fit and evaluate the scikit-learn pipeline."""

from __future__ import annotations

import hashlib
import importlib
import inspect
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder

from driftloop.config import DriftConfig, SchemaConfig, TrainingConfig
from driftloop.drift import ReferenceProfile, fit_reference
from driftloop.errors import ConfigError, DataError
from driftloop.evaluation import fit_calibration, segment_metrics, task_metrics

# A classifier logs both; a regressor logs only PREDICTION, its predicted value.
PROBABILITY, PREDICTION = "probability", "prediction"


def _estimator_function(cfg: TrainingConfig):
    """The user's ``module:function``, imported from ``estimator_path`` (or an installed package)."""
    module_name, _, name = cfg.estimator.partition(":")
    folder = str(cfg.estimator_path)
    sys.path.insert(0, folder)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # the user's module: any import error is theirs to fix
        raise ConfigError(f"training.estimator {cfg.estimator!r}: cannot import {module_name} ({type(exc).__name__}: {exc}); "
                          f"put {module_name.replace('.', '/')}.py in {folder} (training.estimator_path) or install it") from None
    finally:
        sys.path.remove(folder)
    function = getattr(module, name, None)
    if not callable(function):
        raise ConfigError(f"training.estimator {cfg.estimator!r}: {module_name} has no function {name}; name one that returns an estimator")
    return function


def estimator_fingerprint(cfg: TrainingConfig) -> str:
    """A hash of the estimator module's source: part of the training cache key, so an edited model is refit."""
    if cfg.estimator is None:
        return "default"
    source = inspect.getsourcefile(inspect.getmodule(_estimator_function(cfg))) or ""
    return hashlib.sha256(Path(source).read_bytes()).hexdigest()[:16] if source else "unknown"


def user_estimator(schema: SchemaConfig, cfg: TrainingConfig):
    """``training.estimator`` called with ``estimator_params`` (and the column lists, if it takes
    ``numeric`` / ``categorical``): an unfitted scikit-learn estimator or pipeline that takes the raw
    feature columns."""
    function = _estimator_function(cfg)
    accepted = inspect.signature(function).parameters
    columns = {k: list(v) for k, v in (("numeric", schema.numeric), ("categorical", schema.categorical)) if k in accepted}
    try:
        model = function(**cfg.estimator_params, **columns)
    except TypeError as exc:
        raise ConfigError(f"training.estimator {cfg.estimator!r} refused training.estimator_params ({exc}); fix the params") from None
    needed = ("fit", "predict") if schema.task == "regression" else ("fit", "predict_proba")
    missing = [m for m in needed if not hasattr(model, m)]
    if missing:
        raise ConfigError(f"training.estimator {cfg.estimator!r} returned a {type(model).__name__} without {', '.join(missing)}; "
                          f"a {schema.task} model needs {' and '.join(needed)}")
    return model


def build_pipeline(schema: SchemaConfig, cfg: TrainingConfig) -> Pipeline:
    if cfg.estimator is not None:
        return user_estimator(schema, cfg)
    encode = ColumnTransformer(
        [
            ("categorical", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1,
                                           encoded_missing_value=-1), list(schema.categorical)),
            ("numeric", "passthrough", list(schema.numeric)),
        ],
        verbose_feature_names_out=False,
    )
    estimator = HistGradientBoostingRegressor if schema.task == "regression" else HistGradientBoostingClassifier
    model = estimator(
        max_iter=cfg.max_iter,
        learning_rate=cfg.learning_rate,
        max_leaf_nodes=cfg.max_leaf_nodes,
        early_stopping=True,
        random_state=cfg.random_state,
    )
    return Pipeline([("encode", encode), ("model", model)])


def fit(frame: pd.DataFrame, schema: SchemaConfig, cfg: TrainingConfig) -> Pipeline:
    if len(frame) < cfg.min_train_rows:
        raise DataError(
            f"only {len(frame)} labelled rows to train on, need training.min_train_rows={cfg.min_train_rows}; "
            "wait for more labels or widen training.window_batches"
        )
    if frame[schema.target].nunique() < 2:
        raise DataError(f"the training window has a single {schema.target} value; widen training.window_batches")
    target = frame[schema.target].astype("float64" if schema.task == "regression" else "int64")
    return build_pipeline(schema, cfg).fit(frame[list(schema.features)], target)


def output_column(schema: SchemaConfig) -> str:
    """The logged column that metrics and drift are computed on: probability, or a regressor's value."""
    return PREDICTION if schema.task == "regression" else PROBABILITY


def predict_output(model: Pipeline, frame: pd.DataFrame, schema: SchemaConfig) -> np.ndarray:
    """The positive class's probability, or a regressor's predicted value."""
    features = frame[list(schema.features)]
    return model.predict(features) if schema.task == "regression" else model.predict_proba(features)[:, 1]


def split_by_time(frame: pd.DataFrame, schema: SchemaConfig, holdout_share: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The latest ``holdout_share`` of rows by timestamp is the holdout: it is never trained on."""
    ordered = frame.sort_values(schema.timestamp_column, kind="stable", ignore_index=True)
    cut = int(round(len(ordered) * (1 - holdout_share)))
    return ordered.iloc[:cut], ordered.iloc[cut:]


def fingerprint(frame: pd.DataFrame) -> str:
    """A content hash of a training set, so a version can be tied to the exact rows it saw."""
    row_hashes = pd.util.hash_pandas_object(frame.reset_index(drop=True), index=False).to_numpy()
    return hashlib.sha256(row_hashes.tobytes()).hexdigest()[:16]


@dataclass(frozen=True)
class TrainingWindow:
    first: str
    last: str
    n_rows: int
    fingerprint: str

    @classmethod
    def of(cls, frame: pd.DataFrame, column: str) -> "TrainingWindow":
        values = frame[column]
        if pd.api.types.is_datetime64_any_dtype(values):
            values = values.dt.date
        values = values.astype(str)
        return cls(values.min(), values.max(), len(frame), fingerprint(frame))


def score(model: Pipeline, frame: pd.DataFrame, schema: SchemaConfig, threshold: float, chunk_rows: int = 256) -> pd.DataFrame:
    """The batch with the model's output (probability and predicted class, or a regressor's value),
    per-row scoring latency and whether it scored.

    Rows are scored in chunks, as requests would arrive; a chunk the model cannot score keeps
    its rows in the log with no output and ``scored=False``: counted, never dropped.
    """
    output = np.full(len(frame), np.nan)
    latency_ms = np.zeros(len(frame))
    for start in range(0, len(frame), chunk_rows):
        chunk = slice(start, start + chunk_rows)
        rows = frame.iloc[chunk]
        began = time.perf_counter()
        try:
            output[chunk] = predict_output(model, rows, schema)
        except (ValueError, TypeError):  # what scikit-learn raises for inputs it cannot use
            pass
        latency_ms[chunk] = (time.perf_counter() - began) * 1000 / len(rows)
    scored = ~np.isnan(output)
    columns = [schema.id_column, schema.timestamp_column, *schema.features, *(c for c in schema.passthrough if c in frame)]
    if schema.task == "regression":
        return frame[columns].assign(**{PREDICTION: output, "latency_ms": latency_ms, "scored": scored})
    prediction = pd.array(np.where(scored, output >= threshold, 0).astype("int64"), dtype="Int64")
    prediction[~scored] = pd.NA
    return frame[columns].assign(**{PROBABILITY: output, PREDICTION: prediction, "latency_ms": latency_ms, "scored": scored})


@dataclass(frozen=True)
class Candidate:
    """A fitted model with what it earned on a holdout it never saw, and its drift reference."""

    model: Pipeline
    holdout_metrics: dict[str, float]
    holdout_output: np.ndarray  # probabilities, or a regressor's values
    profile: ReferenceProfile
    train_window: TrainingWindow
    holdout_window: TrainingWindow
    input_example: pd.DataFrame


def train_candidate(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    window_column: str,
    schema: SchemaConfig,
    cfg: TrainingConfig,
    drift_cfg: DriftConfig,
    threshold: float,
) -> Candidate:
    model = fit(train, schema, cfg)
    output = predict_output(model, holdout, schema)
    y = holdout[schema.target].to_numpy()
    metrics = task_metrics(schema.task, y, output, threshold)
    # Per-segment holdout metrics are the reference each segment is later judged against.
    metrics |= segment_metrics(schema.task, y, output, {c: holdout[c].to_numpy() for c in schema.segments}, threshold, min_rows=100)
    # Predictions on unseen rows are what production predictions look like; on training rows they are overfit.
    if schema.task == "regression":
        features = fit_reference(train, (*schema.numeric, schema.target), schema.categorical, drift_cfg, seed=cfg.random_state)
        profile = features.merge(fit_reference(pd.DataFrame({PREDICTION: output}), (PREDICTION,), (), drift_cfg))
    else:
        features = fit_reference(train, schema.numeric, (*schema.categorical, schema.target), drift_cfg, seed=cfg.random_state)
        scored = pd.DataFrame({PROBABILITY: output, PREDICTION: (output >= threshold).astype("int64")})
        calibration = fit_calibration(y, output)  # for estimated performance while labels are missing
        profile = replace(features.merge(fit_reference(scored, (PROBABILITY,), (PREDICTION,), drift_cfg)),
                          calibration=(calibration.x, calibration.y))
    return Candidate(
        model=model,
        holdout_metrics=metrics,
        holdout_output=output,
        profile=profile,
        train_window=TrainingWindow.of(train, window_column),
        holdout_window=TrainingWindow.of(holdout, window_column),
        # Numeric as float64 so the signature accepts a null where an integer column has one.
        input_example=train[list(schema.features)].head(5).astype({c: "float64" for c in schema.numeric}),
    )
