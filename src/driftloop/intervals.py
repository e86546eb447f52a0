"""Analytic intervals for large windows: every metric as its value plus one influence value per row.

A metric of a window is (a smooth function of) averages over its rows, so its sampling error is
the average of one *influence* value per row, and its standard error is that value's spread over
sqrt(rows) (the delta method). For ROC AUC the influence values are DeLong's placements, so the
variance is DeLong's; for a paired comparison of two models on the same rows the influence values
are subtracted row by row, which is paired DeLong for AUC and the paired delta method for the rest.
Plain rates (accuracy, precision, recall) of one model get Wilson's score interval instead of the
symmetric one: it stays inside [0, 1] and keeps its coverage near 0 and 1.

Cost: a sort for AUC and a few passes over the rows, memory a few vectors of rows: windows of
millions of rows take seconds, where a bootstrap takes replicates x rows.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Influence:
    """A metric's value on the window and each row's influence on it (mean zero)."""

    value: float
    influence: np.ndarray
    successes: int | None = None  # a plain rate: its numerator and denominator, for Wilson's interval
    trials: int | None = None


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> Influence:
    """mean(numerator) / mean(denominator), 0 where the denominator is empty (scikit-learn's zero_division=0)."""
    scale = denominator.mean()
    if scale == 0:
        return Influence(0.0, np.zeros(len(numerator)))
    value = numerator.mean() / scale
    return Influence(float(value), (numerator - value * denominator) / scale)


def _rate(hits: np.ndarray, among: np.ndarray) -> Influence:
    """Share of ``hits`` among the rows in ``among`` (both 0/1): a ratio with Wilson's counts."""
    found = _ratio(hits * among, among)
    return Influence(found.value, found.influence, int((hits * among).sum()), int(among.sum()))


def _mean(values: np.ndarray) -> Influence:
    value = values.mean()
    return Influence(float(value), values - value)


def _roc_auc(positive: np.ndarray, score: np.ndarray) -> Influence:
    """DeLong: each positive's share of negatives scored below it (ties half), each negative's share of
    positives scored above it; the AUC is the mean of either, its variance theirs over their counts.
    One sort: rows with equal scores form a group, and a group's counts give every member's placement.
    Written to hold a few row vectors at a time (a window has millions of rows)."""
    is_pos = positive.astype(bool)
    n_pos = int(is_pos.sum())
    n_neg = len(score) - n_pos
    if n_pos == 0 or n_neg == 0:
        return Influence(float("nan"), np.full(len(score), np.nan))
    order = np.argsort(score, kind="stable")
    sorted_score = score[order]
    starts_group = np.empty(len(score), dtype=bool)
    starts_group[0] = True
    np.not_equal(sorted_score[1:], sorted_score[:-1], out=starts_group[1:])
    del sorted_score
    sorted_pos = is_pos[order]
    starts = np.flatnonzero(starts_group)
    group = np.cumsum(starts_group, dtype=np.int64)
    group -= 1
    del starts_group
    pos_in = np.add.reduceat(sorted_pos, starts, dtype=np.int64)
    neg_in = np.diff(np.r_[starts, len(score)]) - pos_in
    del starts
    # a positive's placement: the negatives below its group and half its group's; a negative's: the positives above
    placement = ((n_pos - np.cumsum(pos_in) + 0.5 * pos_in) / n_pos)[group]
    placement[sorted_pos] = ((np.cumsum(neg_in) - 0.5 * neg_in) / n_neg)[group[sorted_pos]]
    del group, pos_in, neg_in
    auc = placement[sorted_pos].mean()
    share = n_pos / len(score)
    placement -= auc
    placement[sorted_pos] /= share
    placement[~sorted_pos] /= 1 - share
    influence = np.empty(len(score))
    influence[order] = placement
    return Influence(float(auc), influence)


def _f1(picked: np.ndarray, actual: np.ndarray) -> Influence:
    return _ratio(2 * picked * actual, picked + actual)


def binary_influence(y: np.ndarray, probability: np.ndarray, threshold: float) -> Iterator[tuple[str, Influence]]:
    """Each metric in turn, so a caller that reduces them one by one holds one row vector at a time."""
    y = np.asarray(y, dtype="float64")
    probability = np.asarray(probability, dtype="float64")
    picked = (probability >= threshold).astype("float64")
    yield "roc_auc", _roc_auc(y, probability)
    yield "accuracy", _rate((picked == y).astype("float64"), np.ones(len(y)))
    yield "f1", _f1(picked, y)
    yield "precision", _rate(y, picked)
    yield "recall", _rate(picked, y)
    clipped = np.clip(probability, 1e-15, 1 - 1e-15)
    yield "log_loss", _mean(-(y * np.log(clipped) + (1 - y) * np.log(1 - clipped)))
    yield "brier", _mean((probability - y) ** 2)


def class_metric_key(metric: str, name: str) -> str:
    """``f1.<class>``: one class's metric, safe as an MLflow metric name."""
    return f"{metric}.{re.sub(r'[^0-9A-Za-z_-]', '_', name)}"


def _average(parts: list[Influence]) -> Influence:
    if not parts:
        return Influence(float("nan"), np.array([]))
    return Influence(float(np.mean([p.value for p in parts])), np.mean([p.influence for p in parts], axis=0))


def multiclass_influence(y: np.ndarray, probability: np.ndarray, classes: tuple[str, ...] = ()) -> dict[str, Influence]:
    """Macro, weighted and (given ``classes``) per-class metrics; macro averages over the classes present
    in ``y``, as :func:`driftloop.comparison.weighted_multiclass_metrics` does."""
    y = np.asarray(y, dtype="int64")
    probability = np.asarray(probability, dtype="float64")
    n_rows, n_classes = probability.shape
    chosen = probability.argmax(axis=1)
    truth = [(y == k).astype("float64") for k in range(n_classes)]
    picked = [(chosen == k).astype("float64") for k in range(n_classes)]
    present = [k for k in range(n_classes) if truth[k].any()]
    precision = [_rate(truth[k], picked[k]) for k in range(n_classes)]
    recall = [_rate(picked[k], truth[k]) for k in range(n_classes)]
    f1 = [_f1(picked[k], truth[k]) for k in range(n_classes)]
    # weighted_f1 = sum_k f1_k * share_k: each class's f1 moves, and so does its share
    shares = [t.mean() for t in truth]
    weighted = Influence(float(sum(f1[k].value * shares[k] for k in present)),
                         sum(shares[k] * f1[k].influence + f1[k].value * (truth[k] - shares[k]) for k in present))
    found = {
        "macro_f1": _average([f1[k] for k in present]),
        "accuracy": _rate((chosen == y).astype("float64"), np.ones(n_rows)),
        "macro_precision": _average([precision[k] for k in present]),
        "macro_recall": _average([recall[k] for k in present]),
        "weighted_f1": weighted,
        "macro_roc_auc": (_average([_roc_auc(truth[k], probability[:, k]) for k in present]) if len(present) > 1
                          else Influence(float("nan"), np.full(n_rows, np.nan))),
        "log_loss": _mean(-np.log(np.clip(probability[np.arange(n_rows), y], 1e-15, 1.0))),
        "brier": _mean(((probability - np.eye(n_classes)[y]) ** 2).sum(axis=1)),
    }
    for k, name in enumerate(classes):
        found |= {class_metric_key(m, name): v[k] for m, v in (("precision", precision), ("recall", recall), ("f1", f1))}
    return found


def regression_influence(y: np.ndarray, prediction: np.ndarray) -> dict[str, Influence]:
    y = np.asarray(y, dtype="float64")
    error = np.asarray(prediction, dtype="float64") - y
    mse = _mean(error**2)
    rmse = float(np.sqrt(mse.value))
    variance = _mean((y - y.mean()) ** 2)
    if variance.value > 0:
        r2 = Influence(1 - mse.value / variance.value,
                       -(mse.influence * variance.value - mse.value * variance.influence) / variance.value**2)
    else:  # a target that does not vary has no R2
        r2 = Influence(float("nan"), np.full(len(y), np.nan))
    return {
        "mae": _mean(np.abs(error)),
        "rmse": Influence(rmse, mse.influence / (2 * rmse) if rmse > 0 else np.zeros(len(y))),
        "r2": r2,
    }


def influences(task: str, y: np.ndarray, output: np.ndarray, threshold: float,
               classes: tuple[str, ...] = ()) -> Iterator[tuple[str, Influence]]:
    """(metric, its influence) for every metric of the task, computed as they are taken."""
    if task == "regression":
        yield from regression_influence(y, output).items()
    elif task == "multiclass_classification":
        yield from multiclass_influence(y, output, classes).items()
    else:
        yield from binary_influence(y, output, threshold)


def influence(task: str, y: np.ndarray, output: np.ndarray, threshold: float, classes: tuple[str, ...] = ()) -> dict[str, Influence]:
    return dict(influences(task, y, output, threshold, classes))


def z_score(confidence: float) -> float:
    """The normal quantile of a two-sided ``confidence`` interval (1.96 for 0.95)."""
    return float(stats.norm.ppf(0.5 + confidence / 2))


def _standard_error(values: np.ndarray) -> float:
    return float(np.sqrt(np.mean(values**2) / len(values))) if len(values) else float("nan")


def wilson(successes: int, trials: int, confidence: float) -> tuple[float, float]:
    if trials == 0:
        return (0.0, 0.0)  # an empty rate is 0 (zero_division=0), with nothing to be unsure about
    z, share = z_score(confidence), successes / trials
    centre = (share + z**2 / (2 * trials)) / (1 + z**2 / trials)
    half = z / (1 + z**2 / trials) * np.sqrt(share * (1 - share) / trials + z**2 / (4 * trials**2))
    return (float(centre - half), float(centre + half))


def analytic_intervals(found: Iterable[tuple[str, Influence]], confidence: float) -> tuple[dict[str, float], dict[str, tuple[float, float]]]:
    """Each metric's value and interval: Wilson's for a plain rate, value +- z standard errors otherwise.
    Given ``influences(...)``, each metric's row vector is dropped as soon as its interval is known."""
    z = z_score(confidence)
    values, intervals = {}, {}
    for metric, f in found:
        values[metric] = f.value
        if f.trials is not None:
            intervals[metric] = wilson(f.successes, f.trials, confidence)
        else:
            half = z * _standard_error(f.influence)
            intervals[metric] = (f.value - half, f.value + half)
    return values, intervals


def paired_interval(new: Influence, old: Influence, sign: float, confidence: float) -> tuple[float, float]:
    """Interval of ``sign * (new - old)`` on the same rows: the influence values subtract row by row, so
    what the two models share (which rows are hard) cancels."""
    half = _standard_error(new.influence - old.influence) * z_score(confidence)
    difference = sign * (new.value - old.value)
    return (difference - half, difference + half)
