"""The drift engine: each detector, the decision rule, false-alarm control, edge cases."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from driftloop.config import ColumnDriftRule, DriftConfig
from driftloop.drift import ReferenceProfile, detect_drift, fit_reference, ks_test
from driftloop.errors import ConfigError

CFG = DriftConfig(alpha=0.05)
NUMERIC = tuple(f"x{i}" for i in range(20))
CATEGORICAL = tuple(f"c{i}" for i in range(5))
LEVELS = np.array(["a", "b", "c", "d"], dtype=object)


def _table(rng, n, shifted=(), shift=0.0):
    """20 standard-normal numeric columns (some shifted by ``shift`` SD) and 5 categorical ones."""
    data = {c: rng.normal(shift if c in shifted else 0.0, 1.0, n) for c in NUMERIC}
    data |= {c: rng.choice(LEVELS, n, p=[0.4, 0.3, 0.2, 0.1]) for c in CATEGORICAL}
    return pd.DataFrame(data)


@pytest.mark.parametrize("ties", [False, True])
def test_ks_matches_scipy_with_and_without_ties(rng, ties):
    a, b = rng.normal(size=3000), rng.normal(0.1, 1, size=700)
    if ties:
        a, b = np.round(a, 1), np.round(b, 1)
    distance, p_value = ks_test(np.sort(a), np.sort(b))
    expected = stats.ks_2samp(a, b, method="asymp")
    assert distance == pytest.approx(expected.statistic)
    assert p_value == pytest.approx(expected.pvalue, rel=0.05)


def test_on_clean_pairs_false_alarms_are_controlled_per_column_and_per_dataset():
    """200 clean pairs: the tests are calibrated, and BH keeps any-column alarms under alpha."""
    rng = np.random.default_rng(2026)
    per_column = np.zeros(25)
    dataset_alarms = engine_alarms = 0
    for _ in range(200):
        profile = fit_reference(_table(rng, 2000), NUMERIC, CATEGORICAL, CFG, seed=int(rng.integers(1 << 30)))
        report = detect_drift(profile, _table(rng, 1000), NUMERIC + CATEGORICAL, CFG)
        per_column += [c.p_value < CFG.alpha for c in report.columns]  # p_value is before the correction
        dataset_alarms += any(c.p_adjusted < CFG.alpha for c in report.columns)  # significant after BH, at any size
        engine_alarms += report.drifted
    low, high = stats.binom.ppf([0.0005, 0.9995], 200, CFG.alpha)
    assert np.all((per_column >= low) & (per_column <= high)), per_column  # each test is calibrated
    assert dataset_alarms <= stats.binom.ppf(0.99, 200, CFG.alpha)  # any-column alarm rate <= alpha
    assert engine_alarms <= dataset_alarms  # the distance rule only ever removes alarms


def test_a_small_shift_in_three_of_twenty_columns_is_found_and_nothing_else():
    rng = np.random.default_rng(7)
    shifted = ("x3", "x8", "x15")
    profile = fit_reference(_table(rng, 10_000), NUMERIC, CATEGORICAL, CFG)
    report = detect_drift(profile, _table(rng, 10_000, shifted, shift=0.2), NUMERIC + CATEGORICAL, CFG)
    assert report.drifted_columns == shifted
    for column in (c for c in report.columns if c.drifted):
        assert column.method == "wasserstein" and 0.15 < column.distance < 0.25


def test_two_million_rows_with_a_negligible_shift_are_not_flagged():
    rng = np.random.default_rng(11)
    reference = pd.DataFrame({"x": rng.normal(0, 1, 2_000_000)})
    current = pd.DataFrame({"x": rng.normal(0.01, 1, 2_000_000)})
    column = detect_drift(fit_reference(reference, ("x",), (), CFG), current, ("x",), CFG).columns[0]
    assert column.p_adjusted < CFG.alpha  # the test sees it (against a 200,000-value reference sample) ...
    assert column.distance < 0.02 and not column.drifted  # ... and the distance says it does not matter
    assert "significant" in column.why and "small" in column.why


@pytest.mark.parametrize("method, shifted_distance", [("wasserstein", 0.5), ("ks", 0.19), ("psi", 0.2), ("jensen_shannon", 0.2)])
def test_every_numeric_method_flags_a_half_sd_shift_and_reports_its_threshold(rng, method, shifted_distance):
    cfg = CFG.model_copy(update={"numeric_method": method})
    profile = fit_reference(pd.DataFrame({"x": rng.normal(0, 1, 20_000)}), ("x",), (), cfg)
    clean = detect_drift(profile, pd.DataFrame({"x": rng.normal(0, 1, 3000)}), ("x",), cfg).columns[0]
    moved = detect_drift(profile, pd.DataFrame({"x": rng.normal(0.5, 1, 3000)}), ("x",), cfg).columns[0]
    assert not clean.drifted and moved.drifted
    assert moved.method == method and moved.max_distance == 0.1 and moved.distance > shifted_distance * 0.8


@pytest.mark.parametrize("method", ["linf", "jensen_shannon", "chi2"])
def test_every_categorical_method_flags_a_mix_change(rng, method):
    cfg = CFG.model_copy(update={"categorical_method": method})
    profile = fit_reference(pd.DataFrame({"c": rng.choice(LEVELS, 20_000, p=[0.4, 0.3, 0.2, 0.1])}), (), ("c",), cfg)
    clean = detect_drift(profile, pd.DataFrame({"c": rng.choice(LEVELS, 3000, p=[0.4, 0.3, 0.2, 0.1])}), ("c",), cfg).columns[0]
    moved = detect_drift(profile, pd.DataFrame({"c": rng.choice(LEVELS, 3000, p=[0.7, 0.1, 0.1, 0.1])}), ("c",), cfg).columns[0]
    assert not clean.drifted and moved.drifted and moved.test == "chi2"


def test_a_column_rule_overrides_the_method_and_threshold(rng):
    cfg = CFG.model_copy(update={"columns": {"x": ColumnDriftRule(method="psi", max_distance=5.0)}})
    profile = fit_reference(pd.DataFrame({"x": rng.normal(0, 1, 5000)}), ("x",), (), cfg)
    column = detect_drift(profile, pd.DataFrame({"x": rng.normal(1, 1, 2000)}), ("x",), cfg).columns[0]
    assert (column.method, column.max_distance, column.drifted) == ("psi", 5.0, False)


def test_a_method_of_the_wrong_kind_is_refused_with_the_valid_options(rng):
    cfg = CFG.model_copy(update={"columns": {"c": ColumnDriftRule(method="wasserstein")}})
    profile = fit_reference(pd.DataFrame({"c": ["a", "b"] * 100}), (), ("c",), cfg)
    with pytest.raises(ConfigError, match="use one of linf, jensen_shannon, chi2"):
        detect_drift(profile, pd.DataFrame({"c": ["a"] * 100}), ("c",), cfg)


def test_unseen_categories_count_towards_the_change_and_are_named(rng):
    profile = fit_reference(pd.DataFrame({"c": rng.choice(["a", "b"], 5000)}), (), ("c",), CFG)
    column = detect_drift(profile, pd.DataFrame({"c": ["a"] * 500 + ["new"] * 500}), ("c",), CFG).columns[0]
    assert column.drifted and column.distance >= 0.5 and "unseen categories: new" in column.note


def test_all_null_and_tiny_columns_are_not_tested_instead_of_raising(rng):
    profile = fit_reference(pd.DataFrame({"x": rng.normal(size=5000), "c": rng.choice(["a", "b"], 5000)}), ("x",), ("c",), CFG)
    current = pd.DataFrame({"x": [np.nan] * 100, "c": ["a"] * 10 + [None] * 90})
    report = detect_drift(profile, current, ("x", "c"), CFG)
    assert [c.drifted for c in report.columns] == [False, False]
    assert all(c.note.startswith("not tested") and c.p_value is None for c in report.columns)
    assert report.n_tested == 0 and report.share_drifted == 0.0


def test_constant_columns_do_not_drift_unless_they_move():
    profile = fit_reference(pd.DataFrame({"k": [1.0] * 500, "c": ["a"] * 500}), ("k",), ("c",), CFG)
    same = detect_drift(profile, pd.DataFrame({"k": [1.0] * 200, "c": ["a"] * 200}), ("k", "c"), CFG)
    moved = detect_drift(profile, pd.DataFrame({"k": [2.0] * 200, "c": ["a"] * 200}), ("k",), CFG)
    assert not same.drifted
    assert moved.drifted and moved.columns[0].distance == 1.0


def test_bonferroni_multiplies_by_the_number_of_columns(rng):
    profile = fit_reference(_table(rng, 5000), NUMERIC[:2], (), CFG)
    current = _table(rng, 2000, ("x0",), shift=0.1)
    raw = detect_drift(profile, current, NUMERIC[:2], CFG.model_copy(update={"correction": "none"})).columns[0]
    bonf = detect_drift(profile, current, NUMERIC[:2], CFG.model_copy(update={"correction": "bonferroni"})).columns[0]
    assert bonf.p_adjusted == pytest.approx(min(raw.p_value * 2, 1.0))


def test_profile_round_trips_through_a_file(rng, tmp_path):
    profile = fit_reference(_table(rng, 3000), NUMERIC[:2], CATEGORICAL[:1], CFG)
    loaded = ReferenceProfile.load(profile.save(tmp_path / "ref.npz"))
    current = _table(rng, 1000, ("x0",), shift=0.5)
    assert detect_drift(loaded, current, NUMERIC[:2] + CATEGORICAL[:1], CFG) == detect_drift(profile, current, NUMERIC[:2] + CATEGORICAL[:1], CFG)
