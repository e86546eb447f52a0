"""Charts: which ones are drawn, from which results, and that they are real images."""

import numpy as np
import pandas as pd
import pytest

from driftloop.charts import coverage_trend, drift_charts, drift_heatmap, gate_chart, metric_trends
from driftloop.drift import CategoricalProfile, ColumnDrift, DriftSummary, NumericProfile, ReferenceProfile
from driftloop.history import DriftValue, MetricValue, RunRecord

PNG = b"\x89PNG\r\n\x1a\n"


def _drift(column: str, kind: str, distance: float, drifted: bool) -> ColumnDrift:
    return ColumnDrift(column, kind, "ks" if kind == "numeric" else "chi2", 0.3, 1e-9, 1e-8 if drifted else 0.5, 0.05,
                       "wasserstein" if kind == "numeric" else "jensenshannon", distance, 0.1, 5000, 2000, drifted)


def test_only_drifted_columns_are_drawn_the_largest_relative_to_their_threshold_first(tmp_path, rng):
    reference = np.sort(rng.normal(size=5000))
    profile = ReferenceProfile(5000, numeric={c: NumericProfile(reference, np.quantile(reference, np.linspace(0.1, 0.9, 9)),
                                                                np.full(10, 0.1), 1.0, 0.0) for c in ("age", "tenure", "income")},
                               categorical={"region": CategoricalProfile(("north", "south"), np.array([2500, 2500]), 0.0)})
    summary = DriftSummary({c: np.sort(rng.normal(0.5, size=2000)) for c in ("age", "tenure", "income")},
                           {"region": pd.Series([1800, 200, 5], index=["north", "south", "west"])})
    columns = [_drift("age", "numeric", 0.2, True), _drift("tenure", "numeric", 0.9, True), _drift("income", "numeric", 0.5, False),
               _drift("region", "categorical", 0.4, True)]

    paths = drift_charts(profile, summary, columns, tmp_path, "2026-02-03", limit=2)

    assert [p.name for p in paths] == ["drift-tenure.png", "drift-region.png"]  # 9x and 4x their max_distance; age (2x) is cut
    assert all(p.read_bytes().startswith(PNG) and p.stat().st_size > 5000 for p in paths)


def test_trend_charts_are_drawn_from_history_rows_and_skipped_when_there_is_nothing_to_draw(tmp_path):
    batches = [f"2026-02-{d:02d}" for d in range(1, 8)]
    metrics = [MetricValue(b, source, "", "roc_auc", v, v - 0.02, v + 0.02, 0.9, 0.8, 0.05, v + 0.02 < 0.8, "")
               for i, b in enumerate(batches) for source, v in (("realized", 0.9 - 0.03 * i), ("estimated", 0.88 - 0.02 * i))]
    drift = [DriftValue(b, "features", c, "ks", 0.1, 0.01, 0.02, 0.05, "wasserstein", 0.05 * i, 0.1, 0.05 * i > 0.1, "")
             for i, b in enumerate(batches) for c in ("age", "tenure")]
    runs = [RunRecord(b, "1", pd.Timestamp("2026-02-08"), None, 2000, "passed", "no drift", 0.0, "ok", (), "", 0,
                      min(1.0, 0.2 * i), 10 * i, 0.0, 1e6) for i, b in enumerate(batches)]

    drawn = [metric_trends(metrics, ["roc_auc", "accuracy"], tmp_path / "m.png"), drift_heatmap(drift, tmp_path / "d.png"),
             coverage_trend(runs, tmp_path / "c.png")]

    assert all(p is not None and p.read_bytes().startswith(PNG) for p in drawn)
    assert metric_trends([], ["roc_auc"], tmp_path / "none.png") is None and not (tmp_path / "none.png").exists()
    assert drift_heatmap([], tmp_path / "none.png") is None and coverage_trend([], tmp_path / "none.png") is None


@pytest.mark.parametrize("n_segments", [0, 1, 2, 5])
def test_the_gate_chart_draws_every_paired_difference_whatever_their_number(tmp_path, n_segments):
    from driftloop.comparison import Comparison, MetricDifference
    from driftloop.policy import GateRule, GateVerdict

    diff = lambda m, d: MetricDifference(m, 0.8 + d, 0.8, d, d - 0.02, d + 0.02, 0.95)  # noqa: E731
    comparison = Comparison(5000, {"roc_auc": diff("roc_auc", 0.03), "accuracy": diff("accuracy", -0.05)}, None,
                            {f"plan=p{i}": {"roc_auc": diff("roc_auc", 0.01 * i)} for i in range(n_segments)},
                            {f"plan=p{i}": 500 for i in range(n_segments)})
    verdict = GateVerdict(False, (GateRule("accuracy improvement", -0.05, 0.0, False, "worse"),))
    path = gate_chart(comparison, verdict, "1", tmp_path / "gate.png")
    assert path.read_bytes().startswith(PNG)
