"""The request log of `driftloop serve`: every answer durable before it is sent, and each served
period turned into one incoming batch of the file contract.

Layout under ``data.requests`` (``DataConfig.request_log``):

    <period end>/<writer>.arrows           the period's requests, as one server process wrote them
    <period end>/summary.json              written when the period is closed: counts, latency, versions
    feedback/<day>/<writer>.arrows         ground truth posted to /feedback, by the day it arrived
    feedback/<day>/summary.json            written when the day's label file is

A writer is one server process (``<host>-<pid>-<start>``): processes and hosts sharing the folder never
write the same file, so they need no coordination. Each file is an Arrow IPC stream with one record
batch per group commit, fsynced before the requests in it are answered; a crash can only tear the
batch being written, whose requests were never answered, and reading stops before it.

A period is closed once it has ended and ``serve.close_grace_minutes`` have passed: its rows (the
newest per id) become ``data.incoming/<period end>.<format>``, linked into place so that a closer
racing another, or a batch delivered by other means, is never overwritten. Feedback days become
``data.labels/<day>.parquet`` the same way.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from driftloop.config import PREDICTION, PROBABILITY, DataConfig, SchemaConfig, ServeConfig
from driftloop.data import batch_path, check_folders

log = logging.getLogger("driftloop.requestlog")

SEGMENT_SUFFIX = ".arrows"
REOPENED = "+"  # <writer>+<n>.arrows: the writer's n-th stream for a folder it had closed (a late row of an ended period)
SUMMARY = "summary.json"
FEEDBACK = "feedback"
# The log's own columns, beside the batch's (id, timestamp, features, passthrough) and the model's outputs.
RECEIVED, STATUS, ERROR, VERSION, LATENCY = "received_at", "status", "error", "model_version", "latency_seconds"
OK, FAILED, INVALID = "ok", "error", "invalid"  # a row scored, a row the model could not score, a refused request


def period_ends(days: np.ndarray, period_days: int, anchor: date) -> np.ndarray:
    """The end of the ``data.cadence`` period each day (datetime64[D]) falls in: the first period end on or
    after it, periods ending on ``anchor`` and every ``period_days`` from it."""
    offset = (days.astype("datetime64[D]") - np.datetime64(anchor, "D")).astype("int64")
    return np.datetime64(anchor, "D") + (-(-offset // period_days)) * period_days


def writer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{time.time_ns()}"


def log_schema(schema: SchemaConfig) -> pa.Schema:
    """One served row as logged: the batch contract's columns, the model's outputs and the log's own."""
    if schema.task == "multiclass_classification":
        outputs = [pa.field(f"{PROBABILITY}.{c}", pa.float64()) for c in schema.classes] + [pa.field(PREDICTION, pa.string())]
    elif schema.task == "regression":
        outputs = [pa.field(PREDICTION, pa.float64())]
    else:
        outputs = [pa.field(PROBABILITY, pa.float64()), pa.field(PREDICTION, pa.int64())]
    return pa.schema([
        pa.field(schema.id_column, pa.string()),
        pa.field(schema.timestamp_column, pa.timestamp("us", tz="UTC")),
        *(pa.field(c, pa.float64()) for c in schema.numeric),
        *(pa.field(c, pa.string()) for c in schema.categorical),
        *(pa.field(c, pa.string()) for c in schema.passthrough),
        *outputs,
        pa.field(RECEIVED, pa.timestamp("us", tz="UTC")),
        pa.field(STATUS, pa.string()),
        pa.field(ERROR, pa.string()),
        pa.field(VERSION, pa.string()),
        pa.field(LATENCY, pa.float64()),
    ])


