"""Pictures of a model's monitoring: the only module that imports matplotlib.

matplotlib, because its PNGs are what the MLflow UI previews inline among a run's artifacts and
what an offline HTML page can embed as bytes: no JavaScript bundle, no network. Figures are made
with ``matplotlib.figure.Figure`` (no pyplot), so nothing global (backend, open figures) changes in
the process that draws them. Every chart says in its title what it shows and which threshold
applies, taken from the result it draws (a ``ColumnDrift``'s ``why``, a metric's floor).
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from driftloop.config import ReportsConfig
from driftloop.drift import CategoricalProfile, ColumnDrift, DriftSummary, NumericProfile, ReferenceProfile
from driftloop.history import DriftValue, History, MetricValue, RunRecord
from driftloop.report import MonitorReport

REFERENCE, CURRENT = "#4C72B0", "#DD8452"
_POINTS = 512  # an ECDF drawn through this many quantiles looks the same as one through every value


def _margins(figure: Figure, left: float = 0.8, bottom: float = 0.6, top: float = 0.5, right: float = 0.3) -> None:
    """Margins in inches, set by each chart for its labels before anything takes space beside the axes
    (a colorbar): a tight bounding box would measure every text and draw the figure twice, a third of
    a monitor run's charting time."""
    width, height = figure.get_size_inches()
    figure.subplots_adjust(left=left / width, bottom=bottom / height, top=1 - top / height, right=1 - right / width)


def _save(figure: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    return path


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text)


