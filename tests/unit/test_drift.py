import numpy as np
import pandas as pd
import pytest

from driftloop.config import DriftConfig
from driftloop.drift import ReferenceProfile, detect_drift, fit_reference, ks_distance
from scipy import stats

CFG = DriftConfig(alpha=0.01, min_effect_numeric=0.1, min_effect_categorical=0.05)


def _frame(rng, n, shift=0.0, share_a=0.5):
    return pd.DataFrame({
        "x": rng.normal(shift, 1, n),
        "y": rng.normal(0, 1, n),
        "c": rng.choice(["a", "b"], n, p=[share_a, 1 - share_a]),
    })


def test_ks_distance_matches_scipy(rng):
    a, b = rng.normal(size=3000), rng.normal(0.1, 1, size=500)
    assert ks_distance(np.sort(a), b) == pytest.approx(stats.ks_2samp(a, b).statistic)


def test_same_distribution_is_not_flagged(rng):
    profile = fit_reference(_frame(rng, 20000), ("x", "y"), ("c",), CFG)
    report = detect_drift(profile, _frame(rng, 2000), ("x", "y", "c"), CFG)
    assert not report.drifted and report.share_drifted == 0


def test_a_large_shift_is_flagged_with_its_effect_and_threshold(rng):
    profile = fit_reference(_frame(rng, 20000), ("x", "y"), ("c",), CFG)
    report = detect_drift(profile, _frame(rng, 2000, shift=0.6, share_a=0.7), ("x", "y", "c"), CFG)
    assert report.drifted_columns == ("x", "c")
    x = next(c for c in report.columns if c.column == "x")
    assert x.effect > 0.2 and x.min_effect == 0.1 and x.p_adjusted < 0.01
    assert "ks_distance" in x.why


def test_a_significant_but_tiny_shift_is_not_flagged_at_large_size(rng):
    profile = fit_reference(_frame(rng, 50000), ("x", "y"), ("c",), CFG)
    report = detect_drift(profile, _frame(rng, 200000, shift=0.05), ("x",), CFG)
    x = report.columns[0]
    assert x.p_adjusted < 0.01  # significant ...
    assert not x.drifted  # ... but below the minimum effect


def test_unseen_category_counts_towards_the_share_change(rng):
    profile = fit_reference(_frame(rng, 5000), (), ("c",), CFG)
    current = pd.DataFrame({"c": ["a"] * 500 + ["new"] * 500})
    column = detect_drift(profile, current, ("c",), CFG).columns[0]
    assert column.drifted and column.effect >= 0.5


def test_all_null_and_tiny_columns_are_not_tested_instead_of_raising(rng):
    profile = fit_reference(_frame(rng, 5000), ("x",), ("c",), CFG)
    current = pd.DataFrame({"x": [np.nan] * 100, "c": ["a"] * 10 + [None] * 90})
    report = detect_drift(profile, current, ("x", "c"), CFG)
    assert [c.drifted for c in report.columns] == [False, False]
    assert all(c.note.startswith("not tested") for c in report.columns)


def test_constant_columns_on_both_sides_do_not_drift():
    profile = fit_reference(pd.DataFrame({"k": [1.0] * 500, "c": ["a"] * 500}), ("k",), ("c",), CFG)
    report = detect_drift(profile, pd.DataFrame({"k": [1.0] * 200, "c": ["a"] * 200}), ("k", "c"), CFG)
    assert not report.drifted


def test_bonferroni_is_stricter_than_no_correction(rng):
    profile = fit_reference(_frame(rng, 20000), ("x", "y"), (), CFG)
    current = _frame(rng, 2000, shift=0.1)
    raw = detect_drift(profile, current, ("x", "y"), CFG.model_copy(update={"correction": "none"})).columns[0]
    bonf = detect_drift(profile, current, ("x", "y"), CFG.model_copy(update={"correction": "bonferroni"})).columns[0]
    assert bonf.p_adjusted == pytest.approx(min(raw.p_value * 2, 1.0))


def test_profile_round_trips_through_a_file(rng, tmp_path):
    profile = fit_reference(_frame(rng, 3000), ("x", "y"), ("c",), CFG)
    loaded = ReferenceProfile.load(profile.save(tmp_path / "ref.npz"))
    assert loaded.n_rows == 3000
    np.testing.assert_array_equal(loaded.numeric["x"].values, profile.numeric["x"].values)
    assert loaded.categorical["c"].levels == ("a", "b")
    np.testing.assert_array_equal(loaded.categorical["c"].counts, profile.categorical["c"].counts)
