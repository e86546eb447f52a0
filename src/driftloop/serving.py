"""`driftloop serve`: the champion answers HTTP requests, and every answer is logged before it is sent.

The only module that imports fastapi and uvicorn. A request's rows are checked against the config's
columns (a missing or mistyped field is a 422 naming it), wait at most ``serve.max_batch_delay_ms``
for the requests arriving with them, and are scored with those in one model call; the call's rows go
to the request log (``requestlog``) in one group commit, and each request is answered once its rows
are on disk. The champion alias is read every ``serve.poll_seconds``: a new version is loaded beside
the one serving and takes over between two model calls, so no request fails and each logged row
names the version that scored it; a server started before the first champion answers 503 until the
alias names one. The server scores, logs and counts; it never decides (the monitor judges a served
period like any batch).

Routes: ``POST /predict`` (a JSON object, or a list of them), ``POST /invocations`` (MLflow's scoring
formats: ``dataframe_split``, ``dataframe_records``, ``inputs``, ``instances``), ``POST /feedback``
(ground truth by id), ``GET /health`` (ready), ``GET /ping`` (alive), ``GET /metrics``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TypeVar

import numpy as np
import orjson
import pandas as pd
from fastapi import FastAPI, Request
from fastapi.responses import Response

from driftloop import requestlog, training
from driftloop.config import PREDICTION, PROBABILITY, Config, SchemaConfig
from driftloop.errors import DataError, DriftloopError
from driftloop.exporter import ServingMetrics
from driftloop.promotion import CHAMPION

log = logging.getLogger("driftloop.serve")

_MISSING = object()
_NUMBER = (int, float)
_WAIT_STEP = 0.0002  # seconds: how finely a batch waits for the requests still being read
T = TypeVar("T")


class InvalidRequest(Exception):
    """A request the server refuses before scoring: ``status`` 422 (or 400, 413), a body naming the field."""

    def __init__(self, message: str, field: str | None = None, expected: str | None = None, rows: list[int] | None = None,
                 status: int = 422):
        super().__init__(message)
        self.status = status
        self.body = {"error": message} | ({"field": field} if field else {}) | ({"expected": expected} if expected else {}) | (
            {"rows": rows} if rows else {})


# --- reading a request ---------------------------------------------------------------------


def _records_to_columns(records: list, names: tuple[str, ...]) -> tuple[dict[str, list], set[str]]:
    if not all(isinstance(r, dict) for r in records):
        raise InvalidRequest("every row must be a JSON object of field: value", expected="an object per row", status=400)
    fields = set().union(*records)
    return {name: [r.get(name, _MISSING) for r in records] for name in names}, fields


def columns_of(body, route: str, names: tuple[str, ...]) -> tuple[dict[str, list], set[str], int]:
    """The request's values per field, the fields it named and its row count, from any accepted shape:
    /predict takes an object (one row) or a list of objects; /invocations takes MLflow's formats."""
    if route == "predict":
        records = [body] if isinstance(body, dict) else body
        if not isinstance(records, list):
            raise InvalidRequest("the body must be a JSON object (one row) or a list of objects", status=400)
        columns, fields = _records_to_columns(records, names)
        return columns, fields, len(records)
    if not isinstance(body, dict):
        raise InvalidRequest("the body must be an object with dataframe_split, dataframe_records, inputs or instances", status=400)
    if "dataframe_split" in body:
        split = body["dataframe_split"]
        if not isinstance(split, dict) or not isinstance(split.get("columns"), list) or not isinstance(split.get("data"), list):
            raise InvalidRequest("dataframe_split needs columns (a list of names) and data (a list of rows)", status=400)
        width = len(split["columns"])
        if not all(isinstance(row, list) and len(row) == width for row in split["data"]):
            raise InvalidRequest(f"every row of dataframe_split.data must be a list of {width} values, one per column", status=400)
        position = {name: i for i, name in enumerate(split["columns"])}
        data = split["data"]
        columns = {n: [row[position[n]] for row in data] if n in position else [_MISSING] * len(data) for n in names}
        return columns, set(position), len(data)
    for key in ("dataframe_records", "inputs", "instances"):
        if key in body:
            value = body[key]
            if isinstance(value, dict):  # columns: {field: [values]}
                lengths = {len(v) if isinstance(v, list) else -1 for v in value.values()}
                if len(lengths) != 1 or -1 in lengths:
                    raise InvalidRequest(f"{key} as columns needs a list of the same length for every field", status=400)
                n = lengths.pop()
                return {name: value.get(name, [_MISSING] * n) for name in names}, set(value), n
            if isinstance(value, list):
                columns, fields = _records_to_columns(value, names)
                return columns, fields, len(value)
            raise InvalidRequest(f"{key} must be a list of rows or an object of columns", status=400)
    raise InvalidRequest("the body names none of dataframe_split, dataframe_records, inputs, instances", status=400)