def _ecdf_points(sorted_values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    shares = np.linspace(0, 1, min(_POINTS, len(sorted_values)))
    return np.quantile(sorted_values, shares, method="inverted_cdf"), shares


def drift_chart(column: ColumnDrift, reference: NumericProfile | CategoricalProfile, current: np.ndarray | pd.Series,
                path: Path, batch_id: str) -> Path:
    """Reference against this batch: ECDFs of a numeric column, shares per level of a categorical one."""
    figure = Figure(figsize=(7, 3.6))
    ax = figure.subplots()
    _margins(figure, bottom=1.0 if isinstance(reference, CategoricalProfile) and len(reference.levels) > 5 else 0.6, top=0.6)
    if isinstance(reference, NumericProfile):
        for values, label, color in ((reference.values, "reference", REFERENCE), (np.asarray(current), batch_id, CURRENT)):
            if len(values):
                x, y = _ecdf_points(values)
                ax.step(x, y, where="post", label=f"{label} ({len(values):,} values)", color=color)
        ax.set_ylabel("share of rows at or below")
        ax.set_xlabel(column.column)
    else:
        counts = pd.Series(current, dtype="float64")
        levels = list(dict.fromkeys([*reference.levels, *map(str, counts.index)]))
        ref = pd.Series(reference.counts, index=list(reference.levels), dtype="float64").reindex(levels, fill_value=0)
        cur = pd.Series(counts.to_numpy(), index=list(map(str, counts.index))).reindex(levels, fill_value=0)
        x = np.arange(len(levels))
        ax.bar(x - 0.2, ref / max(ref.sum(), 1), width=0.4, label="reference", color=REFERENCE)
        ax.bar(x + 0.2, cur / max(cur.sum(), 1), width=0.4, label=batch_id, color=CURRENT)
        ax.set_xticks(x, levels, rotation=30 if len(levels) > 5 else 0, ha="right" if len(levels) > 5 else "center")
        ax.set_ylabel("share of rows")
    ax.set_title(f"{column.column}: {'DRIFTED' if column.drifted else 'not drifted'}\n{column.why}", fontsize=9)
    ax.legend(fontsize=8)
    return _save(figure, path)


def drift_charts(profile: ReferenceProfile, summary: DriftSummary, columns: Iterable[ColumnDrift], folder: Path,
                 batch_id: str, limit: int) -> list[Path]:
    """One chart per drifted column of ``columns`` (the ``limit`` largest distances relative to their threshold)."""
    drifted = sorted((c for c in columns if c.drifted and c.distance is not None),
                     key=lambda c: c.distance / c.max_distance if c.max_distance else math.inf, reverse=True)[:limit]
    paths = []
    for column in drifted:
        reference = profile.numeric.get(column.column) or profile.categorical.get(column.column)
        current = summary.numeric.get(column.column)
        if current is None:
            current = summary.categorical.get(column.column)
        if reference is not None and current is not None:
            paths.append(drift_chart(column, reference, current, folder / f"drift-{_slug(column.column)}.png", batch_id))
    return paths


def metric_trends(values: Sequence[MetricValue], metrics: Sequence[str], path: Path) -> Path | None:
    """Each thresholded metric over the batches: the realized value on the matured window with its
    interval band, the estimate before labels (dashed), the floor and the reference minus max_drop."""
    by_metric = {m: [v for v in values if v.metric == m and v.value is not None] for m in metrics}
    shown = [m for m in metrics if by_metric[m]]
    if not shown:
        return None
    figure = Figure(figsize=(8, 2.6 * len(shown)))
    axes = np.atleast_1d(figure.subplots(len(shown), 1, sharex=True, squeeze=False)[:, 0])
    _margins(figure, bottom=1.0, top=0.35)
    figure.subplots_adjust(hspace=0.12)
    batches = sorted({v.batch_id for v in values})
    where = {b: i for i, b in enumerate(batches)}
    for ax, metric in zip(axes, shown):
        for source, style in (("realized", "-o"), ("estimated", "--s")):
            points = [v for v in by_metric[metric] if v.source == source]
            if not points:
                continue
            x = [where[v.batch_id] for v in points]
            ax.plot(x, [v.value for v in points], style, markersize=3, label=f"{source}", color=REFERENCE if source == "realized" else CURRENT)
            if all(v.low is not None and v.high is not None for v in points):
                ax.fill_between(x, [v.low for v in points], [v.high for v in points], alpha=0.2,
                                color=REFERENCE if source == "realized" else CURRENT)
        thresholds = [v for v in by_metric[metric] if v.source == "realized"] or by_metric[metric]
        newest = thresholds[-1]
        if newest.floor is not None:
            ax.axhline(newest.floor, color="crimson", linestyle=":", label=f"floor {newest.floor:g}")
        if newest.max_drop is not None and newest.reference is not None:
            ax.axhline(newest.reference - newest.max_drop, color="purple", linestyle=":",
                       label=f"reference {newest.reference:.3f} - max_drop {newest.max_drop:g}")
        breached = [v for v in by_metric[metric] if v.breached]
        if breached:
            ax.plot([where[v.batch_id] for v in breached], [v.value for v in breached], "x", color="crimson", markersize=8,
                    label="past its threshold")
        ax.set_ylabel(metric)
        ax.legend(fontsize=7, loc="best")
    axes[0].set_title("Metrics by monitored batch: realized on the matured window (band: interval), estimated before labels", fontsize=9)
    axes[-1].set_xticks(range(len(batches)), batches, rotation=45, ha="right", fontsize=7)
    return _save(figure, path)


def drift_heatmap(values: Sequence[DriftValue], path: Path) -> Path | None:
    """Features x batches: distance over its max_distance (1 is the threshold), drifted cells marked."""
    values = [v for v in values if v.family == "features" and v.distance is not None and v.max_distance]
    if not values:
        return None
    batches = sorted({v.batch_id for v in values})
    columns = sorted({v.column for v in values})
    ratio = np.full((len(columns), len(batches)), np.nan)
    row, col = {c: i for i, c in enumerate(columns)}, {b: i for i, b in enumerate(batches)}
    drifted = []
    for v in values:
        ratio[row[v.column], col[v.batch_id]] = v.distance / v.max_distance
        if v.drifted:
            drifted.append((col[v.batch_id], row[v.column]))
    figure = Figure(figsize=(max(5, 0.35 * len(batches) + 3), max(3, 0.3 * len(columns) + 1.5)))
    ax = figure.subplots()
    _margins(figure, left=0.25 + 0.055 * max(map(len, columns)), bottom=1.0, top=0.55, right=0.45)
    image = ax.imshow(ratio, aspect="auto", cmap="viridis", vmin=0, vmax=max(2.0, float(np.nanmax(ratio))))
    figure.colorbar(image, ax=ax, label="distance / max_distance")
    if drifted:
        ax.plot(*zip(*drifted), "x", color="white", markersize=6)
    ax.set_yticks(range(len(columns)), columns, fontsize=7)
    ax.set_xticks(range(len(batches)), batches, rotation=45, ha="right", fontsize=7)
    ax.set_title("Feature drift by batch: distance / max_distance\n(x: drifted, the test and the distance past their thresholds)", fontsize=9)
    return _save(figure, path)


def coverage_trend(runs: Sequence[RunRecord], path: Path) -> Path | None:
    """Share of the horizon's predictions with a label, and predictions past the label deadline without one."""
    runs = [r for r in runs if r.label_coverage is not None]
    if not runs:
        return None
    figure = Figure(figsize=(8, 2.8))
    ax = figure.subplots()
    _margins(figure, bottom=1.0, top=0.4, right=0.8)
    x = np.arange(len(runs))
    ax.plot(x, [r.label_coverage for r in runs], "-o", markersize=3, color=REFERENCE, label="label coverage")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("label coverage")
    overdue = ax.twinx()
    overdue.bar(x, [r.labels_overdue or 0 for r in runs], alpha=0.3, color="crimson", label="overdue predictions")
    overdue.set_ylabel("overdue predictions")
    ax.set_zorder(overdue.get_zorder() + 1)  # the coverage line over the bars
    ax.patch.set_visible(False)
    ax.set_xticks(x, [r.batch_id for r in runs], rotation=45, ha="right", fontsize=7)
    ax.set_title("Labels: coverage of the logged predictions, and predictions overdue (past the label deadline)", fontsize=9)
    handles = [*ax.get_legend_handles_labels()[0], *overdue.get_legend_handles_labels()[0]]
    ax.legend(handles, [h.get_label() for h in handles], fontsize=7, loc="upper left")
    return _save(figure, path)


def trend_charts(history: History, thresholded: Sequence[str], last: int, folder: Path, prefix: str = "trend-") -> list[Path]:
    """The metric, drift and label trends of the newest ``last`` batches of ``history``, those with something to draw."""
    found = [metric_trends(history.metrics(last=last, segment=""), thresholded, folder / f"{prefix}metrics.png"),
             drift_heatmap(history.drift(last=last, family="features"), folder / f"{prefix}drift.png"),
             coverage_trend(history.runs(last=last), folder / f"{prefix}labels.png")]
    return [path for path in found if path is not None]


def monitor_charts(report: MonitorReport, profile: ReferenceProfile, summary: DriftSummary, history: History, cfg: ReportsConfig,
                   thresholded: Sequence[str], folder: Path) -> list[Path]:
    """A monitor run's charts into ``folder`` (emptied first: a rerun draws its own): the drifted columns'
    distributions and the trends of ``history``, which already holds this run."""
    shutil.rmtree(folder, ignore_errors=True)
    if not cfg.charts:
        return []
    return [*drift_charts(profile, summary, report.all_drift, folder, report.batch_id, cfg.max_drift_charts),
            *trend_charts(history, thresholded, cfg.trend_batches, folder)]


def gate_chart(comparison, verdict, champion_version: str, path: Path) -> Path:
    """The promotion gate's evidence: challenger minus champion on the same holdout rows, per metric,
    overall and per segment, with paired intervals (right of 0: the challenger is better)."""
    rows = [("overall", d) for d in comparison.overall.values()]
    rows += [(segment, d) for segment, by_metric in comparison.segments.items() for d in by_metric.values()]
    figure = Figure(figsize=(8, max(2.5, 0.32 * len(rows) + 1.4)))
    ax = figure.subplots()
    _margins(figure, left=0.3 + 0.055 * max(len(f"{scope}: {d.metric}") for scope, d in rows), bottom=0.6, top=0.55)
    y = np.arange(len(rows))[::-1]
    colors = ["#1b7f3b" if d.low > 0 else "crimson" if d.high < 0 else "#777777" for _, d in rows]
    ax.hlines(y, [d.low for _, d in rows], [d.high for _, d in rows], colors=colors, linewidth=2)
    ax.scatter([d.improvement for _, d in rows], y, color=colors, zorder=3, s=18)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(y, [f"{scope}: {d.metric}" for scope, d in rows], fontsize=7)
    ax.set_xlabel("challenger - champion (sign flipped where lower is better): positive is better")
    failed = "; ".join(r.rule for r in verdict.failed)
    ax.set_title(f"Gate {'PASSED' if verdict.passed else 'FAILED'} against champion v{champion_version} on {comparison.n_rows:,} "
                 f"holdout rows{': ' + failed if failed else ''}\n(paired intervals; green: credibly better, red: credibly worse)", fontsize=8)
    return _save(figure, path)
