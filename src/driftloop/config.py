"""The one typed configuration, loaded from YAML and validated at the boundary.

Relative paths in the file are resolved against the file's own folder, so a config
works the same from any working directory (and a test can point everything at
``tmp_path`` by writing its own file).
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from driftloop.errors import ConfigError


TRACKING_URI_ENV = "DRIFTLOOP_TRACKING_URI"
DASK_ADDRESS_ENV = "DRIFTLOOP_DASK_ADDRESS"
ALERT_WEBHOOK_ENV = "DRIFTLOOP_ALERT_WEBHOOK"
METRICS_PORT = 9753  # `driftloop serve-metrics`: Prometheus scrapes 127.0.0.1:9753/metrics
SERVE_PORT = 8080  # `driftloop serve`: the champion answers on 127.0.0.1:8080


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Task = Literal["binary_classification", "multiclass_classification", "regression"]
# The metrics of each task, headline first (tables and logs show that one). A multiclass model also
# reports precision, recall and f1 of each class (``f1.<class>``), with intervals, but thresholds and
# the gate apply to these task-level ones.
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "binary_classification": ("roc_auc", "accuracy", "precision", "recall", "f1", "log_loss", "brier"),
    "multiclass_classification": ("macro_f1", "accuracy", "macro_precision", "macro_recall", "weighted_f1",
                                  "macro_roc_auc", "log_loss", "brier"),
    "regression": ("mae", "rmse", "r2"),
}
# The values each metric can take (None: unbounded), so a threshold outside them is a config error.
METRIC_RANGE: dict[str, tuple[float | None, float | None]] = {
    "log_loss": (0.0, None), "mae": (0.0, None), "rmse": (0.0, None), "r2": (None, 1.0),
} | {m: (0.0, 1.0) for m in ("roc_auc", "accuracy", "precision", "recall", "f1", "brier", "macro_f1", "macro_precision",
                               "macro_recall", "weighted_f1", "macro_roc_auc")}
assert set(METRIC_RANGE) == {m for metrics in TASK_METRICS.values() for m in metrics}


# What driftloop writes beside a batch's own columns (the prediction log, the labelled window): a batch
# column of the same name would be overwritten, so none may take one (nor ``probability.<class>``).
PROBABILITY, PREDICTION, PARTITION = "probability", "prediction", "batch_id"
WRITTEN_COLUMNS = (PROBABILITY, PREDICTION, PARTITION, "scored", "model_version", "label_arrived")


class SchemaConfig(_Strict):
    """What the columns of a batch mean. Column types come from here, never from values."""

    id_column: str
    timestamp_column: str
    target: str
    task: Task = Field("binary_classification", description="binary_classification (target 0/1), "
                       "multiclass_classification (target one of columns.classes) or regression (numeric target)")
    classes: tuple[str, ...] = Field((), description="multiclass_classification: every class the target can take, in the "
                                     "order reports list them (a label outside them is a data error)")
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    segments: tuple[str, ...] = ()
    passthrough: tuple[str, ...] = Field((), description="columns kept in the prediction log (an upstream score, a load time), never features")
    timestamp_unit: Literal["s", "ms", "us", "ns"] | None = Field(
        None, description="integer timestamps: seconds, ms, us or ns since 1970-01-01 UTC; unset, numbers in the timestamp "
        "column are an error (read as nanoseconds they would all fall on 1970-01-01)")

    @property
    def features(self) -> tuple[str, ...]:
        return self.numeric + self.categorical

    @field_validator("classes", mode="before")
    @classmethod
    def _classes_as_text(cls, value):
        # YAML reads `[0, 1, 2]` as numbers; a label file's 0 and a config's 0 must be the same class.
        return tuple(str(v) for v in value) if isinstance(value, (list, tuple)) else value

    @model_validator(mode="after")
    def _classes_fit_the_task(self) -> "SchemaConfig":
        if self.task != "multiclass_classification":
            if self.classes:
                raise ValueError(f"classes is for task multiclass_classification; task {self.task} takes none")
            return self
        if len(set(self.classes)) != len(self.classes):
            raise ValueError(f"classes lists a class twice: {', '.join(self.classes)}")
        if len(self.classes) < 3:
            raise ValueError("multiclass_classification needs classes: every value the target can take, at least three "
                             "(for two, use task binary_classification with a 0/1 target)")
        return self

    @model_validator(mode="after")
    def _columns_are_distinct(self) -> "SchemaConfig":
        names = [self.id_column, self.timestamp_column, self.target, *self.features, *self.passthrough]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"columns listed twice in schema: {', '.join(dupes)}")
        taken = [n for n in names if n in WRITTEN_COLUMNS or n.startswith(f"{PROBABILITY}.")]
        if taken:
            raise ValueError(f"column {taken[0]!r} has a name driftloop writes into the prediction log ({', '.join(WRITTEN_COLUMNS)}, "
                             f"{PROBABILITY}.<class>), where it would be overwritten; rename it in the export and the config")
        unknown = [s for s in self.segments if s not in self.categorical]
        if unknown:
            raise ValueError(f"segments must be categorical features, got: {', '.join(unknown)}")
        return self


# Settings renamed to say what they count; an old name is a one-line error naming the new one.
_RENAMED = {
    "window_days": "window_batches", "holdout_days": "holdout_batches", "cooldown_days": "cooldown_batches",
    "label_deadline_days": "label_deadline_batches",
}


class _Counted(_Strict):
    """A section whose windows count batches (of ``data.cadence``), not calendar days."""

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, raw):
        old = sorted(k for k in (raw if isinstance(raw, dict) else {}) if k in _RENAMED and _RENAMED[k] in cls.model_fields)
        if old:
            raise ValueError(f"{old[0]} is now {_RENAMED[old[0]]}: it counts batches (one per data.cadence), not days")
        return raw


_CADENCE = {"daily": 1, "weekly": 7}


class DataConfig(_Strict):
    """Where batches, labels, quarantine and the prediction log live, and how often a batch arrives."""

    incoming: Path
    labels: Path
    quarantine: Path
    predictions: Path
    reports: Path
    reference: Path
    requests: Path | None = Field(None, description="the request log of `driftloop serve` (default: a requests folder beside "
                                  "data.incoming); each served period becomes a batch in data.incoming")
    batch_format: Literal["parquet", "csv"] = "parquet"
    cadence: str = Field("daily", description="how often a batch arrives: daily, weekly or a number of days like 14d")
    timestamp_tolerance_days: int = Field(
        1, ge=0, description="a batch's rows may be this many days outside its period (the days up to its id) before it is refused")

    @field_validator("cadence")
    @classmethod
    def _known_cadence(cls, value: str) -> str:
        if value not in _CADENCE and not (value.endswith("d") and value[:-1].isdigit() and int(value[:-1]) >= 1):
            raise ValueError(f"cadence {value!r} is not daily, weekly or a number of days like 14d")
        return value

    @model_validator(mode="after")
    def _folders_apart(self) -> "DataConfig":
        """Each folder holds one kind of file: a quarantine inside incoming would be read as a batch the
        next run, a prediction log inside labels as labels."""
        folders = {name: getattr(self, name).absolute() for name in ("incoming", "labels", "quarantine", "predictions", "reports")}
        folders["requests"] = self.request_log.absolute()
        names = list(folders)
        for i, first in enumerate(names):
            for second in names[i + 1:]:
                a, b = folders[first], folders[second]
                if a == b or a in b.parents or b in a.parents:
                    inner, outer = (first, second) if b in a.parents else (second, first)
                    how = "the same folder as" if a == b else "inside"
                    raise ValueError(f"data.{inner} ({folders[inner]}) is {how} data.{outer} ({folders[outer]}); give each "
                                     "its own folder (the defaults are data/incoming, data/labels, data/quarantine, ...)")
        holders = [name for name, folder in folders.items() if folder in self.reference.absolute().parents]
        if holders:
            raise ValueError(f"data.reference ({self.reference}) is inside data.{holders[0]}; keep it apart "
                             f"(the default is data/reference/reference.parquet)")
        return self

    @property
    def request_log(self) -> Path:
        return self.requests if self.requests is not None else self.incoming.parent / "requests"

    @property
    def period_days(self) -> int:
        """Days one batch covers: the unit of every window counted in batches."""
        return _CADENCE.get(self.cadence) or int(self.cadence[:-1])

    def batches_between(self, earlier: date, later: date) -> int:
        """Whole batch periods from ``earlier`` to ``later``."""
        return (later - earlier).days // self.period_days


class ValidationConfig(_Strict):
    suite: Path
    default_severity: Literal["critical", "warning"] = "critical"


NUMERIC_METHODS = ("wasserstein", "ks", "psi", "jensen_shannon")
CATEGORICAL_METHODS = ("linf", "jensen_shannon", "chi2")
DEFAULT_MAX_DISTANCE = {"wasserstein": 0.1, "ks": 0.1, "psi": 0.1, "jensen_shannon": 0.1, "linf": 0.05, "chi2": 0.1}


# Distances that are shares or probabilities stop at 1; normed Wasserstein (in standard deviations)
# and PSI do not.
_BOUNDED_DISTANCES = ("ks", "jensen_shannon", "linf", "chi2")


def _check_distance(name: str, method: str | None, value: float | None) -> None:
    if value is None:
        return
    if value < 0 or (method in _BOUNDED_DISTANCES and value > 1):
        bound = "from 0 to 1" if method in _BOUNDED_DISTANCES else "0 or more"
        raise ValueError(f"{name} is {value}, but a {method or 'drift'} distance is {bound}")


class ColumnDriftRule(_Strict):
    method: Literal["wasserstein", "ks", "psi", "jensen_shannon", "linf", "chi2"] | None = None
    max_distance: float | None = Field(None, ge=0)


class DriftConfig(_Strict):
    """A column drifts only when its change is significant *and* large enough."""

    alpha: float = Field(0.05, gt=0, lt=1, description="adjusted p-value below this: significant")
    correction: Literal["bh", "bonferroni", "none"] = "bh"
    numeric_method: Literal["wasserstein", "ks", "psi", "jensen_shannon"] = "wasserstein"
    categorical_method: Literal["linf", "jensen_shannon", "chi2"] = "linf"
    max_distance: dict[str, float] = Field(
        DEFAULT_MAX_DISTANCE, description="per method: a distance above this is large enough to matter"
    )
    columns: dict[str, ColumnDriftRule] = Field({}, description="per-column method or max_distance")
    min_rows: int = Field(50, ge=2, description="fewer non-null values: the column is not tested")
    reference_sample: int = Field(200_000, ge=100, description="numeric values kept per column in the profile")
    bins: int = Field(10, ge=2, le=100, description="quantile bins of the reference for PSI and Jensen-Shannon")

    @field_validator("max_distance")
    @classmethod
    def _every_method_has_a_threshold(cls, given: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(given) - set(DEFAULT_MAX_DISTANCE))
        if unknown:
            raise ValueError(f"max_distance for unknown method(s) {', '.join(unknown)}; methods: {', '.join(DEFAULT_MAX_DISTANCE)}")
        for method, value in given.items():
            _check_distance(f"max_distance.{method}", method, value)
        return DEFAULT_MAX_DISTANCE | given  # methods not named keep their default


class MetricThreshold(_Strict):
    floor: float | None = Field(None, description="alarm when the metric falls below this")
    max_drop: float | None = Field(
        None, ge=0, description="alarm when reference minus current exceeds this"
    )


class EvaluationConfig(_Counted):
    window_batches: int = Field(3, ge=1, description="newest labelled batches evaluated together (the matured window)")
    min_labelled_rows: int = Field(500, ge=1)
    decision_threshold: float = Field(0.5, gt=0, lt=1)
    n_bootstrap: int = Field(500, ge=100, description="replicates for metric intervals")
    bootstrap_max_rows: int = Field(
        20_000, ge=0, description="windows with more rows get analytic intervals (DeLong for AUC, Wilson for rates, delta "
        "method otherwise; CBPE's from the labelings' variance): as honest there, and linear in rows")
    confidence: float = Field(0.95, gt=0.5, lt=1)
    label_deadline_batches: int = Field(7, ge=1, description="a prediction this many batches old without a label is overdue")
    min_segment_rows: int = Field(200, ge=10, description="smaller segments are reported, not judged")
    max_failed_share: float = Field(0.01, ge=0, le=1, description="share of rows that may fail to score before it is a signal")
    fairness_columns: tuple[str, ...] = Field((), description="protected attributes whose groups are compared for fairness gaps")
    max_positive_rate_gap: float = Field(0.25, ge=0, le=1, description="largest allowed gap in predicted positive rate between segments")
    max_tpr_gap: float = Field(0.25, ge=0, le=1, description="largest allowed gap in true-positive rate between segments")
    thresholds: dict[str, MetricThreshold] = Field(
        {"roc_auc": MetricThreshold(floor=0.7, max_drop=0.05)},
        description="per metric; for lower-is-better metrics (log_loss, brier, mae, rmse) floor is a ceiling and max_drop a rise",
    )


class PolicyConfig(_Counted):
    retrain_on_performance: bool = True
    retrain_on_drift: bool = Field(True, description="retrain on feature drift alone (max_drifted_share); off: drift is a watch signal")
    max_drifted_share: float = Field(
        0.3, gt=0, le=1, description="retrain when at least this share of features drifted"
    )
    cooldown_batches: int = Field(3, ge=0, description="batches from one retrain request to the next")
    retry_after_batches: int = Field(
        5, ge=1, description="after a version failed the gate, drift alone retrains again only once this many labelled "
        "batches newer than its holdout are in (a performance breach retrains anyway)")


class TrainingConfig(_Counted):
    window_batches: int = Field(5, ge=1, description="labelled batches a retrained version learns from, before the holdout")
    holdout_batches: int = Field(1, ge=1, description="newest labelled batches kept out of training, for the gate")
    reference_holdout_share: float = Field(0.2, gt=0, lt=1)
    min_train_rows: int = Field(1000, ge=10)
    estimator: str | None = Field(
        None, pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$",
        description="module:function returning an unfitted scikit-learn estimator or pipeline (default: gradient boosting)")
    estimator_params: dict[str, Any] = Field({}, description="keyword arguments of the estimator function")
    estimator_path: Path = Field(Path("."), description="folder the estimator's module is imported from (relative to the config)")
    # The default estimator's settings (HistGradientBoosting); ignored when `estimator` is set.
    max_iter: int = Field(200, ge=1)
    learning_rate: float = Field(0.1, gt=0, le=1)
    max_leaf_nodes: int = Field(31, ge=2)
    random_state: int = 0

    @property
    def code_path(self) -> Path | None:
        """The folder an own estimator's classes are imported from wherever its model is loaded (None: the default model)."""
        return self.estimator_path if self.estimator is not None else None