def _feature(values: list, name: str, fits, kind: str) -> list:
    """A feature's values, each ``fits`` or null; a row without the field or with another type is an InvalidRequest."""
    missing = _rows_where(values, lambda v: v is _MISSING)
    if missing:
        raise InvalidRequest(f"field {name} is missing (rows {missing}); every row needs every feature (null for unknown)",
                             field=name, expected=f"{kind} or null", rows=missing)
    wrong = _rows_where(values, lambda v: v is not None and not fits(v))
    if wrong:
        raise InvalidRequest(f"field {name} should be {kind} but is {values[wrong[0]]!r} (rows {wrong})", field=name,
                             expected=f"{kind} or null", rows=wrong)
    return values


def _rows_where(values: list, bad) -> list[int]:
    return [i for i, v in enumerate(values) if bad(v)][:10]


@dataclass
class Rows:
    """One request's rows, checked: the feature arrays, their ids and timestamps, and when it arrived."""

    n: int
    ids: np.ndarray  # object array of str
    columns: dict[str, np.ndarray]  # features, timestamp and passthrough, batch-contract names
    arrived: float  # time.perf_counter() at arrival
    received_at: np.datetime64  # wall clock at arrival (UTC), for the log and the period
    scored: asyncio.Future | None = field(default=None, repr=False)  # the rows' Answers
    durable: asyncio.Future | None = field(default=None, repr=False)  # the rows on disk (None: not logged)


def check_rows(columns: dict[str, list], fields: set[str], n: int, schema: SchemaConfig, tolerance_days: int,
               now: pd.Timestamp) -> tuple[np.ndarray, dict[str, np.ndarray], bool]:
    """The request's values as typed arrays, or an InvalidRequest naming the field, the rows and what
    was expected. Returns (ids, columns, whether the ids were generated)."""
    known = {schema.id_column, schema.timestamp_column, *schema.features, *schema.passthrough}
    unexpected = sorted(fields - known)
    if unexpected:
        raise InvalidRequest(f"unexpected field(s) {', '.join(unexpected)}; a row holds the features ({', '.join(schema.features)}), "
                             f"optionally {schema.id_column} and {schema.timestamp_column}, and columns.passthrough",
                             field=unexpected[0], expected="a field of the config's columns")
    out: dict[str, np.ndarray] = {}
    for name in schema.numeric:
        values = _feature(columns[name], name, lambda v: type(v) in _NUMBER, "a number")
        out[name] = np.array([np.nan if v is None else v for v in values], dtype="float64")
    for name in schema.categorical:
        out[name] = np.array(_feature(columns[name], name, lambda v: type(v) is str, "a string (a category)"), dtype=object)
    for name in schema.passthrough:
        out[name] = np.array([None if v is _MISSING or v is None else str(v) for v in columns[name]], dtype=object)
    out[schema.timestamp_column] = _timestamps(columns[schema.timestamp_column], schema, tolerance_days, now, n)
    ids, generated = _ids(columns[schema.id_column], schema.id_column, n)
    return ids, out, generated