class _Segment:
    """One open Arrow IPC stream of this process for one period (or feedback day): the schema message,
    then one record batch message per write, each handed to the OS in one ``write`` (the bytes
    ``pyarrow.ipc.new_stream`` would write, without its buffering)."""

    def __init__(self, folder: Path, name: str, schema: pa.Schema):
        folder.mkdir(parents=True, exist_ok=True)
        self.path, again = folder / f"{name}{SEGMENT_SUFFIX}", 0
        while self.path.exists():  # a stream this process closed: never a second header in one file
            again += 1
            self.path = folder / f"{name}{REOPENED}{again}{SEGMENT_SUFFIX}"
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        self._write(schema.serialize())
        os.fsync(self.fd)
        _fsync_folder(folder)  # the new file's name is durable too

    def write(self, table: pa.Table) -> None:
        batches = table.combine_chunks().to_batches()
        for batch in batches:
            self._write(batch.serialize())

    def _write(self, data) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]

    def sync(self) -> None:
        _fdatasync(self.fd)

    def close(self) -> None:
        self._write(_END_OF_STREAM)
        os.fsync(self.fd)
        os.close(self.fd)


_END_OF_STREAM = b"\xff\xff\xff\xff\x00\x00\x00\x00"  # the IPC format's end-of-stream marker
_fdatasync = getattr(os, "fdatasync", os.fsync)  # the data and the size it needs; not the times (where the OS has it)


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def log_table(columns: dict, n: int, schema: pa.Schema) -> pa.Table:
    """Rows of ``schema`` from arrays by column name (numpy, pandas or Arrow); a column not given is null."""
    return pa.Table.from_arrays([pa.array(columns[f.name], type=f.type) if f.name in columns else pa.nulls(n, f.type) for f in schema],
                                schema=schema)


class GroupCommitLog:
    """Per-period Arrow streams of one process, each row fsynced before it is acknowledged; a crash
    tears at most the write in progress, whose rows were never acknowledged.

    ``commit`` writes on the calling thread (the model thread: one model call's rows, every request it
    batched) and leaves the fsync to the log's own thread; ``append`` leaves the write to that thread
    too. The thread takes everything written or queued since its last fsync as one group: one fsync
    per file for all of it, then each ``done(error)`` is called once its rows are on disk (or with the
    error that kept them off it). ``folder_of`` names the folder (the period) of each row from its
    ``received_at`` (datetime64[us], UTC).
    """

    def __init__(self, root: Path, schema: pa.Schema, folder_of: Callable[[np.ndarray], np.ndarray], name: str | None = None):
        self.root, self.schema, self._folder_of = root, schema, folder_of
        self.name = name or writer_name()
        self._segments: dict[str, _Segment] = {}
        self._retired: list[_Segment] = []  # streams of ended periods, closed by the thread once synced
        self._lock = threading.Lock()  # around writes: the model thread's and the log thread's
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="request-log", daemon=True)
        self._thread.start()
        self.groups = 0  # fsync rounds, against the requests they made durable: what group commit buys

    def commit(self, rows: pa.Table, done: Callable[[BaseException | None], None]) -> None:
        """Write ``rows`` now; ``done`` is called once they are on disk. A write that fails raises here."""
        with self._lock:
            written = self._write(rows)
        self._queue.put((written, done))

    def append(self, rows: pa.Table | pd.DataFrame, done: Callable[[BaseException | None], None]) -> None:
        """Queue ``rows`` to be written and synced by the log's thread; ``done`` once they are on disk."""
        self._queue.put((rows, done))

    def close(self) -> None:
        """Sync what is written and queued, then close every file (their stream footers written)."""
        self._queue.put(None)
        self._thread.join()
        with self._lock:
            for segment in [*self._segments.values(), *self._retired]:
                segment.close()
            self._segments.clear()
            self._retired.clear()

    def _run(self) -> None:
        while True:
            group = [self._queue.get()]
            while not self._queue.empty():
                group.append(self._queue.get())
            pending = [i for i in group if i is not None]
            if pending:
                self._sync_group(pending)
            if None in group:
                return

    def _sync_group(self, pending: list) -> None:
        written: dict[int, _Segment] = {}
        failed: dict[int, BaseException] = {}
        queued = [(i, rows) for i, (rows, _) in enumerate(pending) if type(rows) is not list]
        if queued:
            try:
                tables = [t if isinstance(t, pa.Table) else pa.Table.from_pandas(t, schema=self.schema, preserve_index=False)
                          for _, t in queued]
                with self._lock:
                    for segment in self._write(pa.concat_tables(tables).combine_chunks() if len(tables) > 1 else tables[0]):
                        written[id(segment)] = segment
            except BaseException as exc:  # noqa: BLE001 - the queued rows' waiters hear why
                failed.update({i: exc for i, _ in queued})
        for rows, _ in pending:
            if type(rows) is list:  # what ``commit`` wrote: the segments it owes a sync
                written.update({id(segment): segment for segment in rows})
        error = None
        try:
            for segment in written.values():
                segment.sync()
            self.groups += 1
        except BaseException as exc:  # noqa: BLE001 - every waiting request hears why its rows are not on disk
            error = exc
        for i, (_, done) in enumerate(pending):
            try:
                done(failed.get(i, error))
            except Exception:  # noqa: BLE001 - one waiter's bug must not stop the thread every other request waits on
                log.exception("a request log callback failed")
        with self._lock:
            retired, self._retired = self._retired, []
        for segment in retired:
            segment.close()

    def _write(self, table: pa.Table) -> list[_Segment]:
        """One record batch per period the rows fall in (the lock held); the segments written to."""
        received = table.column(RECEIVED)
        span = pc.min_max(received)
        first, last = self._folder_of(np.array([span["min"].value, span["max"].value], dtype="datetime64[us]"))
        if first == last:  # the usual write: every row in one period, found without looking at each
            parts = [(first, table)]
        else:
            folders = self._folder_of(received.to_numpy())
            parts = [(name, table.filter(pa.array(folders == name))) for name in sorted(np.unique(folders))]
        written = []
        for name, rows in parts:
            segment = self._segments.get(name)
            if segment is None:
                segment = self._segments[name] = _Segment(self.root / name, self.name, self.schema)
            segment.write(rows)
            written.append(segment)
        # Streams of folders older than every folder just written to are done with (their period ended);
        # the thread closes them after the fsync that may still be owed to them.
        for folder in [f for f in self._segments if f < parts[0][0]]:
            self._retired.append(self._segments.pop(folder))
        return written


