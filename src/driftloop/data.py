"""Files on disk: incoming batches, quarantine, the prediction log and late labels.

Every read failure a user can cause becomes one ``DataError`` line naming the file and
the fix. Nothing here deletes input: quarantine moves a batch, never removes it.

The contract for files (docs/bad-data.md), checked before anything is read or written:
a batch id is the ISO date its period ends (``YYYY-MM-DD``); a batch is one file
``data.incoming/<batch id>.<data.batch_format>``; a label file is
``data.labels/<arrival date>.parquet`` or ``.csv``. Nothing outside the configured folders is
read: an id that is not a date (``week-01``, ``../labels/x``) never becomes a path.
"""

from __future__ import annotations

import bisect
import csv
import errno
import json
import os
import re
import shutil
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from driftloop.config import PARTITION, DataConfig, SchemaConfig
from driftloop.errors import DataError

ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
LABEL_FORMATS = (".parquet", ".csv")


def check_batch_id(batch_id: str) -> date:
    """The date a batch id names, or one DataError line: ids are ``YYYY-MM-DD``, the day the batch's period ends."""
    if not isinstance(batch_id, str) or not ISO_DATE.fullmatch(batch_id):
        raise DataError(f"batch id {batch_id!r} is not a date: name each batch YYYY-MM-DD, the day its period ends "
                        "(e.g. 2026-02-19); a re-sent batch replaces the file of the same id (docs/bad-data.md)")
    try:
        return date.fromisoformat(batch_id)
    except ValueError:
        raise DataError(f"batch id {batch_id!r} is not a calendar date; name each batch YYYY-MM-DD, the day its period ends") from None


def missing_batches(cfg: DataConfig, known: set[str], batch_id: str) -> tuple[str, ...]:
    """The batch ids ``data.cadence`` expected between the newest known batch before ``batch_id`` and it
    that are not known: deliveries that never came, for the report to name (a batch that is late is
    monitored when it comes, as any other)."""
    earlier = [b for b in known if b < batch_id and ISO_DATE.fullmatch(b)]
    if not earlier:
        return ()
    previous, end = date.fromisoformat(max(earlier)), check_batch_id(batch_id)
    expected = (previous + timedelta(days=cfg.period_days * n) for n in range(1, (end - previous).days // cfg.period_days + 1))
    return tuple(day.isoformat() for day in expected if day < end and day.isoformat() not in known)


def batch_path(cfg: DataConfig, batch_id: str) -> Path:
    check_batch_id(batch_id)
    return cfg.incoming / f"{batch_id}.{cfg.batch_format}"


def _misnamed(folder: Path, suffixes: tuple[str, ...], rule: str) -> None:
    """One DataError line for files in ``folder`` not named ``<YYYY-MM-DD><suffix>`` (hidden files aside)."""
    if not folder.exists():
        return
    bad = sorted(p for p in folder.iterdir() if not p.name.startswith(".")
                 and not (p.is_file() and p.suffix in suffixes and ISO_DATE.fullmatch(p.stem)))
    if bad:
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        what = "a folder" if bad[0].is_dir() else "not named by the contract"
        raise DataError(f"{bad[0]}: {what}{more}; {rule}, or move it out of {folder}")


def check_folders(cfg: DataConfig, incoming: bool = True) -> None:
    """Every data folder a folder (not a file), and every label file (and, with ``incoming``, every
    batch file) named as the contract says, before anything is written."""
    for setting in ("incoming", "labels", "quarantine", "predictions", "reports"):
        folder = getattr(cfg, setting)
        if folder.exists() and not folder.is_dir():
            raise DataError(f"data.{setting} is {folder}, a file where a folder belongs; move the file aside or point "
                            f"data.{setting} at a folder")
    _misnamed(cfg.labels, LABEL_FORMATS, "name label files <YYYY-MM-DD>.parquet or .csv, the day they arrived")
    days = sorted(p.stem for p in cfg.labels.iterdir() if p.suffix in LABEL_FORMATS) if cfg.labels.is_dir() else []
    twice = sorted({d for d in days if days.count(d) > 1})
    if twice:  # which one's labels would count is a guess: refuse it
        raise DataError(f"{cfg.labels} holds {twice[0]}.csv and {twice[0]}.parquet: two label files for one arrival day; "
                        "merge them into one (or name the later one by the day it arrived)")
    if incoming:
        _misnamed(cfg.incoming, (f".{cfg.batch_format}",),
                  f"name each batch <YYYY-MM-DD>.{cfg.batch_format} (data.batch_format), the day its period ends")


def incoming_batches(cfg: DataConfig) -> list[str]:
    """Ids of the batch files waiting in ``data.incoming``, oldest first (names checked by ``check_folders``)."""
    check_folders(cfg)
    return sorted(p.stem for p in cfg.incoming.glob(f"*.{cfg.batch_format}")) if cfg.incoming.exists() else []


def read_table(path: Path, missing: str = "check the batch id and the data.incoming folder") -> pd.DataFrame:
    """Read a parquet or CSV file; a wrong, empty or unreadable file is a one-line DataError (``missing``: the fix when it is absent)."""
    if path.is_dir():
        raise DataError(f"{path}: a folder where a file belongs; move it aside and put the file there")
    if not path.is_file():
        raise DataError(f"{path}: file not found; {missing}")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: file is empty; re-export the batch from its source")
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            _unique_header(path, pq.read_schema(path).names)
            frame = pd.read_parquet(path)
        elif suffix == ".csv":
            with path.open(encoding="utf-8", newline="") as handle:
                _unique_header(path, next(csv.reader(handle), []))
            frame = pd.read_csv(path, encoding="utf-8")
        else:
            raise DataError(f"{path}: unsupported file type {suffix!r}; write batches as .parquet or .csv")
    except DataError:
        raise
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); re-encode the file as UTF-8") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: file has no columns (no header line); re-export the batch with its header") from None
    except Exception as exc:  # pyarrow and the CSV parser raise many types for a corrupt file
        kind = "parquet" if suffix == ".parquet" else "CSV"
        raise DataError(f"{path}: not a readable {kind} file ({type(exc).__name__}); re-export it") from None
    if len(frame.columns) == 0:
        raise DataError(f"{path}: file has no columns; re-export the batch from its source")
    if frame.empty:
        raise DataError(f"{path}: file has no rows; re-export the batch from its source")
    if len(frame.columns) == 1 and (separator := next((c for c in ";\t|" if c in str(frame.columns[0])), None)):
        raise DataError(f"{path}: one column named {str(frame.columns[0])[:60]!r}: the file looks {separator!r}-separated; "
                        "export it with commas")
    return frame