def _timestamps(values: list, schema: SchemaConfig, tolerance_days: int, now: pd.Timestamp, n: int) -> np.ndarray:
    """The rows' timestamps (naive UTC): as sent, or the arrival time where a row has none."""
    name = schema.timestamp_column
    given = [None if v is _MISSING else v for v in values]
    stamps = np.full(n, now.tz_convert(None).to_datetime64(), dtype="datetime64[us]")
    if all(v is None for v in given):
        return stamps
    text = np.array([type(v) is str for v in given])
    number = np.array([type(v) in _NUMBER for v in given])
    wrong = [i for i, v in enumerate(given) if v is not None and not (text[i] or number[i])][:10]
    if wrong or (number.any() and schema.timestamp_unit is None):
        rows = wrong or [int(r) for r in np.flatnonzero(number)[:10]]
        raise InvalidRequest(f"field {name} is {given[rows[0]]!r} at rows {rows}; send ISO 8601 text"
                             + ("" if wrong else ", or set columns.timestamp_unit for numbers"),
                             field=name, expected="an ISO 8601 timestamp", rows=rows)
    parsed = pd.Series(pd.NaT, index=range(n), dtype="datetime64[us, UTC]")
    if text.any():
        parsed[text] = pd.to_datetime(pd.Series(given, dtype=object)[text], errors="coerce", utc=True, format="mixed")
    if number.any():
        parsed[number] = pd.to_datetime(pd.Series(given, dtype=object)[number].astype("float64"), errors="coerce", utc=True,
                                        unit=schema.timestamp_unit)
    unreadable = (text | number) & parsed.isna().to_numpy()
    if unreadable.any():
        rows = [int(r) for r in np.flatnonzero(unreadable)[:10]]
        raise InvalidRequest(f"field {name} is not a timestamp at rows {rows} (e.g. {given[rows[0]]!r}); send ISO 8601",
                             field=name, expected="an ISO 8601 timestamp", rows=rows)
    far = ((parsed - now).abs() > pd.Timedelta(days=tolerance_days)).to_numpy()
    if far.any():
        rows = [int(r) for r in np.flatnonzero(far)[:10]]
        raise InvalidRequest(f"field {name} is more than {tolerance_days} day(s) from now at rows {rows} (e.g. {given[rows[0]]!r}); "
                             "the row would fall outside its period's batch (data.timestamp_tolerance_days)",
                             field=name, expected=f"a timestamp within {tolerance_days} day(s) of now", rows=rows)
    sent = (text | number)
    stamps[sent] = parsed[sent].dt.tz_convert(None).to_numpy(dtype="datetime64[us]")
    return stamps


def _ids(values: list, name: str, n: int) -> tuple[np.ndarray, bool]:
    if all(v is _MISSING or v is None for v in values):
        return new_ids(n), True
    wrong = _rows_where(values, lambda v: v is _MISSING or v is None or type(v) not in (str, int))
    if wrong:
        raise InvalidRequest(f"field {name} is missing or not a string or integer at rows {wrong}; give every row an id, or none "
                             "(the server then makes them)", field=name, expected="a string or integer id on every row", rows=wrong)
    ids = np.array([str(v) for v in values], dtype=object)
    twice = pd.Series(ids).duplicated(keep=False).to_numpy()
    if twice.any():
        rows = [int(r) for r in np.flatnonzero(twice)[:10]]
        raise InvalidRequest(f"field {name} repeats an id within the request (rows {rows}); each row needs its own",
                             field=name, expected="a different id on every row", rows=rows)
    return ids, False


def new_ids(n: int) -> np.ndarray:
    """Time-ordered ids (UUID version 7: milliseconds since 1970, then random bits), as text."""
    ms = time.time_ns() // 1_000_000
    raw = np.frombuffer(secrets.token_bytes(16 * n), dtype=np.uint8).reshape(n, 16).copy()
    raw[:, :6] = np.frombuffer(ms.to_bytes(6, "big"), dtype=np.uint8)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x70
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    text = raw.tobytes().hex()
    return np.array([f"{text[i:i + 8]}-{text[i + 8:i + 12]}-{text[i + 12:i + 16]}-{text[i + 16:i + 20]}-{text[i + 20:i + 32]}"
                     for i in range(0, 32 * n, 32)], dtype=object)


# --- the champion, followed live ----------------------------------------------------------------


@dataclass(frozen=True)
class ServedModel:
    version: str
    model: object
    since: datetime