class GateMetricRule(_Strict):
    """One metric's rules for a challenger, judged on the holdout neither model trained on."""

    min_value: float | None = Field(None, description="challenger must reach at least this (higher-is-better metrics)")
    max_value: float | None = Field(None, description="challenger must stay at or below this (log_loss, brier, mae, rmse)")
    min_improvement: float = Field(
        0.0,
        description="lower bound of the paired interval of the improvement (challenger better by, in the metric's "
        "direction) must exceed this; negative allows that much loss",
    )
    max_segment_loss: float | None = Field(
        None, ge=0, description="no segment may be worse than the champion by more, in this metric's units (None: not judged)")


class GateConfig(_Strict):
    """When a challenger is good enough to be offered for promotion (in the spirit of TFX's evaluator)."""

    rules: dict[str, GateMetricRule] = {"roc_auc": GateMetricRule(min_value=0.7, min_improvement=0.0, max_segment_loss=0.05)}
    min_segment_rows: int = Field(200, ge=10, description="smaller segments are reported, not judged")
    confidence: float = Field(0.95, gt=0.5, lt=1)
    n_bootstrap: int = Field(1000, ge=100)
    bootstrap_max_rows: int = Field(
        20_000, ge=0, description="holdouts with more rows get paired analytic intervals (paired DeLong, delta method)")
    seed: int = 0

    @model_validator(mode="before")
    @classmethod
    def _segment_loss_per_metric(cls, raw):
        if isinstance(raw, dict) and "max_segment_loss" in raw:
            raise ValueError("max_segment_loss is now set per metric, in its own units: gate.rules.<metric>.max_segment_loss "
                             "(0.05 suits roc_auc; an MAE needs its own scale)")
        return raw