def _unique_header(path: Path, names: list[str]) -> None:
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise DataError(f"{path}: column {twice[0]} appears {names.count(twice[0])} times in the header; keep one and re-export")


def read_batch(cfg: DataConfig, batch_id: str) -> pd.DataFrame:
    return read_table(batch_path(cfg, batch_id))


def read_reference(cfg: DataConfig, schema: SchemaConfig) -> pd.DataFrame:
    frame = read_table(cfg.reference, "the first champion trains on the reference period: put it there (data.reference), "
                                      "or run `driftloop demo-data` to write the demo's")
    require_columns(frame, (*schema.features, schema.target), cfg.reference)
    return frame.assign(**{schema.target: check_target(frame[schema.target], schema, cfg.reference)})  # the task fits the target


def _rows(mask: pd.Series, limit: int = 5) -> str:
    rows = [str(i) for i in mask[mask].index[:limit]]
    return ", ".join(rows) + (f" and {int(mask.sum()) - limit} more" if mask.sum() > limit else "")


def check_batch(frame: pd.DataFrame, schema: SchemaConfig, source: Path | str) -> pd.DataFrame:
    """The batch's shape, before any statistics: one DataError line naming the column or rows and the fix.

    Returns the frame with its timestamp column parsed (a CSV brings it as text).
    """
    expected = [schema.id_column, schema.timestamp_column, *schema.features]
    require_columns(frame, expected, source)
    extra = [c for c in frame.columns if c not in (*expected, schema.target, *schema.passthrough)]
    if extra:
        raise DataError(f"{source}: unexpected column(s) {', '.join(map(str, extra))}; drop them from the export, or list them in "
                        "columns.passthrough to keep them in the prediction log (columns.numeric/categorical would make them features)")
    for column in frame.columns:
        if frame[column].isna().all():
            raise DataError(f"{source}: column {column} is empty (all {len(frame)} values null); fix the upstream job that fills it")
    for column in schema.numeric:
        if not pd.api.types.is_numeric_dtype(frame[column]) or pd.api.types.is_bool_dtype(frame[column]):
            bad = pd.to_numeric(frame[column], errors="coerce").isna() & frame[column].notna()
            raise DataError(f"{source}: column {column} should be numeric but has {frame[column].dtype} values"
                            + (f" (rows {_rows(bad)}, e.g. {frame[column][bad].iloc[0]!r})" if bad.any() else "")
                            + "; export it as numbers")
        infinite = pd.Series(np.isinf(frame[column].to_numpy(dtype="float64", na_value=np.nan)), index=frame.index)
        if infinite.any():
            raise DataError(f"{source}: column {column} has infinite values at rows {_rows(infinite)}; replace them upstream")
    duplicated = frame[schema.id_column].duplicated(keep=False) & frame[schema.id_column].notna()
    if duplicated.any():
        raise DataError(f"{source}: {int(duplicated.sum())} rows share an id in {schema.id_column} (rows {_rows(duplicated)}); "
                        "deduplicate the export")
    stamps = frame[schema.timestamp_column]
    if pd.api.types.is_numeric_dtype(stamps) and not pd.api.types.is_bool_dtype(stamps):
        if schema.timestamp_unit is None:
            raise DataError(f"{source}: column {schema.timestamp_column} holds numbers (e.g. {stamps.dropna().iloc[0]!r}), not "
                            "timestamps; set columns.timestamp_unit (s, ms, us or ns since 1970) or export ISO 8601")
        timestamps = pd.to_datetime(stamps, errors="coerce", utc=True, unit=schema.timestamp_unit)
    else:
        timestamps = pd.to_datetime(stamps, errors="coerce", utc=True, format="mixed")
    unparseable = timestamps.isna() & frame[schema.timestamp_column].notna()
    if unparseable.any():
        example = frame[schema.timestamp_column][unparseable].iloc[0]
        raise DataError(f"{source}: column {schema.timestamp_column} has unparseable timestamps at rows {_rows(unparseable)} "
                        f"(e.g. {example!r}); write ISO 8601")
    return frame.assign(**{schema.timestamp_column: timestamps})


def check_period(frame: pd.DataFrame, schema: SchemaConfig, cfg: DataConfig, batch_id: str, source: Path | str) -> None:
    """Rows dated outside the batch's period (the ``data.cadence`` days up to its id, widened by
    ``data.timestamp_tolerance_days``) are a DataError naming them: a file named for the wrong day,
    or timestamps in the wrong unit, must not be monitored as that day."""
    end = pd.Timestamp(check_batch_id(batch_id), tz="UTC") + pd.Timedelta(days=1)
    start = end - pd.Timedelta(days=cfg.period_days)
    slack = pd.Timedelta(days=cfg.timestamp_tolerance_days)
    stamps = frame[schema.timestamp_column]
    outside = (stamps < start - slack) | (stamps >= end + slack)
    if outside.any():
        first = stamps[outside].iloc[0]
        raise DataError(f"{source}: {int(outside.sum())} rows have {schema.timestamp_column} outside the batch's period "
                        f"{start.date()}..{(end - pd.Timedelta(days=1)).date()} (data.cadence {cfg.cadence}: {cfg.period_days} "
                        f"day(s) a batch, +/- {cfg.timestamp_tolerance_days} days, data.timestamp_tolerance_days), rows "
                        f"{_rows(outside)}, e.g. {first}; name the file by the day its period ends, fix the timestamps, or "
                        "set data.cadence to how often batches really come")