class Champion:
    """The version answering requests (None until the alias first names one). ``current`` is replaced
    whole, never changed, so a model call that took it finishes on it however the alias moves meanwhile."""

    def __init__(self, cfg: Config):
        from driftloop.registry import Registry  # MLflow: loaded by a server, not by what checks a request

        self.cfg = cfg
        self.registry = Registry(cfg.registry)
        self.current: ServedModel | None = None
        self.problem: str | None = None  # why the newest alias is not served, if it is not
        if self.registry.by_alias(CHAMPION) is None:  # a registry out of reach is a one-line error here, at start
            self.problem = self._no_alias()
        else:
            self.current = self._load()

    def _load(self) -> ServedModel:
        loaded = self.registry.load(CHAMPION, code_path=self.cfg.training.estimator_path)
        return ServedModel(loaded.ref.version, loaded.model, datetime.now(timezone.utc))

    def _no_alias(self) -> str:
        if self.current is not None:
            return f"the {CHAMPION} alias is gone; still serving v{self.current.version}"
        return (f"model {self.cfg.registry.model_name!r} has no {CHAMPION!r} alias at {self.cfg.registry.tracking_uri} yet; "
                "requests get 503 until one is set (the bootstrap flow, or driftloop promote)")

    def follow(self) -> bool:
        """Serve the version the alias names now; True when it moved. A version that cannot be loaded
        leaves the one serving in place, with the reason in ``problem`` (and /health)."""
        try:
            ref = self.registry.by_alias(CHAMPION)
            if ref is None or (self.current is not None and ref.version == self.current.version):
                self.problem = None if ref is not None else self._no_alias()
                return False
            served = self._load()
        except DriftloopError as exc:
            serving = f"still serving v{self.current.version}" if self.current else "nothing is served yet"
            self.problem = f"cannot follow the {CHAMPION} alias ({exc}); {serving}"
            log.warning(self.problem)
            return False
        previous, self.current, self.problem = self.current, served, None
        log.warning("now serving %s v%s%s", self.cfg.registry.model_name, served.version, f" (was v{previous.version})" if previous else "")
        return True


# --- scoring in batches -----------------------------------------------------------------------


class Scorer:
    """Scores the requests waiting together in one model call on its own thread, logs the call's rows in
    one append, and answers each request once the log has them on disk.

    A call goes as soon as every request the server holds is in it (nobody else is being read, checked
    or waiting for an answer), or once its first request has waited ``serve.max_batch_delay_ms``: the
    clients a call answered come back together, and the ones whose answers are still being logged are
    worth waiting that long for."""

    def __init__(self, cfg: Config, champion: Champion, metrics: ServingMetrics, request_log: requestlog.GroupCommitLog | None):
        self.cfg, self.schema, self.champion, self.metrics, self.log = cfg, cfg.columns, champion, metrics, request_log
        self.queue: asyncio.Queue[Rows] = asyncio.Queue()
        self.arriving = 0  # requests being read and checked
        self.in_flight = 0  # requests handed to ``score`` and not answered yet
        self._model_thread = ThreadPoolExecutor(1, thread_name_prefix="model", initializer=_one_native_thread)
        self._log_schema = requestlog.log_schema(cfg.columns)
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
        self._model_thread.shutdown(wait=True)

    async def score(self, rows: Rows, respond: Callable[[Answers], T]) -> tuple[Answers, T]:
        """The rows' answers, and ``respond(answers)``: built while the log writes the rows, returned once
        they are on disk."""
        loop = asyncio.get_running_loop()
        rows.scored = loop.create_future()
        rows.durable = loop.create_future() if self.log is not None else None
        self.in_flight += 1
        try:
            self.queue.put_nowait(rows)
            answers = await rows.scored
            response = respond(answers)
            if rows.durable is not None:
                await rows.durable
            return answers, response
        finally:
            self.in_flight -= 1

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        delay = self.cfg.serve.max_batch_delay_ms / 1000
        limit = self.cfg.serve.max_batch_rows
        while True:
            batch = [await self.queue.get()]
            size = batch[0].n
            deadline = loop.time() + delay
            while size < limit:
                if self.queue.empty():
                    if len(batch) >= self.in_flight + self.arriving or loop.time() >= deadline:
                        break
                    await asyncio.sleep(_WAIT_STEP)  # let the requests on the way be read and checked
                    continue
                item = self.queue.get_nowait()
                batch.append(item)
                size += item.n
            try:
                await loop.run_in_executor(self._model_thread, self._score_and_log, batch, loop)
            except Exception as exc:  # noqa: BLE001 - a bug here must fail these requests, not the server
                log.exception("scoring failed")
                _fail_all(batch, exc)

    def _score_and_log(self, batch: list[Rows], loop: asyncio.AbstractEventLoop) -> None:
        served = self.champion.current  # one version for the whole call
        schema = self.schema
        arrays = {schema.id_column: np.concatenate([r.ids for r in batch])} | {
            c: np.concatenate([r.columns[c] for r in batch]) for c in batch[0].columns}
        n = len(arrays[schema.id_column])
        scoring = training.score_outputs(served.model, pd.DataFrame(arrays, copy=False), schema, self.cfg.evaluation.decision_threshold)
        outputs = scoring.frame
        scored = outputs["scored"].to_numpy()

        def answer() -> None:
            answers = Answers.of(served.version, outputs)
            self.metrics.scored(served.version, scoring.seconds, n, n - int(scored.sum()), **_predicted(outputs, scored, schema))
            loop.call_soon_threadsafe(_answer_all, batch, answers)

        if self.log is None:
            answer()
            return
        counts = [r.n for r in batch]
        logged = requestlog.log_table(arrays | {c: _plain_array(outputs[c]) for c in outputs.columns} | {
            requestlog.RECEIVED: np.repeat(np.array([r.received_at for r in batch], dtype="datetime64[us]"), counts),
            requestlog.STATUS: np.where(scored, requestlog.OK, requestlog.FAILED).astype(object),
            requestlog.ERROR: np.where(scored, None, "the model could not score this row"),
            requestlog.VERSION: np.full(n, served.version, dtype=object),
            requestlog.LATENCY: time.perf_counter() - np.repeat([r.arrived for r in batch], counts),
        }, n, self._log_schema)
        # Written here, synced on the log's thread while the answers are made (and their bodies built
        # on the event loop); a request is answered once both are done.
        self.log.commit(logged, lambda error: loop.call_soon_threadsafe(_durable_all, batch, error))
        answer()