def _psycopg3(url: str) -> str:
    """SQLAlchemy 2.0 reads ``postgresql://`` as psycopg2, which is not installed; psycopg 3 is."""
    return "postgresql+psycopg://" + url.removeprefix("postgresql://") if url.startswith("postgresql://") else url


class RegistryConfig(_Strict):
    tracking_uri: str
    artifact_root: Path
    experiment: str
    model_name: str
    http_retries: int = Field(
        3, ge=0, le=10, description="retries of each request to an MLflow server, with exponential backoff: with the flow's "
        "own two retries, a server that is down fails a run in about 30 s (MLflow's own default, 7, took about 4 minutes)")
    http_timeout_seconds: int = Field(120, ge=1, description="how long one request to an MLflow server may take")

    _driver = field_validator("tracking_uri")(_psycopg3)


class LedgerConfig(_Strict):
    url: str = Field("sqlite:///data/ledger.db", description="any SQLAlchemy URL; a relative sqlite path is relative to the config")
    claim_lease_minutes: int = Field(
        60, ge=1, description="how long a run's claim on a batch holds without a step finishing (each one renews it); a "
        "claim left by a process that is gone is taken over at once on the same machine, after the lease elsewhere")

    _driver = field_validator("url")(_psycopg3)


class ExecutionConfig(_Strict):
    """Where a batch is scored and summarised: in the flow's own process (the default: nothing to
    start), or in partitions on a Dask cluster when ``dask_address`` (or DRIFTLOOP_DASK_ADDRESS) is set."""

    dask_address: str | None = Field(None, description="a Dask scheduler, e.g. tcp://10.0.0.5:8786")
    partition_rows: int = Field(250_000, ge=1, description="rows per partition sent to the cluster")
    connect_timeout_seconds: float = Field(10.0, gt=0, description="how long to wait for the scheduler before failing the run")


