"""Drift against a fitted reference profile, with numpy and scipy only.

Every column gets two numbers and a decision:

* a **test** that says whether the change is real: two-sample Kolmogorov-Smirnov for
  numeric columns, chi-square on the category counts for categorical ones; the p-values of
  all columns tested together are corrected for multiplicity (Benjamini-Hochberg by
  default, or Bonferroni), and a column is *significant* when its adjusted p-value is below
  ``alpha``;
* a **distance** that says whether the change is large, measured by the column's method
  (normed Wasserstein, KS, PSI or Jensen-Shannon for numeric columns; largest share change,
  Jensen-Shannon or Cramér's V for categorical ones), compared with ``max_distance``.

A column drifts only when it is significant *and* its distance exceeds ``max_distance``:
huge batches do not flag trivial shifts (the distance guards), and testing many columns
does not multiply false alarms (the correction guards). With Benjamini-Hochberg, the chance
that a clean batch flags any column at all is at most ``alpha`` (it controls the family-wise
error when nothing drifted); the distance rule can only lower it.

The reference is fitted once (a sorted sample, decile edges and moments for numeric
columns; category counts for categorical ones), saved with the model version, and reused by
every monitor run without reloading the training data.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial.distance import jensenshannon

from driftloop.config import CATEGORICAL_METHODS, NUMERIC_METHODS, DriftConfig
from driftloop.errors import ConfigError

_QUANTILE_GRID = np.linspace(0.0005, 0.9995, 1000)  # Wasserstein on 1,000 quantiles
_EPS = 1e-4  # floor on a bin share, so PSI stays finite where a bin is empty


@dataclass(frozen=True)
class NumericProfile:
    values: np.ndarray  # sorted, finite reference sample
    edges: np.ndarray  # inner decile edges of the full reference
    shares: np.ndarray  # reference share per bin (len(edges) + 1)
    std: float
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
    calibration: tuple[np.ndarray, np.ndarray] | None = None  # isotonic knots (score -> rate), for estimated performance
    # Per feature, how much the model's headline metric worsened on its holdout with that feature
    # shuffled (permutation importance, at training time): drift in a feature it relies on matters more.
    importance: dict[str, float] = field(default_factory=dict)

    def known(self, columns: tuple[str, ...]) -> tuple[str, ...]:
        """Those of ``columns`` the profile has a reference for."""
        return tuple(c for c in columns if c in self.numeric or c in self.categorical)

    def merge(self, other: "ReferenceProfile") -> "ReferenceProfile":
        return ReferenceProfile(self.n_rows, self.numeric | other.numeric, self.categorical | other.categorical,
                                self.calibration if other.calibration is None else other.calibration,
                                self.importance | other.importance)

    def save(self, path: Path) -> Path:
        arrays = {}
        for c, p in self.numeric.items():
            arrays |= {f"num::{c}::values": p.values, f"num::{c}::edges": p.edges, f"num::{c}::shares": p.shares}
        arrays |= {f"cat::{c}": p.counts for c, p in self.categorical.items()}
        if self.calibration is not None:
            arrays |= {"calibration::x": self.calibration[0], "calibration::y": self.calibration[1]}
        meta = {
            "n_rows": self.n_rows,
            "numeric": {c: {"null_share": p.null_share, "std": p.std} for c, p in self.numeric.items()},
            "categorical": {c: {"null_share": p.null_share, "levels": list(p.levels)} for c, p in self.categorical.items()},
            "importance": self.importance,
        }
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        np.savez_compressed(path, **arrays)
        return path

    @classmethod
    def load(cls, path: Path) -> "ReferenceProfile":
        with np.load(path) as data:
            meta = json.loads(data["meta"].tobytes().decode())
            numeric = {
                c: NumericProfile(data[f"num::{c}::values"], data[f"num::{c}::edges"], data[f"num::{c}::shares"], m["std"], m["null_share"])
                for c, m in meta["numeric"].items()
            }
            categorical = {
                c: CategoricalProfile(tuple(m["levels"]), data[f"cat::{c}"], m["null_share"]) for c, m in meta["categorical"].items()
            }
            calibration = (data["calibration::x"], data["calibration::y"]) if "calibration::x" in data else None
        return cls(meta["n_rows"], numeric, categorical, calibration, meta.get("importance", {}))  # none in profiles saved before


def _numeric_values(series: pd.Series) -> np.ndarray:
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    return values[np.isfinite(values)]


def _category_counts(series: pd.Series) -> pd.Series:
    counts = series.value_counts(dropna=True, sort=False)
    counts.index = counts.index.astype(str)
    return counts.groupby(level=0, sort=False).sum() if counts.index.has_duplicates else counts


def _bin_shares(edges: np.ndarray, values: np.ndarray) -> np.ndarray:
    counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)
    return counts / max(counts.sum(), 1)


def fit_numeric(values: np.ndarray, null_share: float, cfg: DriftConfig, rng: np.random.Generator) -> NumericProfile:
    edges = np.unique(np.quantile(values, np.linspace(0, 1, cfg.bins + 1)[1:-1])) if len(values) else np.array([])
    shares = _bin_shares(edges, values)
    if len(values) > cfg.reference_sample:
        values = rng.choice(values, cfg.reference_sample, replace=False)
    return NumericProfile(np.sort(values), edges, shares, float(np.std(values)) if len(values) else 0.0, null_share)


def fit_reference(
    frame: pd.DataFrame, numeric: tuple[str, ...], categorical: tuple[str, ...], cfg: DriftConfig, seed: int = 0
) -> ReferenceProfile:
    rng = np.random.default_rng(seed)
    num = {c: fit_numeric(_numeric_values(frame[c]), float(frame[c].isna().mean()), cfg, rng) for c in numeric}
    cat = {}
    for column in categorical:
        counts = _category_counts(frame[column]).sort_index()
        cat[column] = CategoricalProfile(tuple(counts.index), counts.to_numpy(dtype="int64"), float(frame[column].isna().mean()))
    return ReferenceProfile(len(frame), num, cat)


# --- results ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnDrift:
    column: str
    kind: str  # numeric | categorical
    test: str  # ks | chi2
    statistic: float | None  # the test's statistic
    p_value: float | None
    p_adjusted: float | None  # after the correction across the columns tested together
    alpha: float  # threshold on p_adjusted: significant below it
    method: str  # the distance used
    distance: float | None
    max_distance: float  # threshold on the distance: large above it
    n_reference: int
    n_current: int
    drifted: bool
    note: str = ""

    @property
    def why(self) -> str:
        if self.note:
            return self.note
        significant = self.p_adjusted < self.alpha
        large = self.distance > self.max_distance
        return (
            f"{self.test} p_adj={self.p_adjusted:.2g} {'<' if significant else '>='} alpha {self.alpha} "
            f"({'significant' if significant else 'not significant'}); {self.method}={self.distance:.3f} "
            f"{'>' if large else '<='} max_distance {self.max_distance} ({'large' if large else 'small'})"
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
    def n_tested(self) -> int:
        return sum(c.p_value is not None for c in self.columns)

    @property
    def share_drifted(self) -> float:
        return len(self.drifted_columns) / self.n_tested if self.n_tested else 0.0

    @property
    def drifted(self) -> bool:
        """The dataset-level verdict: on a clean batch this is True with probability <= alpha."""
        return bool(self.drifted_columns)

    def records(self) -> list[dict]:
        return [asdict(c) | {"why": c.why} for c in self.columns]


# --- tests and distances ------------------------------------------------------------------


def ks_test(reference_sorted: np.ndarray, current_sorted: np.ndarray) -> tuple[float, float]:
    """KS statistic and asymptotic p-value of two sorted samples.

    The gap between two right-continuous ECDFs is largest at an observed value, so both
    ECDFs are evaluated at every value of each sample (ties included, hence ``side="right"``
    on both sides); the queries are sorted, which keeps the binary searches cache-friendly.
    """
    n, m = len(reference_sorted), len(current_sorted)
    gap_at_current = np.abs(np.searchsorted(reference_sorted, current_sorted, side="right") / n
                            - np.searchsorted(current_sorted, current_sorted, side="right") / m).max()
    gap_at_reference = np.abs(np.searchsorted(reference_sorted, reference_sorted, side="right") / n
                              - np.searchsorted(current_sorted, reference_sorted, side="right") / m).max()
    distance = float(max(gap_at_current, gap_at_reference))
    effective_n = max(int(round(n * m / (n + m))), 1)
    return distance, float(stats.kstwo.sf(distance, effective_n))


def normed_wasserstein(profile: NumericProfile, current_sorted: np.ndarray) -> float:
    """Earth mover's distance on 1,000 quantiles, in reference standard deviations."""
    ref_q = profile.values[np.minimum((_QUANTILE_GRID * len(profile.values)).astype(int), len(profile.values) - 1)]
    cur_q = current_sorted[np.minimum((_QUANTILE_GRID * len(current_sorted)).astype(int), len(current_sorted) - 1)]
    w = float(np.mean(np.abs(ref_q - cur_q)))
    if profile.std == 0:  # a constant reference: any movement at all is a full-size change
        return 0.0 if w == 0 else 1.0
    return w / profile.std


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    e, a = np.maximum(expected, _EPS), np.maximum(actual, _EPS)
    return float(np.sum((a - e) * np.log(a / e)))