def _near_miss(name: str, found) -> str | None:
    """A header that is ``name`` but for spaces or case (``'age '``), which a reader of the file cannot see."""
    return next((str(c) for c in found if str(c) != name and str(c).strip().casefold() == name.strip().casefold()), None)


def require_columns(frame: pd.DataFrame, columns, source: Path | str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        near = [(c, n) for c in missing if (n := _near_miss(c, frame.columns)) is not None]
        hint = "".join(f"; the file has {n!r} (spaces or case differ from {c!r}): rename it in the export" for c, n in near[:2])
        raise DataError(f"{source}: missing column(s) {', '.join(missing)}{hint}; fix the export or the columns section of the config")


# --- quarantine -----------------------------------------------------------------------


@dataclass(frozen=True)
class QuarantinedBatch:
    batch_id: str
    path: Path
    report_json: Path
    report_markdown: Path
    earlier: Path | None = None  # where an earlier quarantined file of the same id was kept


def _write_atomic(path: Path, write) -> Path:
    """``write(temporary path)``, then one rename: a reader never sees half a file, and a failed write
    (a full disk) leaves the old file, no temporary one, and one line saying what happened."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # two runs writing one file never share a temporary
    try:
        write(tmp)
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno == errno.ENOSPC:
            raise DataError(f"no space left on the disk of {path.parent}; free space and rerun (nothing was half-written)") from None
        reason = os.strerror(exc.errno) if exc.errno else type(exc).__name__
        raise DataError(f"cannot write {path} ({reason}); check the folder and rerun (nothing was half-written)") from None
    return path


def _quarantined_files(cfg: DataConfig, batch_id: str) -> list[Path]:
    return [p for p in cfg.quarantine.glob(f"{batch_id}.*") if ".attempt-" not in p.name and not p.name.endswith(".released")]


def _keep_earlier(cfg: DataConfig, batch_id: str) -> Path | None:
    """Move what an earlier quarantine of ``batch_id`` left (its file and reports) to ``<id>.attempt-<n>.*``,
    so a second quarantine of the same id keeps both; returns the earlier batch file's new path."""
    earlier = _quarantined_files(cfg, batch_id)
    if not earlier:
        return None
    n = 1
    while any(cfg.quarantine.glob(f"{batch_id}.attempt-{n}.*")):
        n += 1
    moved = {p: p.with_name(f"{batch_id}.attempt-{n}.{p.name.removeprefix(batch_id + '.')}") for p in earlier}
    for old, new in moved.items():
        old.rename(new)
    return next((new for old, new in moved.items() if ".validation." not in old.name), None)


def quarantine(cfg: DataConfig, batch_id: str, report: dict, markdown: str, page: str | None = None) -> QuarantinedBatch:
    """Move the batch file, unchanged, into quarantine with its validation report beside it; what an
    earlier quarantine of the same id left is kept (``<id>.attempt-<n>.*``), never overwritten."""
    source = batch_path(cfg, batch_id)
    cfg.quarantine.mkdir(parents=True, exist_ok=True)
    earlier = _keep_earlier(cfg, batch_id)
    target = cfg.quarantine / source.name
    report_json = cfg.quarantine / f"{batch_id}.validation.json"
    report_md = cfg.quarantine / f"{batch_id}.validation.md"
    # Reports first: if the move fails the batch stays in incoming and nothing is lost.
    _write_atomic(report_json, lambda tmp: tmp.write_text(json.dumps(report, indent=2, default=str), encoding="utf-8"))
    _write_atomic(report_md, lambda tmp: tmp.write_text(markdown, encoding="utf-8"))
    if page is not None:
        _write_atomic(cfg.quarantine / f"{batch_id}.validation.html", lambda tmp: tmp.write_text(page, encoding="utf-8"))
    if source.exists():
        shutil.move(str(source), target)
    return QuarantinedBatch(batch_id, target, report_json, report_md, earlier)


def unquarantine(cfg: DataConfig, kept: QuarantinedBatch) -> None:
    """Undo ``quarantine`` when what had to follow it (the ledger) failed: the file goes back to incoming."""
    if kept.path.exists() and not batch_path(cfg, kept.batch_id).exists():
        shutil.move(str(kept.path), batch_path(cfg, kept.batch_id))


# --- prediction log -------------------------------------------------------------------


def write_predictions(cfg: DataConfig, batch_id: str, scored: pd.DataFrame) -> Path:
    """Write one batch's partition of the prediction log; a rerun replaces it, never duplicates."""
    folder = cfg.predictions / f"{PARTITION}={batch_id}"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(folder / MATCHES, ignore_errors=True)  # what its labels matched belongs to the rows it replaces
    return _write_atomic(folder / "part-0.parquet", lambda tmp: scored.assign(**{PARTITION: batch_id}).to_parquet(tmp, index=False))


def release_freed_memory() -> None:
    """Give back to the system what Arrow's allocator keeps of freed tables (a batch read, validated and
    logged: 250 MB at 1M rows), which numpy, allocating elsewhere, would never reuse."""
    pa.default_memory_pool().release_unused()


def logged_batches(cfg: DataConfig) -> list[str]:
    if not cfg.predictions.exists():
        return []
    return sorted(p.name.split("=", 1)[1] for p in cfg.predictions.glob(f"{PARTITION}=*") if (p / "part-0.parquet").exists())


def check_as_of(cfg: DataConfig, as_of: str) -> str:
    """A retrain's ``as_of``: the id of a monitored batch (its window ends there). Any other date would be
    recorded as the newest retrain and hold every later one back, or train on nothing."""
    check_batch_id(as_of)
    logged = logged_batches(cfg)
    if as_of not in logged:
        held = f"it holds {logged[0]}..{logged[-1]}" if logged else "it is empty: run the monitor flow first"
        raise DataError(f"retrain as of {as_of}: no batch {as_of} in the prediction log {cfg.predictions} ({held}); name a "
                        "monitored batch, or leave --as-of out for the newest")
    return as_of


def read_predictions(cfg: DataConfig, batch_ids: list[str], columns: list[str] | None = None) -> pd.DataFrame:
    frames = [pd.read_parquet(cfg.predictions / f"{PARTITION}={b}" / "part-0.parquet", columns=columns) for b in batch_ids]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


# --- late labels ----------------------------------------------------------------------


def _target_dtype(schema: SchemaConfig) -> str:
    return {"regression": "float64", "multiclass_classification": "str"}.get(schema.task, "int64")


def check_target(target: pd.Series, schema: SchemaConfig, source: Path | str) -> pd.Series:
    """A label on every row that fits ``columns.task``, or one DataError line naming the rows and the fix;
    the target as int64 (0/1), float64 (regression) or the class's name (multiclass)."""
    if (missing := target.isna()).any():
        raise DataError(f"{source}: column {schema.target} has no label at rows {_rows(missing)}; "
                        "leave rows out until their label is known")
    if schema.task == "multiclass_classification":
        values = target.astype("str")
        bad = ~values.isin(schema.classes)
        expected = f"one of columns.classes ({', '.join(schema.classes)})"
        fix = "add the class to columns.classes and bootstrap again, or fix the labels upstream"
    else:
        values = pd.to_numeric(target, errors="coerce") if not pd.api.types.is_bool_dtype(target) else target.astype("int64")
    if schema.task == "regression":
        bad = values.isna() | ~np.isfinite(values.astype("float64"))
        expected, fix = "numeric values", "export the target as numbers"
    elif schema.task == "binary_classification":
        bad = ~values.isin([0, 1])
        expected, fix = "0 or 1", "map the labels to 0/1 upstream"
        classes = sorted(map(str, target.unique()))
        if len(classes) > 2:  # a whole other task, not a stray value: say so
            fix += (f" (it has {len(classes)} classes: {', '.join(classes[:5])}{', ...' if len(classes) > 5 else ''}; "
                    "for more than two, set columns.task: multiclass_classification and list them in columns.classes)")
    if bad.any():
        example = target[bad].iloc[0]
        example = example.item() if isinstance(example, np.generic) else example
        raise DataError(f"{source}: column {schema.target} should hold {expected} but has {example!r} at rows {_rows(bad)}; {fix}")
    return values.astype(_target_dtype(schema))


def check_labels(frame: pd.DataFrame, schema: SchemaConfig, source: Path | str) -> pd.DataFrame:
    """Ids and a usable target on every row, or one DataError line naming the rows and the fix."""
    require_columns(frame, (schema.id_column, schema.target), source)
    if (no_id := frame[schema.id_column].isna()).any():
        raise DataError(f"{source}: {int(no_id.sum())} label rows have no {schema.id_column} (rows {_rows(no_id)}); fix the export")
    return frame.assign(**{schema.target: check_target(frame[schema.target], schema, source)})


def _label_files(cfg: DataConfig, as_of: date, since: date | None = None) -> list[tuple[date, Path]]:
    """Label files (parquet or CSV) that had arrived by ``as_of`` (and not before ``since``), by arrival
    date (their name), oldest first."""
    check_folders(cfg, incoming=False)
    files = [p for p in cfg.labels.iterdir() if p.suffix in LABEL_FORMATS] if cfg.labels.exists() else []
    return sorted((day, p) for p in files if (day := date.fromisoformat(p.stem)) <= as_of and (since is None or day >= since))


def _read_label_files(files: list[tuple[date, Path]], schema: SchemaConfig, newest_first: bool = False) -> pd.DataFrame:
    """One label per id, a later arrival winning over an earlier one; ``newest_first``: every row, the
    latest first, for ``join_labels`` (whose first match wins) to pick the same label with no
    de-duplication pass (hashing a million text ids twice costs more than the join)."""
    frames = []
    for arrived, path in files:
        frame = check_labels(read_table(path), schema, path)
        frames.append(frame[[schema.id_column, schema.target]].assign(label_arrived=pd.Timestamp(arrived).as_unit("us")))
    if not frames:
        return pd.DataFrame({schema.id_column: pd.Series(dtype="str"), schema.target: pd.Series(dtype=_target_dtype(schema)),
                             "label_arrived": pd.Series(dtype="datetime64[us]")})
    labels = pd.concat(frames, ignore_index=True)
    if newest_first:
        return labels.iloc[::-1].reset_index(drop=True)
    # A corrected label arriving later wins over an earlier one for the same id.
    return labels.drop_duplicates(schema.id_column, keep="last")


def read_labels(cfg: DataConfig, schema: SchemaConfig, as_of: date, since: date | None = None) -> pd.DataFrame:
    """The labels that had arrived by ``as_of``, from ``since`` on (files are named by arrival date)."""
    return _read_label_files(_label_files(cfg, as_of, since), schema)


def _comparable(keys: pa.Array, values: pa.Array) -> tuple[pa.Array, pa.Array] | None:
    """The two id arrays as one Arrow type (text as large_string), or None when one holds text and the other not."""
    if keys.type == values.type:
        return keys, values
    text = lambda t: pa.types.is_string(t) or pa.types.is_large_string(t)  # noqa: E731
    if text(keys.type) and text(values.type):
        return keys.cast(pa.large_string()), values.cast(pa.large_string())
    return None


def match_ids(keys, values) -> np.ndarray | None:
    """For each of ``keys``, the position of its first occurrence in ``values``, or -1; None when the two
    hold ids of different types. A hash lookup in Arrow: pandas' merge and isin turn millions of text
    ids into Python strings first, which costs seconds and hundreds of MB per million."""
    both = _comparable(pa.array(keys, from_pandas=True), pa.array(values, from_pandas=True))
    if both is None:
        return None
    return pc.index_in(both[0], value_set=both[1]).fill_null(-1).to_numpy()


def _ids_of_two_types(schema: SchemaConfig, log_ids, label_ids, log: str, labels: str) -> DataError:
    """Ids are compared as the type they have in both places: integers in one and text in the other
    would match nothing and silently leave every label unknown."""
    kind = lambda ids: "text" if pa.types.is_string(t := pa.array(ids, from_pandas=True).type) or pa.types.is_large_string(t) else str(t)  # noqa: E731
    return DataError(f"{schema.id_column} holds {kind(log_ids)} ids in {log} but {kind(label_ids)} ids in {labels}; export ids "
                     "as one type in batches and label files (in CSV, ids that look like numbers are read as numbers: use parquet "
                     "or a non-numeric prefix)")


def join_labels(predictions: pd.DataFrame, labels: pd.DataFrame, schema: SchemaConfig,
                sources: tuple[str, str] = ("the prediction log", "the label files")) -> pd.DataFrame:
    """Predictions that have their ground truth, with the label as the target column: an id's first
    row in ``labels`` (one per id, or every row newest first); ``sources`` name the two for an error."""
    if predictions.empty or labels.empty:
        return predictions.iloc[0:0].assign(**{schema.target: pd.Series(dtype=_target_dtype(schema))})
    # one to one: a batch's ids are checked unique when it arrives, and each id's first label is taken
    position = match_ids(predictions[schema.id_column], labels[schema.id_column])
    if position is None:
        raise _ids_of_two_types(schema, predictions[schema.id_column], labels[schema.id_column], *sources)
    found = position >= 0
    return pd.concat([predictions[found].reset_index(drop=True),
                      labels.drop(columns=schema.id_column).iloc[position[found]].reset_index(drop=True)], axis=1)


@dataclass(frozen=True)
class LabelArrivals:
    batch_date: np.ndarray  # datetime64[D], one per logged prediction
    arrival: np.ndarray  # datetime64[D] its label's first arrival, NaT while none has arrived
    unknown_ids: int  # ids in the counted label files that no logged prediction of the batches has
    conflicts: int = 0  # ids labelled twice, differently, within one file


@dataclass(frozen=True)
class LabelMatches:
    """The logged predictions of ``batch_ids`` (oldest batch first) matched against the label files that
    arrived from the oldest of them to ``as_of``: the label status counts ``arrivals``, and the matured
    window takes ``window`` instead of joining the same ids again."""
    batch_ids: tuple[str, ...]
    as_of: date
    arrivals: LabelArrivals
    # The newest ``keep`` batches with a label from their day on, newest first: each one's labelled log
    # rows (``row``), with the newest such label and the day it arrived.
    window: dict[str, pd.DataFrame]
    keep: int


# Beside each batch's log partition: one file per label file matched against it, written once.
MATCHES = "_labels"
LABEL_FACTS = "_label_files"


def _fingerprint(path: Path) -> list[int]:
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns]