class ReportsConfig(_Strict):
    """The charts each monitor run draws (logged with its MLflow run, linked from its Prefect report)."""

    charts: bool = Field(True, description="draw the charts at all")
    trend_batches: int = Field(30, ge=2, description="the newest monitored batches each trend chart covers")
    max_drift_charts: int = Field(8, ge=0, description="distribution charts per run: the drifted columns whose distance "
                                  "is largest relative to its max_distance")


class AlertsConfig(_Strict):
    """Where `make up`'s automations send a person's notifications (driftloop_flows.alerts)."""

    webhook_url: str | None = Field(None, description="a Slack incoming-webhook URL, or any endpoint taking a JSON POST; "
                                    "none: no notifications (DRIFTLOOP_ALERT_WEBHOOK replaces it)")
    kind: Literal["webhook", "slack"] = Field("webhook", description="webhook: POST {subject, body, text} as JSON; slack: a Slack message")


class ServeConfig(_Strict):
    """`driftloop serve`: the champion behind HTTP, its request batching and its request log."""

    host: str = Field("127.0.0.1", description="address to listen on (127.0.0.1: this machine only)")
    port: int = Field(SERVE_PORT, ge=1, le=65535)
    workers: int = Field(1, ge=1, le=64, description="server processes sharing the port, each with its own request log segment")
    log_requests: bool = Field(True, description="log every answered request (the loop's input); off only to measure what logging costs")
    max_batch_delay_ms: float = Field(
        2.0, ge=0, le=1000, description="how long a request may wait for others arriving with it to share one model call")
    max_batch_rows: int = Field(2048, ge=1, description="rows scored in one model call, at most")
    max_request_rows: int = Field(10_000, ge=1, description="rows one request may carry (a larger one is refused with 413)")
    poll_seconds: float = Field(5.0, gt=0, description="how often the champion alias is read (a promotion is served within this)")
    close_grace_minutes: float = Field(
        10.0, ge=0, description="a period's requests become its batch this long after the period ends (late writers, clock skew)")
    period_anchor: date = Field(date(1970, 1, 4), description="a day a period ends on; with data.cadence it places every period "
                                "(the default, a Sunday, ends weekly periods on Sundays)")
    max_p99_ms: float | None = Field(None, gt=0, description="a served batch whose p99 latency is above this is a watch signal")
    max_error_rate: float | None = Field(None, ge=0, le=1, description="a served batch with a larger share of failed requests is a watch signal")


