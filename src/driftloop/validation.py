"""Great Expectations adapter: the only module that imports ``great_expectations``.

Suites live as plain JSON in ``expectations/`` (``ExpectationSuite.to_json_dict()`` form)
and are validated in an ephemeral GX context, so nothing but the JSON is kept under
version control. Each expectation's ``meta.severity`` says what a failure means:
``critical`` quarantines the batch, ``warning`` is reported and the run goes on.
"""

from __future__ import annotations

import functools
import html
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from driftloop.config import SchemaConfig, ValidationConfig
from driftloop.errors import ConfigError

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


@dataclass(frozen=True)
class ExpectationOutcome:
    expectation: str
    column: str | None
    severity: str
    success: bool
    detail: str


@dataclass(frozen=True)
class ValidationReport:
    suite: str
    batch_id: str
    n_rows: int
    outcomes: tuple[ExpectationOutcome, ...]
    gx_result: dict

    @property
    def critical_failures(self) -> tuple[ExpectationOutcome, ...]:
        return tuple(o for o in self.outcomes if not o.success and o.severity == "critical")

    @property
    def warnings(self) -> tuple[ExpectationOutcome, ...]:
        return tuple(o for o in self.outcomes if not o.success and o.severity == "warning")

    @property
    def passed(self) -> bool:
        return not self.critical_failures

    @property
    def summary(self) -> str:
        if self.passed:
            return f"passed ({len(self.warnings)} warnings)" if self.warnings else "passed"
        names = ", ".join(sorted({f"{o.column or 'table'}:{o.expectation.removeprefix('expect_')}" for o in self.critical_failures}))
        return f"failed {len(self.critical_failures)} critical: {names}"

    def to_dict(self) -> dict:
        return {
            "suite": self.suite,
            "batch_id": self.batch_id,
            "n_rows": self.n_rows,
            "passed": self.passed,
            "summary": self.summary,
            "outcomes": [o.__dict__ for o in self.outcomes],
            "gx_result": self.gx_result,
        }

    def to_markdown(self) -> str:
        verdict = "PASSED" if self.passed else "QUARANTINED"
        lines = [
            f"# Validation of batch {self.batch_id}: {verdict}",
            "",
            f"Suite `{self.suite}`, {self.n_rows} rows. {self.summary}.",
            "",
            "| severity | column | expectation | result | detail |",
            "|---|---|---|---|---|",
        ]
        order = sorted(self.outcomes, key=lambda o: (o.success, o.severity != "critical", o.column or ""))
        for o in order:
            lines.append(
                f"| {o.severity} | {o.column or '(table)'} | {o.expectation} | {'ok' if o.success else 'FAILED'} | {o.detail} |"
            )
        return "\n".join(lines) + "\n"


    def to_html(self) -> str:
        """A self-contained page: failures first, each expectation with its severity and what was found."""
        verdict = "PASSED" if self.passed else "QUARANTINED"
        order = sorted(self.outcomes, key=lambda o: (o.success, o.severity != "critical", o.column or ""))
        rows = "\n".join(
            f"<tr class='{'ok' if o.success else o.severity}'><td>{o.severity}</td><td>{html.escape(o.column or '(table)')}</td>"
            f"<td>{html.escape(o.expectation)}</td><td>{'ok' if o.success else 'FAILED'}</td><td>{html.escape(o.detail)}</td></tr>"
            for o in order
        )
        return f"""<!doctype html><html><head><meta charset="utf-8"><title>Validation of {html.escape(self.batch_id)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px}}
tr.critical{{background:#fdd}}tr.warning{{background:#ffd}}tr.ok{{color:#555}}</style></head><body>
<h1>Batch {html.escape(self.batch_id)}: {verdict}</h1>
<p>Suite <code>{html.escape(self.suite)}</code>, {self.n_rows} rows. {html.escape(self.summary)}.</p>
<table><tr><th>severity</th><th>column</th><th>expectation</th><th>result</th><th>detail</th></tr>
{rows}
</table></body></html>
"""


@functools.lru_cache(maxsize=8)
def _suite_json(path: Path, mtime: float) -> str:
    return path.read_text(encoding="utf-8")


def load_suite(cfg: ValidationConfig) -> dict:
    path = cfg.suite
    if path.is_dir():
        raise ConfigError(f"expectation suite {path} is a folder; set validation.suite to the JSON file in it")
    if not path.is_file():
        raise ConfigError(f"expectation suite {path} not found; set validation.suite in the config")
    try:
        suite = json.loads(_suite_json(path, path.stat().st_mtime))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"expectation suite {path} is not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"expectation suite {path} is not valid JSON (line {exc.lineno}): fix or regenerate it") from None
    if not isinstance(suite, dict) or "expectations" not in suite:
        raise ConfigError(f"expectation suite {path} has no 'expectations' list; write it as ExpectationSuite.to_json_dict()")
    return suite


