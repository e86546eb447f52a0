"""Drift against a fitted reference profile, with numpy and scipy only.

A column drifts only when its change is both *significant* (p-value below ``alpha``
after correcting for the number of columns tested) and *large* (effect at least the
configured minimum), so a huge batch does not flag a trivial shift and 15 columns
tested at once do not raise a false alarm on most clean batches.

Numeric columns: two-sample Kolmogorov-Smirnov against a sorted reference sample;
the effect is the KS distance itself (largest gap between the two CDFs).
Categorical columns: chi-square on the reference/current count table; the effect is
the largest change in any category's share (unseen categories included).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from driftloop.config import DriftConfig


@dataclass(frozen=True)
class NumericProfile:
    values: np.ndarray  # sorted, non-null reference sample
    null_share: float


@dataclass(frozen=True)
class CategoricalProfile:
    levels: tuple[str, ...]
    counts: np.ndarray
    null_share: float


@dataclass(frozen=True)
class ReferenceProfile:
    """What a monitor run compares against; fitted once and saved with the model version."""

    n_rows: int
    numeric: dict[str, NumericProfile] = field(default_factory=dict)
    categorical: dict[str, CategoricalProfile] = field(default_factory=dict)

    def save(self, path: Path) -> Path:
        arrays = {f"num::{c}": p.values for c, p in self.numeric.items()}
        arrays |= {f"cat::{c}": p.counts for c, p in self.categorical.items()}
        meta = {
            "n_rows": self.n_rows,
            "numeric": {c: {"null_share": p.null_share} for c, p in self.numeric.items()},
            "categorical": {c: {"null_share": p.null_share, "levels": list(p.levels)} for c, p in self.categorical.items()},
        }
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        np.savez_compressed(path, **arrays)
        return path

    @classmethod
    def load(cls, path: Path) -> "ReferenceProfile":
        with np.load(path) as data:
            meta = json.loads(data["meta"].tobytes().decode())
            numeric = {c: NumericProfile(data[f"num::{c}"], m["null_share"]) for c, m in meta["numeric"].items()}
            categorical = {
                c: CategoricalProfile(tuple(m["levels"]), data[f"cat::{c}"], m["null_share"])
                for c, m in meta["categorical"].items()
            }
        return cls(meta["n_rows"], numeric, categorical)


def _numeric_values(series: pd.Series) -> np.ndarray:
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    return values[np.isfinite(values)]


def _categorical_values(series: pd.Series) -> pd.Series:
    return series.dropna().astype(str)


def fit_reference(
    frame: pd.DataFrame, numeric: tuple[str, ...], categorical: tuple[str, ...], cfg: DriftConfig, seed: int = 0
) -> ReferenceProfile:
    rng = np.random.default_rng(seed)
    num = {}
    for column in numeric:
        values = _numeric_values(frame[column])
        if len(values) > cfg.reference_sample:
            values = rng.choice(values, cfg.reference_sample, replace=False)
        num[column] = NumericProfile(np.sort(values), float(frame[column].isna().mean()))
    cat = {}
    for column in categorical:
        counts = _categorical_values(frame[column]).value_counts().sort_index()
        cat[column] = CategoricalProfile(tuple(counts.index), counts.to_numpy(dtype="int64"), float(frame[column].isna().mean()))
    return ReferenceProfile(len(frame), num, cat)


@dataclass(frozen=True)
class ColumnDrift:
    column: str
    kind: str
    method: str
    statistic: float | None
    p_value: float | None
    p_adjusted: float | None
    effect: float | None
    effect_name: str
    alpha: float
    min_effect: float
    n_reference: int
    n_current: int
    drifted: bool
    note: str = ""

    @property
    def why(self) -> str:
        if self.note:
            return self.note
        return (
            f"{self.method} p_adj={self.p_adjusted:.2g} {'<' if self.p_adjusted < self.alpha else '>='} alpha {self.alpha}, "
            f"{self.effect_name}={self.effect:.3f} {'>=' if self.effect >= self.min_effect else '<'} {self.min_effect}"
        )


@dataclass(frozen=True)
class DriftReport:
    columns: tuple[ColumnDrift, ...]
    correction: str
    alpha: float

    @property
    def drifted_columns(self) -> tuple[str, ...]:
        return tuple(c.column for c in self.columns if c.drifted)

    @property
    def share_drifted(self) -> float:
        tested = [c for c in self.columns if c.p_value is not None]
        return len(self.drifted_columns) / len(tested) if tested else 0.0

    @property
    def drifted(self) -> bool:
        return bool(self.drifted_columns)

    def records(self) -> list[dict]:
        return [asdict(c) | {"why": c.why} for c in self.columns]


def ks_distance(reference_sorted: np.ndarray, current: np.ndarray) -> float:
    """Largest gap between the two empirical CDFs, evaluated at every observed value."""
    current_sorted = np.sort(current)
    points = np.concatenate([reference_sorted, current_sorted])
    cdf_ref = np.searchsorted(reference_sorted, points, side="right") / len(reference_sorted)
    cdf_cur = np.searchsorted(current_sorted, points, side="right") / len(current_sorted)
    return float(np.max(np.abs(cdf_ref - cdf_cur)))


def _ks(profile: NumericProfile, current: np.ndarray) -> tuple[float, float, float]:
    n, m = len(profile.values), len(current)
    distance = ks_distance(profile.values, current)
    effective_n = max(int(round(n * m / (n + m))), 1)
    return distance, float(stats.kstwo.sf(distance, effective_n)), distance


def _chi2(profile: CategoricalProfile, current: pd.Series) -> tuple[float, float, float]:
    cur_counts = current.value_counts()
    levels = list(profile.levels) + sorted(set(cur_counts.index) - set(profile.levels))
    ref = np.array([*profile.counts, *np.zeros(len(levels) - len(profile.levels))], dtype="float64")
    cur = cur_counts.reindex(levels, fill_value=0).to_numpy(dtype="float64")
    table = np.vstack([ref, cur])
    table = table[:, table.sum(axis=0) > 0]
    effect = float(np.max(np.abs(ref / ref.sum() - cur / cur.sum())))
    if table.shape[1] < 2:  # one category on both sides: nothing can have changed
        return 0.0, 1.0, effect
    statistic, p_value, _, _ = stats.chi2_contingency(table, correction=False)
    return float(statistic), float(p_value), effect


def _adjust(p_values: np.ndarray, correction: str) -> np.ndarray:
    if len(p_values) == 0 or correction == "none":
        return p_values
    if correction == "bonferroni":
        return np.minimum(p_values * len(p_values), 1.0)
    return stats.false_discovery_control(p_values, method="bh")


def _test_column(profile: ReferenceProfile, frame: pd.DataFrame, column: str, cfg: DriftConfig) -> ColumnDrift:
    """The raw, uncorrected test of one column (``p_adjusted`` and ``drifted`` are set later)."""
    if column in profile.numeric:
        ref, cur = profile.numeric[column], _numeric_values(frame[column])
        kind, method, effect_name, min_effect, n_ref, test = "numeric", "ks", "ks_distance", cfg.min_effect_numeric, len(ref.values), _ks
    elif column in profile.categorical:
        ref, cur = profile.categorical[column], _categorical_values(frame[column])
        kind, method, effect_name, min_effect, n_ref, test = "categorical", "chi2", "max_share_change", cfg.min_effect_categorical, int(ref.counts.sum()), _chi2
    else:
        raise KeyError(f"column {column!r} is not in the reference profile; refit it with this column")
    common = dict(column=column, kind=kind, method=method, effect_name=effect_name, alpha=cfg.alpha,
                  min_effect=min_effect, n_reference=n_ref, n_current=len(cur), p_adjusted=None, drifted=False)
    if len(cur) < cfg.min_rows or n_ref < cfg.min_rows:
        note = f"not tested: {len(cur)} current / {n_ref} reference non-null rows, need {cfg.min_rows}"
        return ColumnDrift(statistic=None, p_value=None, effect=None, note=note, **common)
    statistic, p_value, effect = test(ref, cur)
    return ColumnDrift(statistic=statistic, p_value=p_value, effect=effect, **common)


def detect_drift(profile: ReferenceProfile, frame: pd.DataFrame, columns: tuple[str, ...], cfg: DriftConfig) -> DriftReport:
    """Test each column of ``frame`` against the profile; the columns form one family for the correction."""
    raw = [_test_column(profile, frame, column, cfg) for column in columns]
    tested = [r for r in raw if r.p_value is not None]
    adjusted = dict(zip((r.column for r in tested), _adjust(np.array([r.p_value for r in tested]), cfg.correction)))
    results = []
    for r in raw:
        if r.column in adjusted:
            p_adj = float(adjusted[r.column])
            r = replace(r, p_adjusted=p_adj, drifted=p_adj < r.alpha and r.effect >= r.min_effect)
        results.append(r)
    return DriftReport(tuple(results), cfg.correction, cfg.alpha)