class DemoConfig(_Strict):
    """A shipped scenario facing a quality incident, covariate and concept drift: churn (daily
    parquet batches) or loans (weekly CSV exports, a boolean feature, passthrough columns)."""

    scenario: Literal["churn", "loans"] = "churn"
    seed: int = 7
    reference_start: date = date(2026, 1, 1)
    reference_days: int = Field(10, ge=7, description="days the reference rows span (rows per batch period should match production)")
    reference_rows: int = Field(20_000, ge=1000)
    first_day: date = date(2026, 2, 1)
    n_batches: int = Field(18, ge=1, description="batches, one per data.cadence, the first dated first_day")
    rows_per_batch: int = Field(2_000, ge=100)
    label_delay_days: int = Field(2, ge=0, description="days from a batch to the arrival of its labels")
    quality_incident_batch: int = 4
    covariate_shift_batch: int = 7
    concept_drift_batch: int = 10


# What a classifier is judged on when the config names nothing; a regressor's metrics are in the
# target's units, so it has no default.
_TASK_DEFAULTS = {
    "multiclass_classification": {
        ("evaluation", "thresholds"): {"macro_f1": {"max_drop": 0.05}},
        ("gate", "rules"): {"macro_f1": {"min_improvement": 0.0, "max_segment_loss": 0.05}},
    },
}