def _plain_array(column: pd.Series):
    """A column as Arrow reads it fastest: numpy for plain floats, pandas' own array otherwise (missing values kept)."""
    return column.to_numpy() if column.dtype.kind == "f" else column.array


def _answer_all(batch: list[Rows], answers: Answers) -> None:
    start = 0
    for rows in batch:
        if not rows.scored.done():
            rows.scored.set_result(answers.rows(start, start + rows.n))
        start += rows.n


def _durable_all(batch: list[Rows], error: BaseException | None) -> None:
    if error is not None:
        log.error("the request log could not be written: %s", error)
        _fail_all(batch, RuntimeError(f"the request log could not be written ({error}); nothing was answered"))
        return
    for rows in batch:
        if not rows.durable.done():
            rows.durable.set_result(None)


def _fail_all(batch: list[Rows], error: BaseException) -> None:
    for rows in batch:
        for future in (rows.scored, rows.durable):
            if future is not None and not future.done():
                future.set_exception(error)


@dataclass(frozen=True)
class Answers:
    """A model call's outputs (or one request's share of them) as plain values, so that an answer is
    built on the event loop without pandas: per output column one value per row, None where the row
    did not score."""

    version: str
    scored: list[bool]
    values: dict[str, list]

    @classmethod
    def of(cls, version: str, outputs: pd.DataFrame) -> "Answers":
        scored = outputs["scored"].to_numpy()
        failed = np.flatnonzero(~scored).tolist()
        values = {}
        for name in outputs.columns.drop("scored"):
            column = outputs[name]
            if pd.api.types.is_integer_dtype(column.dtype):
                plain = np.where(scored, column.to_numpy(dtype="float64", na_value=0), 0).astype("int64").tolist()
            elif pd.api.types.is_float_dtype(column.dtype):
                plain = column.to_numpy(dtype="float64", na_value=np.nan).tolist()
            else:
                plain = column.to_numpy(dtype=object).tolist()
            for i in failed:
                plain[i] = None
            values[name] = plain
        return cls(version, scored.tolist(), values)

    def rows(self, start: int, stop: int) -> "Answers":
        return Answers(self.version, self.scored[start:stop], {k: v[start:stop] for k, v in self.values.items()})

    @property
    def failed(self) -> int:
        return self.scored.count(False)


def _one_native_thread() -> None:
    """The model thread's OpenMP and BLAS pools at one thread: a served call is small, and threads
    spinning beside the event loop on a busy machine cost more than they give."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


def _predicted(outputs: pd.DataFrame, scored: np.ndarray, schema: SchemaConfig) -> dict:
    """What a call predicted, for the metrics: the scored rows' counts per class (and for a binary
    model their positive-class probabilities); nothing for a regressor."""
    if schema.task == "regression":
        return {}
    classes, counts = np.unique(outputs[PREDICTION].to_numpy(dtype=object)[scored].astype(str), return_counts=True)
    found = {"classes": dict(zip(classes.tolist(), counts.tolist()))}
    if schema.task == "binary_classification":
        found["scores"] = outputs[PROBABILITY].to_numpy(dtype="float64")[scored]
    return found


def answer_rows(ids: list, answers: Answers, schema: SchemaConfig) -> list[dict]:
    """Each row's answer for /predict: its id and the model's output, or why it has none."""
    values = answers.values
    if schema.task == "binary_classification":
        outputs = [{"probability": p, "prediction": k} for p, k in zip(values[PROBABILITY], values[PREDICTION])]
    elif schema.task == "multiclass_classification":
        per_class = [values[f"{PROBABILITY}.{c}"] for c in schema.classes]
        outputs = [{"prediction": k, "probabilities": dict(zip(schema.classes, p))} for k, *p in zip(values[PREDICTION], *per_class)]
    else:
        outputs = [{"prediction": v} for v in values[PREDICTION]]
    return [({"id": i} | output if ok else {"id": i, "error": "the model could not score this row"}) | {"model_version": answers.version}
            for i, output, ok in zip(ids, outputs, answers.scored)]


def mlflow_predictions(answers: Answers) -> list:
    """What `mlflow models serve` answers for a scikit-learn model: ``predict``'s value per row (None where it failed)."""
    return answers.values[PREDICTION]


