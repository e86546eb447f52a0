"""Build, fit and evaluate the scikit-learn pipeline."""

from __future__ import annotations

import hashlib
import importlib
import inspect
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.inspection import permutation_importance
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder

from driftloop.comparison import METRIC_DIRECTION
from driftloop.config import PREDICTION, PROBABILITY, TASK_METRICS, DriftConfig, SchemaConfig, TrainingConfig
from driftloop.drift import ReferenceProfile, fit_reference
from driftloop.errors import ConfigError, DataError, DriftloopError
from driftloop.evaluation import fit_calibration, segment_metrics, task_metric, task_metrics

# A binary classifier logs PROBABILITY and PREDICTION; a multiclass one logs PREDICTION (the class's name)
# and one ``probability.<class>`` per class; a regressor logs only PREDICTION, its predicted value
# (both names are driftloop.config's, where no batch column may take them).


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


@contextmanager
def own_estimator_errors(cfg: TrainingConfig) -> Iterator[None]:
    """An own estimator that raises while it is fitted or scored is the user's to fix: one line that
    names ``training.estimator``, the exception kept as the cause for whoever debugs it."""
    try:
        yield
    except DriftloopError:
        raise
    except Exception as exc:
        if cfg.estimator is None:
            raise  # the default model failing is driftloop's bug: keep the traceback
        first = (str(exc).splitlines() or [""])[0][:300]
        raise ConfigError(f"training.estimator {cfg.estimator!r} raised {type(exc).__name__}: {first}; fix the estimator "
                          f"(in {cfg.estimator_path}) or training.estimator_params") from exc


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
    target = frame[schema.target].astype({"regression": "float64", "multiclass_classification": "str"}.get(schema.task, "int64"))
    model = build_pipeline(schema, cfg)
    with own_estimator_errors(cfg):
        return model.fit(frame[list(schema.features)], target)


def output_columns(schema: SchemaConfig) -> list[str]:
    """The logged columns that metrics are computed on: the positive class's probability, each class's
    (``probability.<class>``), or a regressor's value."""
    if schema.task == "multiclass_classification":
        return [f"{PROBABILITY}.{c}" for c in schema.classes]
    return [PREDICTION if schema.task == "regression" else PROBABILITY]


def logged_output(frame: pd.DataFrame, schema: SchemaConfig) -> np.ndarray:
    """What ``predict_output`` returned, read back from logged rows: rows, or rows x classes (multiclass)."""
    columns = output_columns(schema)
    output = frame[columns].to_numpy(dtype="float64")
    return output if schema.task == "multiclass_classification" else output[:, 0]


def truth(frame: pd.DataFrame, schema: SchemaConfig) -> np.ndarray:
    """The target as metrics take it: 0/1, a regressor's value, or the index of the class in ``columns.classes``."""
    if schema.task == "multiclass_classification":
        return pd.Index(schema.classes).get_indexer(frame[schema.target].astype("str"))
    return frame[schema.target].to_numpy()


def predict_output(model: Pipeline, frame: pd.DataFrame, schema: SchemaConfig) -> np.ndarray:
    """The positive class's probability, every class's (rows x ``columns.classes``: a class the model
    never saw in training gets 0), or a regressor's predicted value."""
    features = frame[list(schema.features)]
    if schema.task == "regression":
        return model.predict(features)
    probability = model.predict_proba(features)
    if schema.task == "binary_classification":
        return probability[:, 1]
    aligned = np.zeros((len(frame), len(schema.classes)))
    aligned[:, pd.Index(schema.classes).get_indexer(np.asarray(model.classes_).astype(str))] = probability
    return aligned


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


# Rows handed to the model per call: large enough that per-call overhead vanishes (a 256-row chunk
# cost 110x one call on 500k rows), small enough to bound the model's own temporaries.
SCORE_CHUNK_ROWS = 250_000


@dataclass(frozen=True)
class Scoring:
    """A scored batch: the prediction log's rows, and what scoring cost."""

    frame: pd.DataFrame  # the model's output and ``scored`` (with the batch's log columns, from ``score``)
    seconds: float  # wall time of the model calls
    model_calls: int


def _predict_into(model, frame: pd.DataFrame, schema: SchemaConfig, output: np.ndarray, start: int, stop: int) -> int:
    """Score rows ``start:stop`` into ``output``; a range the model refuses is halved until each row it
    cannot score is alone (and left NaN), so one bad row costs about two passes, not its chunk. Returns the calls made."""
    try:
        output[start:stop] = predict_output(model, frame.iloc[start:stop], schema)
        return 1
    except (ValueError, TypeError):  # what scikit-learn raises for inputs it cannot use
        if stop - start == 1:
            return 1
        middle = (start + stop) // 2
        return 1 + _predict_into(model, frame, schema, output, start, middle) + _predict_into(model, frame, schema, output, middle, stop)