def js_distance(expected: np.ndarray, actual: np.ndarray) -> float:
    value = jensenshannon(expected, actual, base=2)
    return 0.0 if not np.isfinite(value) else float(value)


NUMERIC_DISTANCES = {
    "wasserstein": lambda profile, cur_sorted, ks: normed_wasserstein(profile, cur_sorted),
    "ks": lambda profile, cur_sorted, ks: ks,
    "psi": lambda profile, cur_sorted, ks: psi(profile.shares, _bin_shares(profile.edges, cur_sorted)),
    "jensen_shannon": lambda profile, cur_sorted, ks: js_distance(profile.shares, _bin_shares(profile.edges, cur_sorted)),
}
CATEGORICAL_DISTANCES = {
    "linf": lambda ref, cur, chi2, n: float(np.max(np.abs(ref - cur))),
    "jensen_shannon": lambda ref, cur, chi2, n: js_distance(ref, cur),
    "chi2": lambda ref, cur, chi2, n: float(np.sqrt(chi2 / n)),  # Cramér's V of the 2 x k table
}
assert set(NUMERIC_DISTANCES) == set(NUMERIC_METHODS) and set(CATEGORICAL_DISTANCES) == set(CATEGORICAL_METHODS)


def _method(column: str, kind: str, cfg: DriftConfig) -> tuple[str, float]:
    rule = cfg.columns.get(column)
    default = cfg.numeric_method if kind == "numeric" else cfg.categorical_method
    method = rule.method if rule and rule.method else default
    allowed = NUMERIC_METHODS if kind == "numeric" else CATEGORICAL_METHODS
    if method not in allowed:
        raise ConfigError(f"drift.columns.{column}.method {method!r} does not apply to a {kind} column; use one of {', '.join(allowed)}")
    threshold = rule.max_distance if rule and rule.max_distance is not None else cfg.max_distance[method]
    return method, threshold