# --- feedback ---------------------------------------------------------------------------------


def check_feedback(body, schema: SchemaConfig) -> pd.DataFrame:
    """Ground truth posted by id, as a label file's rows; an InvalidRequest line otherwise."""
    records = [body] if isinstance(body, dict) else body
    if not isinstance(records, list) or not records or not all(isinstance(r, dict) for r in records):
        raise InvalidRequest(f"the body must be an object (or a list of objects) with {schema.id_column} and {schema.target}", status=400)
    columns, fields, _ = columns_of(records, "predict", (schema.id_column, schema.target))
    unexpected = sorted(fields - {schema.id_column, schema.target})
    if unexpected:
        raise InvalidRequest(f"unexpected field(s) {', '.join(unexpected)}; feedback holds {schema.id_column} and {schema.target}",
                             field=unexpected[0], expected=f"{schema.id_column} and {schema.target}")
    for name in (schema.id_column, schema.target):
        missing = _rows_where(columns[name], lambda v: v is _MISSING or v is None)
        if missing:
            raise InvalidRequest(f"field {name} is missing at rows {missing}", field=name, expected="a value on every row", rows=missing)
    frame = pd.DataFrame({schema.id_column: [str(v) for v in columns[schema.id_column]], schema.target: columns[schema.target]})
    try:
        return frame.assign(**{schema.target: _feedback_target(frame[schema.target], schema)})
    except DataError as exc:
        raise InvalidRequest(str(exc).removeprefix("feedback: "), field=schema.target, expected=_target_expected(schema)) from None


def _feedback_target(values: pd.Series, schema: SchemaConfig) -> pd.Series:
    from driftloop.data import check_target

    target = check_target(values, schema, "feedback")
    if schema.task == "regression":
        return target.astype("float64")
    if schema.task == "multiclass_classification":
        return target.astype("str")
    return target.astype("int64")


def _target_expected(schema: SchemaConfig) -> str:
    return {"binary_classification": "0 or 1", "regression": "a number"}.get(schema.task, f"one of {', '.join(schema.classes)}")


# --- the app --------------------------------------------------------------------------------------