def read_segment(path: Path) -> pa.Table | None:
    """Every complete record batch of one writer's stream; a batch torn by a crash (never answered) is
    left out. None when not even the stream's header made it to disk."""
    with pa.memory_map(str(path)) as file:  # the batches point into the map: nothing is copied to read them
        try:
            reader = ipc.open_stream(file)
        except (pa.ArrowInvalid, OSError):
            return None
        batches = []
        while True:
            try:
                batches.append(reader.read_next_batch())
            except StopIteration:
                break
            except (pa.ArrowInvalid, OSError):  # the torn tail
                break
        return pa.Table.from_batches(batches, schema=reader.schema)


def read_folder(folder: Path, schema: pa.Schema, oldest_first: bool = True) -> pa.Table:
    """The rows every writer logged in ``folder`` (oldest first, or as the files hold them: then nothing
    is copied out of the memory-mapped files)."""
    tables = [t for p in sorted(folder.glob(f"*{SEGMENT_SUFFIX}")) if (t := read_segment(p)) is not None]
    if not tables:
        return schema.empty_table()
    table = pa.concat_tables([t.cast(schema) if t.schema != schema else t for t in tables])
    return table.sort_by(RECEIVED) if oldest_first else table


def newest_answered(table: pa.Table, id_column: str) -> tuple[np.ndarray, int, int]:
    """Positions in ``table`` of the rows a period's batch keeps, oldest first: the answered rows (not
    refused), the newest per id (a client's retry replaces its first answer). Also how many rows were
    refused, and how many answered rows an id's newer answer replaced."""
    answered = pc.not_equal(table.column(STATUS), INVALID)
    positions = pa.array(np.arange(len(table)))
    slim = pa.table({"id": table.column(id_column), "received": table.column(RECEIVED), "at": positions}).filter(answered)
    slim = slim.take(pc.sort_indices(slim, [("received", "ascending"), ("at", "ascending")]))
    slim = slim.append_column("order", pa.array(np.arange(len(slim))))
    newest = slim.group_by("id", use_threads=False).aggregate([("order", "max")]).column("order_max")
    kept = slim.column("at").to_numpy()[np.sort(newest.to_numpy())]
    return kept, len(table) - len(slim), len(slim) - len(kept)


