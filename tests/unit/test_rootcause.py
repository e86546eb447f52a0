"""Root cause first: drift weighed by what the champion relies on, costly segments, and concept drift said plainly."""

from driftloop.drift import ColumnDrift, DriftReport, ReferenceProfile
from driftloop.evaluation import MetricCheck, PerformanceReport, SegmentPerformance
from driftloop.rootcause import explain


def _column(name: str, distance: float, drifted: bool = True) -> ColumnDrift:
    return ColumnDrift(name, "numeric", "ks", 0.3, 1e-9, 1e-8 if drifted else 0.5, 0.05, "wasserstein", distance, 0.1, 5000, 2000, drifted)


def _check(value: float, reference: float, breached: bool) -> MetricCheck:
    return MetricCheck("roc_auc", value, value - 0.01, value + 0.01, reference, 0.75, 0.05, breached, f"roc_auc={value} ...")


def _performance(breached: bool, segments=()) -> PerformanceReport:
    return PerformanceReport(("2026-02-10",), 4000, {"roc_auc": 0.7 if breached else 0.85}, (_check(0.7 if breached else 0.85, 0.86, breached),),
                             segments)


def test_a_large_shift_in_a_feature_the_champion_ignores_ranks_below_a_smaller_one_it_relies_on():
    features = DriftReport((_column("region_code", 0.9), _column("tenure_months", 0.3), _column("age", 0.05, drifted=False)), "bh", 0.05)

    cause = explain(features, None, _performance(breached=True), (), {"region_code": 0.001, "tenure_months": 0.08, "age": 0.02})

    assert [s.column for s in cause.suspects] == ["tenure_months", "region_code"]  # 3x and relied on, then 9x and ignored
    assert not cause.concept_drift and "tenure_months" in cause.summary.split(";")[0] and "performance fell" in cause.summary
    assert "importance 0.080" in cause.suspects[0].why and "3.0x max_distance 0.1" in cause.suspects[0].why


def test_a_drop_with_nothing_label_free_moving_is_called_concept_drift_in_plain_words():
    quiet = DriftReport((_column("tenure_months", 0.02, drifted=False),), "bh", 0.05)
    cause = explain(quiet, quiet, _performance(breached=True), (), {"tenure_months": 0.1})
    assert cause.concept_drift and not cause.suspects
    assert "nothing label-free explains the drop" in cause.summary and "concept drift" in cause.summary and "roc_auc" in cause.summary


def test_segments_are_ranked_by_share_of_rows_times_their_loss_and_gains_are_left_out():
    segments = (SegmentPerformance("plan=basic", 400, (_check(0.60, 0.85, True),)),  # 10% x 0.25 = 0.025
                SegmentPerformance("plan=premium", 2400, (_check(0.80, 0.86, True),)),  # 60% x 0.06 = 0.036
                SegmentPerformance("plan=standard", 1200, (_check(0.90, 0.86, False),)))  # better than its holdout
    cause = explain(DriftReport((), "bh", 0.05), None, _performance(True, segments), (), {})
    assert [(g.segment, round(g.contribution, 3)) for g in cause.segments] == [("plan=premium", 0.036), ("plan=basic", 0.025)]
    assert "plan=premium" in cause.summary


def test_without_stored_importances_drift_alone_ranks_and_nothing_to_explain_is_said_so():
    features = DriftReport((_column("a", 0.2), _column("b", 0.5)), "bh", 0.05)
    assert [s.column for s in explain(features, None, None, (), {}).suspects] == ["b", "a"]
    assert explain(DriftReport((), "bh", 0.05), None, _performance(False), (), {}).summary.startswith("Nothing to explain")


def test_the_champion_profile_keeps_a_permutation_importance_per_feature_through_save_and_load(candidate, tmp_path):
    importance = candidate.profile.importance
    assert set(importance) == set(candidate.input_example.columns)  # every feature the model reads
    ranked = sorted(importance, key=importance.get, reverse=True)
    assert importance[ranked[0]] > 0.005 and importance[ranked[0]] > 5 * abs(importance[ranked[-1]])
    loaded = ReferenceProfile.load(candidate.profile.save(tmp_path / "profile.npz"))
    assert loaded.importance == importance