def _as_large(ids):
    return ids.cast(pa.large_string()) if pa.types.is_string(ids.type) else ids


def _chunked(ids) -> pa.ChunkedArray:
    """Ids as one chunked array, text as large_string, whether pandas or parquet handed them over."""
    return pa.chunked_array([_as_large(c) for c in (ids.chunks if isinstance(ids, pa.ChunkedArray) else [ids])])


class _LabelFile:
    """One label file as matching reads it: its ids, and its checked labels only when they are needed. A
    parquet file checked by an earlier run (its facts are kept) gives its ids alone."""

    def __init__(self, path: Path, schema: SchemaConfig, checked: bool):
        self.path, self._schema, self._frame = path, schema, None
        if checked and path.suffix == ".parquet":
            ids = pq.read_table(path, columns=[schema.id_column]).column(0)
        else:
            ids = pa.array(self.frame[schema.id_column], from_pandas=True)
        self.ids = _chunked(ids)

    @property
    def frame(self) -> pd.DataFrame:
        if self._frame is None:
            columns = [self._schema.id_column, self._schema.target]
            self._frame = check_labels(read_table(self.path), self._schema, self.path)[columns].reset_index(drop=True)
        return self._frame

    @property
    def target(self) -> pd.Series:
        return self.frame[self._schema.target]