# --- what a served period was ---------------------------------------------------------------


@dataclass(frozen=True)
class ServedPeriod:
    """One period's requests as the loop reports them: how many, how they went and how fast."""

    batch_id: str
    rows: int  # rows answered (scored or failed), the newest per id
    requests_invalid: int  # requests refused before scoring (422)
    rows_failed: int
    error_rate: float  # failed rows / answered rows
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    latency_p99_ms: float | None
    duplicate_ids: int  # rows answered again under an id already seen (a client retry): the newest is kept
    versions: dict[str, int]  # model version -> rows it scored
    writers: int
    batch: str | None  # the batch file written, or None when one of that id was already there
    note: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict) -> "ServedPeriod":
        return cls(**raw)


def summarise(batch_id: str, table: pa.Table, schema: SchemaConfig, writers: int, batch: str | None, note: str = "",
              kept: tuple[np.ndarray, int, int] | None = None) -> ServedPeriod:
    """What the period's requests were; ``kept`` is ``newest_answered``'s answer, when already found."""
    positions, invalid, replaced = kept if kept is not None else newest_answered(table, schema.id_column)
    rows = table.select([STATUS, VERSION, LATENCY]).take(positions)
    latency = rows.column(LATENCY).to_numpy() * 1000
    p50, p95, p99 = np.percentile(latency, [50, 95, 99]) if len(latency) else (None, None, None)
    failed = int(pc.sum(pc.equal(rows.column(STATUS), FAILED)).as_py() or 0)
    versions = rows.group_by(VERSION, use_threads=False).aggregate([(STATUS, "count")]).to_pydict()
    return ServedPeriod(
        batch_id=batch_id, rows=len(positions), requests_invalid=invalid, rows_failed=failed,
        error_rate=failed / len(positions) if len(positions) else 0.0,
        latency_p50_ms=None if p50 is None else round(float(p50), 3), latency_p95_ms=None if p95 is None else round(float(p95), 3),
        latency_p99_ms=None if p99 is None else round(float(p99), 3), duplicate_ids=replaced,
        versions={str(k): int(v) for k, v in sorted(zip(versions[VERSION], versions[f"{STATUS}_count"]))}, writers=writers,
        batch=batch, note=note)


def served_period(data: DataConfig, batch_id: str) -> ServedPeriod | None:
    """The closed period's summary, if ``batch_id`` was served."""
    path = data.request_log / batch_id / SUMMARY
    return ServedPeriod.from_dict(json.loads(path.read_text())) if path.is_file() else None


# --- closing periods ---------------------------------------------------------------------------