class Config(_Strict):
    columns: SchemaConfig
    data: DataConfig
    validation: ValidationConfig
    drift: DriftConfig = DriftConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    policy: PolicyConfig = PolicyConfig()
    training: TrainingConfig = TrainingConfig()
    gate: GateConfig = GateConfig()
    registry: RegistryConfig
    ledger: LedgerConfig = LedgerConfig()
    execution: ExecutionConfig = ExecutionConfig()
    reports: ReportsConfig = ReportsConfig()
    alerts: AlertsConfig = AlertsConfig()
    serve: ServeConfig = ServeConfig()
    demo: DemoConfig = DemoConfig()

    @model_validator(mode="before")
    @classmethod
    def _defaults_of_the_task(cls, raw):
        columns = raw.get("columns") if isinstance(raw, dict) else None
        task = columns.get("task") if isinstance(columns, dict) else None
        for (section, key), default in _TASK_DEFAULTS.get(task, {}).items():
            given = raw.get(section, {})
            if isinstance(given, dict) and key not in given:
                raw[section] = {**given, key: default}
        if task == "regression":
            unset = [f"{section}.{key}" for section, key in (("evaluation", "thresholds"), ("gate", "rules"))
                     if not isinstance(raw.get(section), dict) or key not in raw[section]]
            if unset:
                raise ValueError(f"a regressor has no default {' or '.join(unset)}: MAE and RMSE are in the target's units; "
                                 "set them, e.g. evaluation.thresholds: {mae: {max_drop: 2.0}}")
        return raw

    @model_validator(mode="after")
    def _drift_rules_name_known_columns(self) -> "Config":
        outputs = ("prediction",) if self.columns.task != "binary_classification" else ("probability", "prediction")
        known = {*self.columns.features, self.columns.target, *outputs}
        unknown = sorted(set(self.drift.columns) - known)
        if unknown:
            raise ValueError(f"drift.columns names unknown column(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        unknown_fairness = sorted(set(self.evaluation.fairness_columns) - set(self.columns.categorical))
        if unknown_fairness:
            raise ValueError(f"evaluation.fairness_columns must be categorical features, got: {', '.join(unknown_fairness)}")
        if self.evaluation.fairness_columns and self.columns.task != "binary_classification":
            raise ValueError(f"evaluation.fairness_columns: the gaps measured (positive rate, true-positive rate) are a binary "
                             f"classifier's; a {self.columns.task} model takes none (per-segment metrics cover columns.segments)")
        metrics = TASK_METRICS[self.columns.task]
        for section, named in (("evaluation.thresholds", self.evaluation.thresholds), ("gate.rules", self.gate.rules)):
            unknown = sorted(set(named) - set(metrics))
            if unknown:
                raise ValueError(f"{section} names {', '.join(unknown)}, not a {self.columns.task} metric; use one of {', '.join(metrics)}")
        numeric_outputs = {"regression": ("prediction", self.columns.target), "binary_classification": ("probability",)}
        kinds = {c: "numeric" for c in (*self.columns.numeric, *numeric_outputs.get(self.columns.task, ()))}
        for column, rule in self.drift.columns.items():
            allowed = NUMERIC_METHODS if kinds.get(column) == "numeric" else CATEGORICAL_METHODS
            if rule.method and rule.method not in allowed:
                raise ValueError(f"drift.columns.{column}.method {rule.method!r} does not fit the column; use one of {', '.join(allowed)}")
            default = self.drift.numeric_method if kinds.get(column) == "numeric" else self.drift.categorical_method
            _check_distance(f"drift.columns.{column}.max_distance", rule.method or default, rule.max_distance)
        return self

    @model_validator(mode="after")
    def _thresholds_within_the_metrics_range(self) -> "Config":
        """A floor of 1.5 on an AUC, or a gate minimum of 2, could never be met: say so now, not at the first retrain."""
        def check(name: str, metric: str, value: float | None, kind: str) -> None:
            low, high = METRIC_RANGE[metric]
            if value is None:
                return
            span = None if low is None or high is None else high - low
            if kind == "level" and ((low is not None and value < low) or (high is not None and value > high)):
                bounds = f"from {low:g} to {high:g}" if span is not None else f"{low:g} or more" if low is not None else f"at most {high:g}"
                raise ValueError(f"{name} is {value:g}, but {metric} is {bounds}")
            if kind == "change" and span is not None and abs(value) > span:
                raise ValueError(f"{name} is {value:g}, but {metric} cannot change by more than {span:g}")

        for metric, rule in self.evaluation.thresholds.items():
            check(f"evaluation.thresholds.{metric}.floor", metric, rule.floor, "level")
            check(f"evaluation.thresholds.{metric}.max_drop", metric, rule.max_drop, "change")
        for metric, rule in self.gate.rules.items():
            check(f"gate.rules.{metric}.min_value", metric, rule.min_value, "level")
            check(f"gate.rules.{metric}.max_value", metric, rule.max_value, "level")
            check(f"gate.rules.{metric}.min_improvement", metric, rule.min_improvement, "change")
            check(f"gate.rules.{metric}.max_segment_loss", metric, rule.max_segment_loss, "change")
        return self


def _resolve(raw: dict, base: Path) -> dict:
    """Make the path settings absolute, relative to the config file's folder."""

    def fix(section: str, key: str) -> None:
        value = raw.get(section, {}).get(key)
        if isinstance(value, str) and not Path(value).is_absolute():
            raw[section][key] = str((base / value).resolve())

    for key in ("incoming", "labels", "quarantine", "predictions", "reports", "reference", "requests"):
        fix("data", key)
    fix("validation", "suite")
    fix("registry", "artifact_root")
    if isinstance(raw.get("training"), dict):
        raw["training"].setdefault("estimator_path", ".")
        fix("training", "estimator_path")
    for section, key, default in (("registry", "tracking_uri", None), ("ledger", "url", LedgerConfig().url)):
        uri = raw.get(section, {}).get(key, default) if isinstance(raw.get(section, {}), dict) else None
        if isinstance(uri, str) and uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
            raw.setdefault(section, {})[key] = "sqlite:///" + str((base / uri[len("sqlite:///"):]).resolve())
    return raw


class _UniqueKeys(yaml.SafeLoader):
    """YAML that refuses a key given twice in one mapping (plain PyYAML keeps the last one silently)."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor` merges; a key given after it overrides it
                continue
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice (lines {seen[key] + 1} and {key_node.start_mark.line + 1}); keep one",
                    key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def _sections(raw: dict) -> str | None:
    """What is wrong with the file's sections as such (an empty one, a list where settings belong), if anything."""
    for name, value in raw.items():
        field = Config.model_fields.get(name)
        if field is None or not isinstance(field.annotation, type) or not issubclass(field.annotation, BaseModel):
            continue  # an unknown section: pydantic names it
        if value is None:
            return f"section {name} is empty; give it settings or remove it"
        if not isinstance(value, dict):
            return f"section {name} must be a mapping of settings (key: value), not a {type(value).__name__}"
    return None


def load_config(path: str | Path) -> Config:
    """Read and validate the YAML config; every problem becomes one ConfigError line.

    ``DRIFTLOOP_TRACKING_URI``, when set, replaces ``registry.tracking_uri``: the same file then
    works against an MLflow server (``make up`` sets it, or point it at a team's server).
    ``DRIFTLOOP_DASK_ADDRESS`` likewise replaces ``execution.dask_address``, and
    ``DRIFTLOOP_ALERT_WEBHOOK`` ``alerts.webhook_url``.
    Not ``MLFLOW_TRACKING_URI``: MLflow itself rewrites that one in-process on every
    ``set_tracking_uri``, so it cannot say what the user asked for.
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"config file {path} is a folder; pass the YAML file in it, e.g. --config {path / 'driftloop.yaml'}")
    if not path.is_file():
        raise ConfigError(f"config file {path} not found: pass --config or create driftloop.yaml")
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeys) or {}
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is invalid: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8") from None
    except yaml.constructor.ConstructorError as exc:
        raise ConfigError(f"config file {path} is invalid: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}".replace("\n", " ")) from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path} must hold a mapping of sections, got {type(raw).__name__}")
    if problem := _sections(raw):
        raise ConfigError(f"config file {path} is invalid: {problem}")
    if os.environ.get(TRACKING_URI_ENV) and isinstance(raw.get("registry"), dict):
        raw["registry"]["tracking_uri"] = os.environ[TRACKING_URI_ENV]
    if os.environ.get(DASK_ADDRESS_ENV) and isinstance(raw.setdefault("execution", {}), dict):
        raw["execution"]["dask_address"] = os.environ[DASK_ADDRESS_ENV]
    if os.environ.get(ALERT_WEBHOOK_ENV) and isinstance(raw.setdefault("alerts", {}), dict):
        raw["alerts"]["webhook_url"] = os.environ[ALERT_WEBHOOK_ENV]
    try:
        return Config.model_validate(_resolve(raw, path.parent.resolve()))
    except ValidationError as exc:
        problems = "; ".join(  # a check across sections has no location of its own: its message names the setting
            f"{'.'.join(str(p) for p in err['loc']) + ': ' if err['loc'] else ''}{err['msg'].removeprefix('Value error, ')}"
            for err in exc.errors()
        )
        raise ConfigError(f"config file {path} is invalid: {problems}") from None