def _pair_path(cfg: DataConfig, batch_id: str, label_file: Path) -> Path:
    return cfg.predictions / f"{PARTITION}={batch_id}" / MATCHES / f"{label_file.name}.parquet"


def _read_pair(path: Path, stamp: dict) -> pa.Table | None:
    """What an earlier run matched for this batch and label file, unless either has changed since (or
    the file is damaged: it is matched again)."""
    try:
        table = pq.read_table(path)
        return table if json.loads(table.schema.metadata[b"driftloop"]) == stamp else None
    except (OSError, ValueError, KeyError, TypeError, pa.ArrowException):
        return None


def _write_pair(cfg: DataConfig, batch_id: str, found: _LabelFile, rows: np.ndarray, label_rows: np.ndarray, stamp: dict) -> pa.Table:
    target = pa.array(found.target.iloc[label_rows], from_pandas=True) if len(label_rows) else pa.nulls(0)  # none: not read
    table = pa.table({"row": pa.array(rows, pa.int32()), "label_row": pa.array(label_rows, pa.int32()), "target": target})
    table = table.replace_schema_metadata({"driftloop": json.dumps(stamp)})
    path = _pair_path(cfg, batch_id, found.path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(path, lambda tmp: pq.write_table(table, tmp))
    return table


def _facts_path(cfg: DataConfig, label_file: Path) -> Path:
    return cfg.predictions / LABEL_FACTS / f"{label_file.name}.json"


def _read_facts(cfg: DataConfig, label_file: Path) -> dict | None:
    """Rows and conflicts (ids labelled twice, differently) of a label file, kept when a run first checked
    it; None when no run has, or the file changed since."""
    try:
        facts = json.loads(_facts_path(cfg, label_file).read_text(encoding="utf-8"))
        return facts if facts["labels"] == _fingerprint(label_file) else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_facts(cfg: DataConfig, schema: SchemaConfig, found: _LabelFile) -> dict:
    facts = {"labels": _fingerprint(found.path), "rows": len(found.frame), "conflicts": _conflicts([found.frame], schema)}
    path = _facts_path(cfg, found.path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(path, lambda tmp: tmp.write_text(json.dumps(facts), encoding="utf-8"))
    return facts


def _match_new_pairs(cfg: DataConfig, schema: SchemaConfig, missing: list[tuple[str, Path]], stamps: dict,
                     log_ids, read) -> dict[tuple[str, str], pa.Table]:
    """Match each (batch, label file) pair no earlier run matched, each side hashed once: a label file
    new to several batches (today's) against all of them in one lookup, then a batch new to the
    remaining files (today's batch, against the older files) against all of those in one lookup."""
    by_file: dict[Path, list[str]] = {}
    for batch, path in missing:
        by_file.setdefault(path, []).append(batch)
    by_batch: dict[str, list[Path]] = {}
    found: dict[tuple[str, str], pa.Table] = {}
    for path, batches in by_file.items():
        if len(batches) == 1:
            by_batch.setdefault(batches[0], []).append(path)
            continue
        labels = read(path)
        last = len(labels.ids) - 1
        backwards = labels.ids.take(np.arange(last, -1, -1)).combine_chunks()  # an id twice in one file: its last row is its label
        keys = [log_ids(b) for b in batches]
        both = _comparable_ids(cfg, schema, pa.chunked_array([c for k in keys for c in k.chunks]), backwards, path)
        position = pc.index_in(both[0], value_set=both[1]).fill_null(-1).to_numpy()
        start = 0
        for batch, key in zip(batches, keys):
            part = position[start:start + len(key)]
            start += len(key)
            rows = np.flatnonzero(part >= 0)
            found[(batch, path.name)] = _write_pair(cfg, batch, labels, rows, last - part[rows], stamps[(batch, path.name)])
    for batch, paths in by_batch.items():
        key = log_ids(batch).combine_chunks()
        labels = [read(path) for path in paths]
        both = _comparable_ids(cfg, schema, key, pa.chunked_array([c for f in labels for c in f.ids.chunks]), paths[0])
        position = pc.index_in(both[1], value_set=both[0]).fill_null(-1).to_numpy()
        start = 0
        for found_file in labels:
            part = position[start:start + len(found_file.ids)]
            start += len(found_file.ids)
            label_rows = np.flatnonzero(part >= 0)[::-1]  # last row first: np.unique keeps an id's last label
            rows, first = np.unique(part[label_rows], return_index=True)
            found[(batch, found_file.path.name)] = _write_pair(cfg, batch, found_file, rows, label_rows[first],
                                                               stamps[(batch, found_file.path.name)])
    return found


def _comparable_ids(cfg: DataConfig, schema: SchemaConfig, logged, labels, path: Path):
    both = _comparable(logged, labels)
    if both is None:
        raise _ids_of_two_types(schema, logged, labels, f"the prediction log ({cfg.predictions})", f"the label file {path.name}")
    return both


class _KeptMatches:
    """What every (batch, label file) pair of ``batch_ids`` and ``files`` matched, each pair read from what
    an earlier run kept or matched now and kept, and the facts (rows, conflicts) of each label file."""

    def __init__(self, cfg: DataConfig, schema: SchemaConfig, batch_ids: list[str], files: list[tuple[date, Path]]):
        self.logs = {b: cfg.predictions / f"{PARTITION}={b}" / "part-0.parquet" for b in batch_ids}
        log_stamps = {b: _fingerprint(p) for b, p in self.logs.items()}
        label_stamps = {path.name: _fingerprint(path) for _, path in files}
        stamps = {(b, name): {"log": log_stamps[b], "labels": label_stamps[name]} for b in batch_ids for name in label_stamps}
        self.pairs = {(b, path.name): _read_pair(_pair_path(cfg, b, path), stamps[(b, path.name)]) for b in batch_ids for _, path in files}
        facts = {path.name: _read_facts(cfg, path) for _, path in files}
        self._schema, self._read_files, self._checked = schema, {}, {name for name, found in facts.items() if found is not None}
        self._folder = cfg.labels

        read_logs: dict[str, pa.ChunkedArray] = {}

        def log_ids(batch: str) -> pa.ChunkedArray:
            if batch not in read_logs:
                read_logs[batch] = pa.chunked_array([_as_large(c) for c in pq.read_table(self.logs[batch], columns=[schema.id_column]).column(0).chunks])
            return read_logs[batch]

        missing = [(b, path) for b in batch_ids for _, path in files if self.pairs[(b, path.name)] is None]
        if len(types := {str(log_ids(b).type) for b, _ in missing}) > 1:
            raise DataError(f"the prediction log in {cfg.predictions} holds {schema.id_column} values of several types "
                            f"({', '.join(sorted(types))}); export ids as one type in every batch")
        self.pairs |= _match_new_pairs(cfg, schema, missing, stamps, log_ids, self.read)
        self.facts = {path.name: facts[path.name] or _write_facts(cfg, schema, self.read(path)) for _, path in files}
        self._checked = set(self.facts)  # from now on a label file is read for its ids alone
        self._read_files.clear()  # the ids and labels read to match new pairs: not held while the matches are summed up

    def read(self, path: Path) -> _LabelFile:
        if path not in self._read_files:
            found = _LabelFile(path, self._schema, checked=path.name in self._checked)
            if self._read_files and found.ids.type != (seen := next(iter(self._read_files.values())).ids).type:
                raise DataError(f"the label files in {self._folder} hold {self._schema.id_column} values of several types ({seen.type} "
                                f"and {found.ids.type} in {path.name}); export ids as one type in every label file")
            self._read_files[path] = found
        return self._read_files[path]


def keep_label_matches(cfg: DataConfig, schema: SchemaConfig, batch_ids: list[str], as_of: date) -> None:
    """Match the label files that arrived by ``as_of`` against the logged ``batch_ids`` and keep what each
    pair matched, as ``match_labels`` does first: run while a new batch is read and validated, it leaves
    that batch's own pairs, one lookup, to the ``match_labels`` after it is logged."""
    if batch_ids:
        _KeptMatches(cfg, schema, batch_ids, _label_files(cfg, as_of, date.fromisoformat(batch_ids[0])))


def match_labels(cfg: DataConfig, schema: SchemaConfig, batch_ids: list[str], as_of: date, keep: int = 0,
                 unknown_from: date | None = None) -> LabelMatches:
    """Each logged prediction of ``batch_ids`` matched against the label files that arrived between the
    oldest of those batches and ``as_of`` (a label never arrives before its batch).

    Incremental: what a (batch, label file) pair matched is kept beside the batch's log (``_labels/``)
    and reused while neither file changes, so a run matches only the new label files against the
    batches and the new batches against the label files, whatever the horizon. Ids stay in Arrow:
    no table of millions of Python strings, no merge. ``keep``: how many of the newest batches with
    labels the window takes; ``unknown_from``: count labels for unknown ids only in files from that day on.
    """
    files = _label_files(cfg, as_of, date.fromisoformat(batch_ids[0]) if batch_ids else as_of)
    kept = _KeptMatches(cfg, schema, batch_ids, files)
    pairs, facts, logs, read = kept.pairs, kept.facts, kept.logs, kept.read

    sizes = [pq.ParquetFile(logs[b]).metadata.num_rows for b in batch_ids]
    batch_date = np.repeat(np.array(batch_ids, dtype="datetime64[D]"), sizes)
    arrival = np.full(len(batch_date), np.datetime64("NaT", "D"))
    days = np.array([day for day, _ in files], dtype="datetime64[D]")
    counted = {path.name: np.zeros(facts[path.name]["rows"], dtype=bool)
               for day, path in files if unknown_from is None or day >= unknown_from}
    window: dict[str, pd.DataFrame] = {}
    offsets = np.r_[0, np.cumsum(sizes)]
    for i in reversed(range(len(batch_ids))):
        batch, tables = batch_ids[i], [pairs.pop((batch_ids[i], path.name)) for _, path in files]
        for (_, path), table in zip(files, tables):
            if path.name in counted:
                counted[path.name][table.column("label_row").to_numpy()] = True
        rows = np.concatenate([t.column("row").to_numpy() for t in tables]) if tables else np.array([], dtype=np.int32)
        if not len(rows):
            continue
        file_of = np.repeat(np.arange(len(tables)), [t.num_rows for t in tables])
        first = np.full(sizes[i], np.iinfo(np.int64).max)
        np.minimum.at(first, rows, days.astype("int64")[file_of])
        labelled = first < np.iinfo(np.int64).max
        arrival[offsets[i]:offsets[i + 1]][labelled] = first[labelled].astype("datetime64[D]")
        if len(window) < keep:
            window_labels = _newest_labels(schema, batch, tables, rows, file_of, days)
            if window_labels is not None:
                window[batch] = window_labels
    unknown = sum(_unknown_ids(read(path).ids, counted[path.name]) for _, path in files
                  if path.name in counted and not counted[path.name].all())
    return LabelMatches(tuple(batch_ids), as_of, LabelArrivals(batch_date, arrival, unknown, sum(f["conflicts"] for f in facts.values())),
                        window, keep)


def _newest_labels(schema: SchemaConfig, batch: str, tables: list[pa.Table], rows: np.ndarray, file_of: np.ndarray,
                   days: np.ndarray) -> pd.DataFrame | None:
    """The batch's labelled rows with their newest label from a file dated from the batch's day on (an
    earlier file's label is early: counted, never used), or None when it has none."""
    entry = np.arange(len(rows), dtype=np.int64)
    proper = days[file_of] >= np.datetime64(batch, "D")
    if not proper.any():
        return None
    best = np.full(int(rows.max()) + 1, -1, dtype=np.int64)
    np.maximum.at(best, rows[proper], (file_of[proper].astype(np.int64) << 32) | entry[proper])  # the newest file wins
    labelled = np.flatnonzero(best >= 0)
    chosen = best[labelled] & 0xFFFFFFFF
    targets = pd.concat([t.column("target").to_pandas() for t in tables if t.num_rows], ignore_index=True)
    return pd.DataFrame({"row": labelled,
                         schema.target: targets.iloc[chosen].reset_index(drop=True).astype(_target_dtype(schema)),
                         "label_arrived": days[file_of[chosen]].astype("datetime64[us]")})


def _unknown_ids(ids: pa.ChunkedArray, matched: np.ndarray) -> int:
    """Distinct ids among the rows no logged prediction matched, less those matched through another row."""
    others = pc.unique(ids.filter(pa.array(~matched)))
    if not matched.any() or not len(others):
        return len(others)
    return len(others) - int(pc.sum(pc.is_in(others, value_set=ids.filter(pa.array(matched)).combine_chunks())).as_py() or 0)


def label_arrivals(cfg: DataConfig, schema: SchemaConfig, batch_ids: list[str], as_of: date) -> LabelArrivals:
    """When the label of each logged prediction of ``batch_ids`` first arrived (``match_labels``)."""
    return match_labels(cfg, schema, batch_ids, as_of).arrivals


def _conflicts(frames: list[pd.DataFrame], schema: SchemaConfig) -> int:
    """Ids given two different labels within one label file (its last row is the one used)."""
    found = 0
    for frame in frames:
        twice = frame[frame[schema.id_column].duplicated(keep=False)]
        if len(twice):
            found += int((twice.groupby(schema.id_column)[schema.target].nunique() > 1).sum())
    return found


def labelled_batches(cfg: DataConfig, schema: SchemaConfig, as_of: date, n_batches: int | None = None,
                     columns: list[str] | None = None, matches: LabelMatches | None = None) -> pd.DataFrame:
    """Logged predictions whose label has arrived by ``as_of``, oldest batch first: those of the
    ``n_batches`` newest batches that have any, or of every batch; only the log's ``columns``, given
    (the id and the batch are always read).

    Walks back from ``as_of`` and stops there, so a run's cost follows the window, not the
    history. A label never arrives before the batch it labels, so batch ``b`` needs only the
    label files that arrived from ``b`` on, read as the walk reaches them. The newest batches
    that ``matches`` (as of the same day) covers take their labels from it, with no join.
    """
    batches = [b for b in logged_batches(cfg) if date.fromisoformat(b) <= as_of]
    files = _label_files(cfg, as_of)
    if columns is not None:
        columns = list(dict.fromkeys([schema.id_column, PARTITION, *columns]))
    if n_batches is None:  # everything: one read of each
        joined = join_labels(read_predictions(cfg, batches, columns), _read_label_files(files, schema), schema)
        return joined.sort_values([PARTITION, schema.timestamp_column], kind="stable", ignore_index=True)
    arrivals = [arrived for arrived, _ in files]
    labels, unread, found = _read_label_files([], schema), len(files), []
    if matches is not None:
        if matches.as_of != as_of or matches.keep < n_batches:
            raise ValueError(f"label matches as of {matches.as_of} for {matches.keep} batches cannot serve a window of "
                             f"{n_batches} as of {as_of}")
        found = _matched_batches(cfg, matches, columns, n_batches, schema.timestamp_column)
    unmatched = [b for b in batches if matches is None or not matches.batch_ids or b < matches.batch_ids[0]]
    for batch in reversed(unmatched if len(found) < n_batches else []):
        first_new = bisect.bisect_left(arrivals, date.fromisoformat(batch))
        if first_new < unread:
            # newest first, so a corrected label that arrived later is the one matched
            older = _read_label_files(files[first_new:unread], schema, newest_first=True)
            labels = pd.concat([labels, older], ignore_index=True)
            unread = first_new
        joined = join_labels(read_predictions(cfg, [batch], columns), labels, schema,
                             (f"the prediction log of {batch}", f"the label files in {cfg.labels}"))
        if not joined.empty:
            found.append(joined.sort_values(schema.timestamp_column, kind="stable", ignore_index=True))
        if len(found) == n_batches:
            break
    if not found:  # no labels yet: an empty frame with the log's columns
        return join_labels(read_predictions(cfg, batches[-1:], columns), labels.iloc[0:0], schema)
    return pd.concat(found[::-1], ignore_index=True)  # oldest batch first, each in time order


def _matched_batches(cfg: DataConfig, matches: LabelMatches, columns: list[str] | None, n_batches: int,
                     timestamp: str) -> list[pd.DataFrame]:
    """Up to ``n_batches`` of the newest batches of ``matches`` with any label, newest first, each in time order."""
    found = []
    for batch, labels in list(matches.window.items())[:n_batches]:
        logged = read_predictions(cfg, [batch], columns).iloc[labels["row"].to_numpy()].reset_index(drop=True)
        joined = pd.concat([logged, labels.drop(columns="row")], axis=1)
        found.append(joined.sort_values(timestamp, kind="stable", ignore_index=True))
    return found


def last_batches(frame: pd.DataFrame, n_batches: int, skip_latest: int = 0) -> pd.DataFrame:
    """Rows of the ``n_batches`` most recent batches, after leaving out the ``skip_latest`` newest."""
    batches = sorted(frame[PARTITION].unique())
    chosen = batches[max(len(batches) - skip_latest - n_batches, 0): len(batches) - skip_latest]
    return frame[frame[PARTITION].isin(chosen)]


def write_report(cfg: DataConfig, name: str, report: dict, markdown: str, page: str | None = None) -> tuple[Path, ...]:
    """``reports/<name>.json``, ``.md`` and (given a page) ``.html``; a rerun overwrites them."""
    cfg.reports.mkdir(parents=True, exist_ok=True)
    written = {cfg.reports / f"{name}.json": json.dumps(report, indent=2, default=str), cfg.reports / f"{name}.md": markdown}
    if page is not None:
        written[cfg.reports / f"{name}.html"] = page
    for path, text in written.items():
        _write_atomic(path, lambda tmp, text=text: tmp.write_text(text, encoding="utf-8"))
    return tuple(written)