def score_outputs(model: Pipeline, frame: pd.DataFrame, schema: SchemaConfig, threshold: float,
                  chunk_rows: int = SCORE_CHUNK_ROWS) -> Scoring:
    """The model's output for each row of ``frame`` (probability and predicted class, every class's
    probability and the picked class, or a regressor's value) and whether the row scored, on the
    frame's index: no feature is copied, so a partition scored elsewhere sends back only these.

    A batch is scored in as few model calls as ``chunk_rows`` allows; a row the model cannot score
    keeps no output and ``scored=False``: counted, never dropped.
    """
    multiclass = schema.task == "multiclass_classification"
    output = np.full((len(frame), len(schema.classes)) if multiclass else len(frame), np.nan)
    began = time.perf_counter()
    calls = sum(_predict_into(model, frame, schema, output, start, min(start + chunk_rows, len(frame)))
                for start in range(0, len(frame), chunk_rows))
    seconds = time.perf_counter() - began
    scored = ~np.isnan(output) if not multiclass else ~np.isnan(output).any(axis=1)
    if schema.task == "regression":
        outputs = {PREDICTION: output}
    elif multiclass:
        names = pd.Series(np.asarray(schema.classes, dtype=object)[np.where(scored, np.nan_to_num(output).argmax(axis=1), 0)],
                          dtype="str").where(scored)
        outputs = dict(zip(output_columns(schema), output.T)) | {PREDICTION: names.array}
    else:
        prediction = pd.array(np.where(scored, output >= threshold, 0).astype("int64"), dtype="Int64")
        prediction[~scored] = pd.NA
        outputs = {PROBABILITY: output, PREDICTION: prediction}
    return Scoring(pd.DataFrame(outputs | {"scored": scored}, index=frame.index), seconds, calls)


def log_rows(frame: pd.DataFrame, outputs: pd.DataFrame, schema: SchemaConfig) -> pd.DataFrame:
    """The prediction log's rows: id, timestamp, features and passthrough columns, with the outputs."""
    columns = [schema.id_column, schema.timestamp_column, *schema.features, *(c for c in schema.passthrough if c in frame)]
    return frame[columns].assign(**{c: outputs[c].array for c in outputs.columns})  # by position, whatever the index


def score(model: Pipeline, frame: pd.DataFrame, schema: SchemaConfig, threshold: float, chunk_rows: int = SCORE_CHUNK_ROWS) -> Scoring:
    """The batch's log rows with the model's output (``score_outputs``), and what scoring cost."""
    found = score_outputs(model, frame, schema, threshold, chunk_rows)
    return Scoring(log_rows(frame, found.frame, schema), found.seconds, found.model_calls)


@dataclass(frozen=True)
class Candidate:
    """A fitted model with what it earned on a holdout it never saw, and its drift reference."""

    model: Pipeline
    holdout_metrics: dict[str, float]
    holdout_output: np.ndarray  # as predict_output returns it
    profile: ReferenceProfile
    train_window: TrainingWindow
    holdout_window: TrainingWindow
    input_example: pd.DataFrame


def permutation_importances(model: Pipeline, holdout: pd.DataFrame, schema: SchemaConfig, threshold: float, seed: int,
                            max_rows: int = 5_000, repeats: int = 3) -> dict[str, float]:
    """Per feature, how much the headline metric (``TASK_METRICS``' first) worsens on the holdout when
    that feature's values are shuffled: what root-cause analysis weighs each drifted feature by."""
    headline = TASK_METRICS[schema.task][0]
    sign = 1.0 if METRIC_DIRECTION[headline] else -1.0  # an importance is positive when shuffling hurts

    def quality(estimator, frame: pd.DataFrame, y: np.ndarray) -> float:
        return sign * task_metric(schema.task, headline, y, predict_output(estimator, frame, schema), threshold, schema.classes)

    found = permutation_importance(model, holdout[list(schema.features)], truth(holdout, schema), scoring=quality,
                                   n_repeats=repeats, random_state=seed, max_samples=min(len(holdout), max_rows))
    return {column: float(v) for column, v in zip(schema.features, found.importances_mean)}


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
    with own_estimator_errors(cfg):
        output = predict_output(model, holdout, schema)
    y = truth(holdout, schema)
    metrics = task_metrics(schema.task, y, output, threshold, schema.classes)
    # Per-segment holdout metrics are the reference each segment is later judged against.
    metrics |= segment_metrics(schema.task, y, output, {c: holdout[c].to_numpy() for c in schema.segments}, threshold, min_rows=100)
    # Predictions on unseen rows are what production predictions look like; on training rows they are overfit.
    if schema.task == "regression":
        features = fit_reference(train, (*schema.numeric, schema.target), schema.categorical, drift_cfg, seed=cfg.random_state)
        profile = features.merge(fit_reference(pd.DataFrame({PREDICTION: output}), (PREDICTION,), (), drift_cfg))
    elif schema.task == "multiclass_classification":
        # Class shares of predictions and target drift like any categorical column; no calibration, so no CBPE.
        features = fit_reference(train, schema.numeric, (*schema.categorical, schema.target), drift_cfg, seed=cfg.random_state)
        predicted = pd.DataFrame({PREDICTION: np.asarray(schema.classes, dtype=object)[output.argmax(axis=1)]})
        profile = features.merge(fit_reference(predicted, (), (PREDICTION,), drift_cfg))
    else:
        features = fit_reference(train, schema.numeric, (*schema.categorical, schema.target), drift_cfg, seed=cfg.random_state)
        scored = pd.DataFrame({PROBABILITY: output, PREDICTION: (output >= threshold).astype("int64")})
        calibration = fit_calibration(y, output)  # for estimated performance while labels are missing
        profile = replace(features.merge(fit_reference(scored, (PROBABILITY,), (PREDICTION,), drift_cfg)),
                          calibration=(calibration.x, calibration.y))
    with own_estimator_errors(cfg):
        profile = replace(profile, importance=permutation_importances(model, holdout, schema, threshold, cfg.random_state))
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