class Service:
    """One server process: its champion, scorer, request log and counters."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.metrics = ServingMetrics(cfg.registry.model_name)
        self.champion = Champion(cfg)
        if self.champion.current is not None:
            self._count(self.champion.current.version)
        data, schema = cfg.data, cfg.columns
        anchor, days = cfg.serve.period_anchor, data.period_days
        period_of = lambda received: requestlog.period_ends(received.astype("datetime64[D]"), days, anchor).astype(str)  # noqa: E731
        day_of = lambda received: received.astype("datetime64[D]").astype(str)  # noqa: E731
        self.request_log = requestlog.GroupCommitLog(data.request_log, requestlog.log_schema(schema), period_of) \
            if cfg.serve.log_requests else None
        self.feedback_log = requestlog.GroupCommitLog(data.request_log / requestlog.FEEDBACK, requestlog.feedback_schema(schema), day_of)
        self.scorer: Scorer | None = None
        self._stop = threading.Event()
        self._follower = threading.Thread(target=self._follow, name="champion", daemon=True)

    def start(self) -> None:
        self.scorer = Scorer(self.cfg, self.champion, self.metrics, self.request_log)
        self.scorer.start()
        _freeze_what_is_loaded(collect=True)
        self._follower.start()

    async def stop(self) -> None:
        self._stop.set()
        if self.scorer:
            await self.scorer.stop()
        for writer in (self.request_log, self.feedback_log):
            if writer:
                writer.close()

    def _count(self, version: str) -> None:
        schema = self.cfg.columns
        classes = {"binary_classification": ("0", "1"), "regression": ()}.get(schema.task, schema.classes)
        self.metrics.serving(version, classes, scores=schema.task == "binary_classification")

    def _follow(self) -> None:
        while not self._stop.wait(self.cfg.serve.poll_seconds):
            if self.champion.follow():
                self._count(self.champion.current.version)
                _freeze_what_is_loaded(collect=False)  # a collection now would stall the requests in flight
            try:
                for period in requestlog.close_periods(self.cfg.data, self.cfg.columns, self.cfg.serve):
                    log.warning("period %s closed: %d rows -> %s", period.batch_id, period.rows, period.batch or period.note)
            except (DriftloopError, OSError) as exc:
                log.warning("could not close the ended periods: %s", exc)

    async def invalid(self, route: str, error: InvalidRequest, arrived: float) -> None:
        """Count a refused request, and log it (with its reason) so the period's summary counts it too."""
        self.metrics.answered(route, "invalid", self.version, time.perf_counter() - arrived)
        if self.request_log is None:
            return
        row = {requestlog.RECEIVED: np.array([_utc_now()]), requestlog.STATUS: [requestlog.INVALID],
               requestlog.ERROR: [error.body["error"]], requestlog.LATENCY: [time.perf_counter() - arrived]}
        await _durable(self.request_log, requestlog.log_table(row, 1, self.request_log.schema))

    @property
    def version(self) -> str:
        """The version serving, for a counter's label ("none" before the first champion)."""
        current = self.champion.current
        return current.version if current else "none"

    async def feedback(self, labels: pd.DataFrame) -> None:
        await _durable(self.feedback_log, labels.assign(**{requestlog.RECEIVED: _utc_now()}))


def _freeze_what_is_loaded(collect: bool) -> None:
    """Keep the garbage collector's full passes off what the imports and the model made: walking those
    objects (MLflow, pandas and scikit-learn loaded) stalls every request in flight for far longer than
    a model call, and they live as long as the server or the version serving."""
    import gc

    if collect:
        gc.collect()
    gc.freeze()