def _test_numeric(column: str, profile: NumericProfile, current_sorted: np.ndarray, cfg: DriftConfig) -> ColumnDrift:
    method, threshold = _method(column, "numeric", cfg)
    common = dict(column=column, kind="numeric", test="ks", alpha=cfg.alpha, method=method, max_distance=threshold,
                  n_reference=len(profile.values), n_current=len(current_sorted), p_adjusted=None, drifted=False)
    if len(current_sorted) < cfg.min_rows or len(profile.values) < cfg.min_rows:
        note = f"not tested: {len(current_sorted)} current / {len(profile.values)} reference non-null values, need {cfg.min_rows}"
        return ColumnDrift(statistic=None, p_value=None, distance=None, note=note, **common)
    statistic, p_value = ks_test(profile.values, current_sorted)
    return ColumnDrift(statistic=statistic, p_value=p_value,
                       distance=NUMERIC_DISTANCES[method](profile, current_sorted, statistic), **common)


def _test_categorical(column: str, profile: CategoricalProfile, counts: pd.Series, cfg: DriftConfig) -> ColumnDrift:
    method, threshold = _method(column, "categorical", cfg)
    unseen = sorted(set(counts.index) - set(profile.levels))
    levels = list(profile.levels) + unseen  # categories the reference never saw count as their own
    ref = np.concatenate([profile.counts, np.zeros(len(unseen))]).astype("float64")
    cur = counts.reindex(levels, fill_value=0).to_numpy(dtype="float64")
    n_ref, n_cur = int(ref.sum()), int(cur.sum())
    common = dict(column=column, kind="categorical", test="chi2", alpha=cfg.alpha, method=method, max_distance=threshold,
                  n_reference=n_ref, n_current=n_cur, p_adjusted=None, drifted=False,
                  note=f"unseen categories: {', '.join(unseen[:5])}" if unseen else "")
    if n_cur < cfg.min_rows or n_ref < cfg.min_rows:
        common["note"] = f"not tested: {n_cur} current / {n_ref} reference non-null values, need {cfg.min_rows}"
        return ColumnDrift(statistic=None, p_value=None, distance=None, **common)
    table = np.vstack([ref, cur])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:  # one category on both sides: nothing can have changed
        statistic, p_value = 0.0, 1.0
    else:
        statistic, p_value = (float(v) for v in stats.chi2_contingency(table, correction=False)[:2])
    distance = CATEGORICAL_DISTANCES[method](ref / n_ref, cur / n_cur, statistic, n_ref + n_cur)
    return ColumnDrift(statistic=statistic, p_value=p_value, distance=distance, **common)