@functools.lru_cache(maxsize=1)
def _batch_definition():
    """One ephemeral GX context per process; building it costs more than a validation."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.execution_engine import pandas_execution_engine

    # GX fingerprints every in-memory batch under 1 GB by hashing each cell, half of its time on a
    # 1M-row batch (1.9 s -> 1.0 s without); nothing here reads the fingerprint.
    pandas_execution_engine.HASH_THRESHOLD = 0

    # GX gives some of its modules their own levels; quiet them all (its INFO lines are about its docs site).
    for name in [n for n in logging.root.manager.loggerDict if n.startswith("great_expectations")] + ["great_expectations"]:
        logging.getLogger(name).setLevel(logging.ERROR)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    asset = context.data_sources.add_pandas("driftloop").add_dataframe_asset("batch")
    return asset.add_batch_definition_whole_dataframe("whole batch")


def _detail(result) -> str:
    found = result.result or {}
    if "unexpected_count" in found and found.get("unexpected_count"):
        sample = ", ".join(repr(v) for v in (found.get("partial_unexpected_list") or [])[:5])
        return f"{found['unexpected_count']} rows ({found.get('unexpected_percent', 0):.1f}%) unexpected, e.g. {sample}"
    if "observed_value" in found:
        return f"observed {found['observed_value']!r}"[:200]
    return ""


def _exception_message(result) -> str | None:
    info = result.exception_info or {}
    if info.get("raised_exception"):
        return info.get("exception_message")
    # GX 1.x nests exception info per metric when a column is missing.
    for value in info.values():
        if isinstance(value, dict) and value.get("raised_exception"):
            return value.get("exception_message")
    return None


_COLUMN_KWARGS = ("column", "column_A", "column_B")
_COLUMN_LIST_KWARGS = ("column_list", "column_set")


def _check_expectations(suite: dict, path: Path, columns=None) -> None:
    """A suite error, caught before any batch is judged by it: an expectation type GX does not know
    (GX would drop it and report the rest as passed), or (given the ``columns`` a batch can have) a
    column no batch has (every batch would fail it and be quarantined as if its data were bad)."""
    from great_expectations.exceptions import ExpectationNotFoundError
    from great_expectations.expectations.registry import get_expectation_impl

    known = set(columns or ())
    for number, expectation in enumerate(suite["expectations"]):
        kind = expectation.get("type") if isinstance(expectation, dict) else None
        where = f"expectation suite {path}, expectation {number} ({kind or 'no type'})"
        if not isinstance(kind, str):
            raise ConfigError(f"{where}: every expectation needs a 'type' such as expect_column_values_to_not_be_null; fix the suite")
        try:
            get_expectation_impl(kind)
        except ExpectationNotFoundError:
            raise ConfigError(f"{where}: GX has no expectation type {kind!r}; correct the name (GX Core 1.x names, e.g. "
                              "expect_column_values_to_be_between) or remove it") from None
        kwargs = expectation.get("kwargs") or {}
        named = [kwargs[k] for k in _COLUMN_KWARGS if k in kwargs]
        named += [c for k in _COLUMN_LIST_KWARGS for c in (kwargs.get(k) or [])]
        unknown = [c for c in named if c not in known]
        if columns is not None and unknown:
            raise ConfigError(f"{where}: column {unknown[0]!r} is not a column of the batches ({', '.join(sorted(map(str, known)))}); "
                              "fix the suite, or add the column to the config's columns section")


def check_suite(cfg: ValidationConfig, schema: SchemaConfig) -> dict:
    """The suite, loaded and checked against the columns a batch can have (``schema``): a ConfigError
    line for a suite that cannot judge a batch, before any batch is read."""
    suite = load_suite(cfg)
    _check_expectations(suite, cfg.suite, (schema.id_column, schema.timestamp_column, schema.target, *schema.features,
                                           *schema.passthrough))
    return suite


def validate(frame: pd.DataFrame, cfg: ValidationConfig, batch_id: str) -> ValidationReport:
    """Validate a whole batch against the configured suite (its expectation types checked first;
    ``check_suite`` also checks its columns against the schema)."""
    import great_expectations as gx

    suite_dict = load_suite(cfg)
    _check_expectations(suite_dict, cfg.suite)
    suite = gx.ExpectationSuite(**{k: v for k, v in suite_dict.items() if k in ("name", "expectations", "meta", "notes", "id")})
    batch = _batch_definition().get_batch(batch_parameters={"dataframe": frame})
    # BASIC (counts and a sample of unexpected values) decides, at half the cost of GX's default on a
    # 1M-row batch, which also locates the unexpected rows by filtering the whole frame per expectation.
    # A batch that fails is validated again with those row indices, for the quarantine report.
    try:
        result = batch.validate(suite, result_format="BASIC")
        outcomes = _outcomes(result, cfg)
        if any(not o.success and o.severity == "critical" for o in outcomes):
            result = batch.validate(suite, result_format="SUMMARY")
            outcomes = _outcomes(result, cfg)
    finally:
        # GX's engine (one per process, cached) keeps the batch it validated until another replaces it:
        # at 1M rows 166 MB held through scoring and evaluation, and by a long-lived worker between runs.
        manager = batch.data.execution_engine.batch_manager
        manager.reset_batch_cache()
        manager.batch_data_cache.clear()
    return ValidationReport(
        suite=suite_dict.get("name", cfg.suite.stem),
        batch_id=batch_id,
        n_rows=len(frame),
        outcomes=tuple(outcomes),
        gx_result=result.to_json_dict(),
    )


def _outcomes(result, cfg: ValidationConfig) -> list[ExpectationOutcome]:
    outcomes = []
    for r in result.results:
        conf = r.expectation_config
        error = _exception_message(r)
        outcomes.append(
            ExpectationOutcome(
                expectation=conf.type,
                column=conf.kwargs.get("column"),
                severity=(conf.meta or {}).get("severity", cfg.default_severity),
                success=bool(r.success) and error is None,
                detail=f"could not evaluate: {error[:160]}" if error else _detail(r),
            )
        )
    return outcomes


def _native(value):
    """A numpy scalar as the Python value GX compares batch values with (True, not 'True')."""
    return value.item() if isinstance(value, np.generic) else value


def profile_suite(reference: pd.DataFrame, schema: SchemaConfig, name: str, margin: float = 0.1, period_days: int = 1) -> dict:
    """A starting suite profiled from the reference, for a person to edit.

    critical (quarantines the batch): the column set, types, id presence and uniqueness,
    null rates, numeric ranges widened by ``margin`` (of the span above, and relative below for a column that
    is never negative; 99% of rows inside), row counts within half
    and twice the reference's volume per batch (``period_days``: one batch's days, from ``data.cadence``);
    warning (reported): category sets, with each value as its own type (a boolean stays a boolean).
    """
    crit, warn = {"severity": "critical"}, {"severity": "warning"}
    columns = [schema.id_column, schema.timestamp_column, *schema.features]
    stamps = pd.to_datetime(reference[schema.timestamp_column])
    span_days = max((stamps.max() - stamps.min()).days + 1, 1)
    per_batch = len(reference) * period_days / span_days
    expectations = [
        ("expect_table_columns_to_match_set", {"column_set": columns, "exact_match": False}, crit),
        ("expect_table_row_count_to_be_between", {"min_value": int(per_batch // 2), "max_value": int(np.ceil(per_batch * 2))}, crit),
        ("expect_column_values_to_not_be_null", {"column": schema.id_column}, crit),
        ("expect_column_values_to_be_unique", {"column": schema.id_column}, crit),
        ("expect_column_values_to_not_be_null", {"column": schema.timestamp_column}, crit),
    ]
    for column in schema.numeric:
        values = reference[column].astype("float64")
        low, high = float(values.min()), float(values.max())
        pad = margin * (high - low) or margin * max(abs(high), 1.0)
        # A column that is never negative gets a relative floor: an income exported in thousands
        # (1000x smaller) must fail, and a span-wide pad would have let it through below zero.
        floor = low * (1 - margin) if low > 0 else 0.0 if low == 0 else low - pad
        null_rate = float(values.isna().mean())
        expectations += [
            ("expect_column_values_to_be_in_type_list",
             {"column": column, "type_list": ["int8", "int16", "int32", "int64", "Int64", "float32", "float64", "Float64"]}, crit),
            ("expect_column_values_to_not_be_null", {"column": column, "mostly": round(max(0.0, 1 - null_rate - 0.01), 4)}, crit),
            # mostly 0.99: a stray tail value (a count one above the reference maximum) is no incident
            ("expect_column_values_to_be_between", {"column": column, "min_value": round(floor, 6), "max_value": round(high + pad, 6),
                                                    "mostly": 0.99}, crit),
        ]
    for column in schema.categorical:
        null_rate = float(reference[column].isna().mean())
        levels = sorted((_native(v) for v in reference[column].dropna().unique()), key=str)
        expectations += [
            ("expect_column_values_to_not_be_null", {"column": column, "mostly": round(max(0.0, 1 - null_rate - 0.01), 4)}, crit),
            ("expect_column_values_to_be_in_set", {"column": column, "value_set": levels, "mostly": 0.99}, warn),
        ]
    return {
        "name": name,
        "expectations": [{"type": t, "kwargs": k, "meta": m} for t, k, m in expectations],
        "meta": {"notes": f"Profiled by `driftloop suite init` from {len(reference)} reference rows; edit freely. "
                          "meta.severity: critical quarantines the batch, warning is reported."},
    }