def _utc_now() -> np.datetime64:
    """Now in UTC, naive (the log's frames hold naive UTC; its files say UTC)."""
    return np.datetime64(time.time_ns() // 1000, "us")


async def _durable(writer: requestlog.GroupCommitLog, frame: pd.DataFrame) -> None:
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def settle(error: BaseException | None) -> None:
        if not done.done():
            done.set_exception(error) if error else done.set_result(None)

    writer.append(frame, lambda error: loop.call_soon_threadsafe(settle, error))
    await done


def create_app(cfg: Config):
    """The FastAPI app of one server process (``uvicorn`` runs it; tests may too)."""
    service = Service(cfg)
    schema = cfg.columns
    names = (schema.id_column, schema.timestamp_column, *schema.features, *schema.passthrough)

    @asynccontextmanager
    async def lifespan(app):
        service.start()
        yield
        await service.stop()

    app = FastAPI(title=f"driftloop serve: {cfg.registry.model_name}", lifespan=lifespan)
    app.state.service = service

    def json(body, status: int = 200) -> Response:
        return Response(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), status_code=status, media_type="application/json")

    async def scored(request: Request, route: str):
        arrived = time.perf_counter()
        service.metrics.in_progress.labels(cfg.registry.model_name).inc()
        service.scorer.arriving += 1
        queued = False
        try:
            if service.champion.current is None:
                service.metrics.answered(route, "error", service.version, time.perf_counter() - arrived)
                return json({"error": service.champion.problem}, 503)
            try:
                body = orjson.loads(await request.body())
                columns, fields, n = columns_of(body, route, names)
                if n == 0:
                    raise InvalidRequest("the request holds no rows", status=400)
                if n > cfg.serve.max_request_rows:
                    raise InvalidRequest(f"{n} rows in one request; at most {cfg.serve.max_request_rows} (serve.max_request_rows)",
                                         status=413)
                now = pd.Timestamp.now(tz="UTC")
                ids, values, _ = check_rows(columns, fields, n, schema, cfg.data.timestamp_tolerance_days, now)
            except orjson.JSONDecodeError as exc:
                error = InvalidRequest(f"the body is not JSON ({exc})", status=400)
                await service.invalid(route, error, arrived)
                return json(error.body, error.status)
            except InvalidRequest as error:
                await service.invalid(route, error, arrived)
                return json(error.body, error.status)
            rows = Rows(n, ids, values, arrived, now.tz_convert(None).to_datetime64())
            service.scorer.arriving -= 1
            queued = True

            def respond(answers: Answers) -> Response:
                if route == "invocations":
                    body = {"predictions": mlflow_predictions(answers), "ids": ids.tolist(), "model_version": answers.version}
                else:
                    body = {"predictions": answer_rows(ids.tolist(), answers, schema)}
                return json(body, 200 if answers.failed < n else 500)

            try:
                answers, response = await service.scorer.score(rows, respond)
            except Exception as exc:  # noqa: BLE001 - the log or the model thread failed: a 500 that says which
                service.metrics.answered(route, "error", service.version, time.perf_counter() - arrived)
                return json({"error": str(exc)}, 500)
            service.metrics.answered(route, "ok" if answers.failed == 0 else "error", answers.version, time.perf_counter() - arrived)
            return response
        finally:
            if not queued:
                service.scorer.arriving -= 1
            service.metrics.in_progress.labels(cfg.registry.model_name).dec()

    @app.post("/predict")
    async def predict(request: Request):
        return await scored(request, "predict")

    @app.post("/invocations")
    async def invocations(request: Request):
        return await scored(request, "invocations")

    @app.post("/feedback")
    async def feedback(request: Request):
        try:
            labels = check_feedback(orjson.loads(await request.body()), schema)
        except orjson.JSONDecodeError as exc:
            return json({"error": f"the body is not JSON ({exc})"}, 400)
        except InvalidRequest as error:
            return json(error.body, error.status)
        await service.feedback(labels)
        return json({"received": len(labels)})

    @app.get("/health")
    async def health():
        """Ready: 200 while a version serves (``degraded`` when the newest alias could not be followed), 503 before."""
        current, problem = service.champion.current, service.champion.problem
        body = {"status": "waiting" if current is None else "degraded" if problem else "ok", "model": cfg.registry.model_name,
                "logging": service.request_log is not None}
        if current is not None:
            body |= {"version": current.version, "serving_since": current.since.isoformat()}
        if problem:
            body["problem"] = problem
        return json(body, 200 if current is not None else 503)

    @app.get("/ping")
    async def ping():
        """Alive (what `mlflow models serve` clients probe): 200 whether or not a version serves yet."""
        return json({"status": "up"})

    @app.get("/metrics")
    async def metrics():
        return Response(service.metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")

    return app


def _check_port(host: str, port: int) -> None:
    """A port that is taken, or an address not of this machine, as one line before anything loads."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds it
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise DriftloopError(f"cannot serve on {host}:{port} ({exc.strerror or exc}); pick another --port (or serve.port)") from None


def serve(cfg: Config, host: str, port: int, workers: int = 1, config_path: str | None = None) -> None:
    """Run the server until SIGINT or SIGTERM (uvicorn finishes the requests in flight, then the log)."""
    import uvicorn

    _check_port(host, port)
    logged = f"request log: {cfg.data.request_log if cfg.serve.log_requests else 'off'}"
    if workers == 1:
        app = create_app(cfg)
        champion = app.state.service.champion
        serving = f"v{champion.current.version}" if champion.current else f"(waiting: {champion.problem})"
        print(f"serving {cfg.registry.model_name} {serving} at http://{host}:{port} ({logged})", flush=True)
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
        return
    from driftloop.registry import Registry

    Registry(cfg.registry).by_alias(CHAMPION)  # a registry out of reach: one line here, not a traceback per worker
    os.environ[CONFIG_ENV] = str(Path(config_path).resolve())
    # The workers' counters, summed by whichever of them a scrape reaches; they end with the server.
    counters = os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="driftloop-serve-metrics-")
    print(f"serving {cfg.registry.model_name} at http://{host}:{port} with {workers} worker processes ({logged})", flush=True)
    try:
        uvicorn.run("driftloop.serving:app_from_environment", factory=True, host=host, port=port, workers=workers,
                    log_level="warning", access_log=False)
    finally:
        shutil.rmtree(counters, ignore_errors=True)


CONFIG_ENV = "DRIFTLOOP_SERVE_CONFIG"


def app_from_environment():
    """A worker process's app, for ``uvicorn --workers``: the config is named by ``DRIFTLOOP_SERVE_CONFIG``."""
    from driftloop.config import load_config

    return create_app(load_config(os.environ[CONFIG_ENV]))