def _link_into_place(target: Path, write: Callable[[Path], None]) -> bool:
    """Write ``target`` through a temporary file and link it in; False (nothing changed) when it exists."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    try:
        write(tmp)
        with open(tmp, "rb") as file:
            os.fsync(file.fileno())
        try:
            os.link(tmp, target)
        except FileExistsError:
            return False
        _fsync_folder(target.parent)
        return True
    finally:
        tmp.unlink(missing_ok=True)


def _write_summary(folder: Path, summary: dict) -> None:
    tmp = folder / f".{SUMMARY}.{secrets.token_hex(4)}.tmp"
    tmp.write_text(json.dumps(summary, indent=2))
    os.replace(tmp, folder / SUMMARY)


def _closable(root: Path, now: datetime, grace: timedelta, days_after: int) -> list[Path]:
    """Date-named folders under ``root`` without a summary whose period ended, with its grace, by ``now``."""
    if not root.is_dir():
        return []
    found = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        try:
            end = date.fromisoformat(folder.name)
        except ValueError:
            continue
        closes = datetime.combine(end + timedelta(days=days_after), datetime.min.time(), timezone.utc) + grace
        if closes <= now and not (folder / SUMMARY).exists():
            found.append(folder)
    return found


def close_periods(data: DataConfig, schema: SchemaConfig, serve: ServeConfig, now: datetime | None = None) -> list[ServedPeriod]:
    """Every ended period's requests as its incoming batch, and every ended day's feedback as its label
    file; returns the periods closed now. Safe to call from any number of processes at once."""
    now = now or datetime.now(timezone.utc)
    grace = timedelta(minutes=serve.close_grace_minutes)
    check_folders(data)
    logged = log_schema(schema)
    closed = []
    for folder in _closable(data.request_log, now, grace, days_after=1):
        table = read_folder(folder, logged, oldest_first=False)
        writers = len({p.name.removesuffix(SEGMENT_SUFFIX).split(REOPENED)[0] for p in folder.glob(f"*{SEGMENT_SUFFIX}")})
        kept = newest_answered(table, schema.id_column)
        if len(kept[0]) == 0:
            summary = summarise(folder.name, table, schema, writers, None, "no request was answered in this period", kept)
        else:
            target = batch_path(data, folder.name)
            placed = _link_into_place(target, lambda path: _write_batch(path, table, kept[0], schema, data.batch_format))
            note = "" if placed else f"{target} was already there (delivered by other means); the served rows stay in {folder}"
            summary = summarise(folder.name, table, schema, writers, str(target) if placed else None, note, kept)
        _write_summary(folder, summary.to_dict())
        closed.append(summary)
        del table  # its memory maps close with it
    for folder in _closable(data.request_log / FEEDBACK, now, grace, days_after=1):
        _close_feedback_day(data, schema, folder)
    return closed


_WRITE_ROWS = 100_000  # rows copied out of the log at a time while the batch file is written


def _write_batch(path: Path, table: pa.Table, kept: np.ndarray, schema: SchemaConfig, batch_format: str) -> None:
    """The kept rows as a batch of the file contract (id, timestamp, features, the passthrough columns
    that hold a value), written a slice at a time so that a period of any size costs one slice of memory."""
    passthrough = [c for c in schema.passthrough if pc.count(table.column(c).take(kept)).as_py()]
    columns = table.select([schema.id_column, schema.timestamp_column, *schema.features, *passthrough])
    writer = None
    try:
        for start in range(0, len(kept), _WRITE_ROWS):
            part = columns.take(kept[start:start + _WRITE_ROWS])
            if batch_format == "parquet":
                writer = writer or pq.ParquetWriter(path, part.schema)
                writer.write_table(part)
            else:
                part.to_pandas().to_csv(path, index=False, mode="a" if start else "w", header=not start)
    finally:
        if writer is not None:
            writer.close()


def feedback_schema(schema: SchemaConfig) -> pa.Schema:
    target = pa.float64() if schema.task == "regression" else pa.string() if schema.task == "multiclass_classification" else pa.int64()
    return pa.schema([pa.field(schema.id_column, pa.string()), pa.field(schema.target, target),
                      pa.field(RECEIVED, pa.timestamp("us", tz="UTC"))])


def _close_feedback_day(data: DataConfig, schema: SchemaConfig, folder: Path) -> None:
    table = read_folder(folder, feedback_schema(schema))
    labels = table.select([schema.id_column, schema.target]).to_pandas()
    labels = labels[~labels[schema.id_column].duplicated(keep="last")].reset_index(drop=True)
    summary = {"day": folder.name, "labels": len(labels), "file": None, "note": ""}
    if len(labels):
        target = data.labels / f"{folder.name}.parquet"
        if (data.labels / f"{folder.name}.csv").exists() or not _link_into_place(target, lambda p: labels.to_parquet(p, index=False)):
            summary["note"] = f"a label file for {folder.name} was already in {data.labels}; the posted labels stay in {folder}"
        else:
            summary["file"] = str(target)
    _write_summary(folder, summary)