# --- summaries: what a part of a batch contributes, merged exactly ------------------------


@dataclass(frozen=True)
class DriftSummary:
    """What the tests read from a batch, per column: the sorted finite values of a numeric column and
    the category counts of a categorical one. Summaries of a batch's partitions merge into the
    summary of the whole batch, value for value, so a batch summarised in parts (on a Dask cluster)
    gets exactly the verdicts it gets in one piece."""

    numeric: dict[str, np.ndarray] = field(default_factory=dict)
    categorical: dict[str, pd.Series] = field(default_factory=dict)

    @classmethod
    def merge(cls, parts: "list[DriftSummary]") -> "DriftSummary":
        if len(parts) == 1:
            return parts[0]
        numeric = {c: np.sort(np.concatenate([p.numeric[c] for p in parts]), kind="stable")  # timsort merges the sorted runs
                   for c in parts[0].numeric}
        categorical = {c: pd.concat([p.categorical[c] for p in parts]).groupby(level=0, sort=False).sum()
                       for c in parts[0].categorical}
        return cls(numeric, categorical)


def summarise(profile: ReferenceProfile, frame: pd.DataFrame, columns: tuple[str, ...]) -> DriftSummary:
    numeric, categorical = {}, {}
    for column in columns:
        if column in profile.numeric:
            numeric[column] = np.sort(_numeric_values(frame[column]))
        elif column in profile.categorical:
            categorical[column] = _category_counts(frame[column])
        else:
            raise ConfigError(f"column {column!r} is not in the reference profile; retrain so the profile includes it")
    return DriftSummary(numeric, categorical)


def adjust(p_values: np.ndarray, correction: str) -> np.ndarray:
    if len(p_values) == 0 or correction == "none":
        return p_values
    if correction == "bonferroni":
        return np.minimum(p_values * len(p_values), 1.0)
    return stats.false_discovery_control(p_values, method="bh")


def detect_drift(profile: ReferenceProfile, frame: pd.DataFrame, columns: tuple[str, ...], cfg: DriftConfig) -> DriftReport:
    """Test each column of ``frame`` against the profile; the columns form one family for the correction."""
    return test_summary(profile, summarise(profile, frame, columns), columns, cfg)


def test_summary(profile: ReferenceProfile, summary: DriftSummary, columns: tuple[str, ...], cfg: DriftConfig) -> DriftReport:
    """``detect_drift`` on a batch already summarised (in one piece, or merged from its partitions)."""
    raw = [_test_numeric(c, profile.numeric[c], summary.numeric[c], cfg) if c in summary.numeric
           else _test_categorical(c, profile.categorical[c], summary.categorical[c], cfg) for c in columns]
    tested = [r for r in raw if r.p_value is not None]
    adjusted = dict(zip((r.column for r in tested), adjust(np.array([r.p_value for r in tested]), cfg.correction)))
    results = []
    for r in raw:
        if r.column in adjusted:
            p_adj = float(adjusted[r.column])
            r = replace(r, p_adjusted=p_adj, drifted=p_adj < r.alpha and r.distance > r.max_distance)
        results.append(r)
    return DriftReport(tuple(results), cfg.correction, cfg.alpha)
