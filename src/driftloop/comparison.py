"""Champion vs challenger on the same labelled holdout: paired bootstrap and McNemar.

Both models are scored on the same rows, and every bootstrap replicate reweights those
rows once for both (Poisson weights), so the interval is for the *difference* and the
noise shared by the two models cancels. Replicates are computed as matrix operations, a block
of them at a time: each block's weights hold at most ``BLOCK_CELLS`` replicate-rows, so memory
stays flat however many rows a window has (the number of blocks grows instead, never a Python
loop over rows). Above ``bootstrap_max_rows`` rows the paired interval is analytic instead
(paired DeLong for AUC, the paired delta method for the rest: driftloop.intervals), linear in rows.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy import stats

from driftloop.intervals import class_metric_key, influence, paired_interval

# name -> higher is better
METRIC_DIRECTION = {"roc_auc": True, "accuracy": True, "f1": True, "precision": True, "recall": True,
                    "log_loss": False, "brier": False, "mae": False, "rmse": False, "r2": True,
                    "macro_f1": True, "macro_precision": True, "macro_recall": True, "weighted_f1": True, "macro_roc_auc": True}


def predicted_class(output: np.ndarray, threshold: float) -> np.ndarray:
    """The class a classifier picks: the positive one above ``threshold`` (binary probability), or the
    most probable column (multiclass, rows x classes)."""
    return output.argmax(axis=1) if output.ndim == 2 else (output >= threshold).astype("int64")


# Above this many rows a window's intervals are analytic (driftloop.intervals): as honest, and linear in rows.
BOOTSTRAP_MAX_ROWS = 20_000

# Replicates x rows of Poisson weights held at once: 2**22 float64 cells are 32 MB, and the metric
# code makes a few temporaries of the same shape.
BLOCK_CELLS = 2**22


def poisson_replicates(measure, n_rows: int, n_bootstrap: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``measure(weights)`` (a dict of one value per replicate) over ``n_bootstrap`` Poisson(1) weight
    rows, drawn and measured in blocks of at most ``BLOCK_CELLS`` cells; the results concatenated."""
    block = max(1, min(n_bootstrap, BLOCK_CELLS // max(n_rows, 1)))
    parts = [measure(rng.poisson(1.0, size=(min(block, n_bootstrap - start), n_rows)).astype("float64"))
             for start in range(0, n_bootstrap, block)]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _weighted_auc(y: np.ndarray, score: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ROC AUC for each row of ``weights`` (replicates x rows), ties counted as half."""
    order = np.argsort(score, kind="stable")
    s, yy, w = score[order], y[order], weights[:, order]
    starts = np.flatnonzero(np.r_[True, np.diff(s) != 0])
    neg = np.add.reduceat(w * (1 - yy), starts, axis=1)
    pos = np.add.reduceat(w * yy, starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg
    with np.errstate(invalid="ignore", divide="ignore"):
        return (pos * (below + 0.5 * neg)).sum(axis=1) / (pos.sum(axis=1) * neg.sum(axis=1))


def weighted_metrics(y: np.ndarray, probability: np.ndarray, weights: np.ndarray, threshold: float) -> dict[str, np.ndarray]:
    """Every metric under each replicate's row weights; ``weights`` is replicates x rows."""
    y = y.astype("float64")
    predicted = (probability >= threshold).astype("float64")
    total = weights.sum(axis=1)
    tp = weights @ (y * predicted)
    fp = weights @ ((1 - y) * predicted)
    fn = weights @ (y * (1 - predicted))
    clipped = np.clip(probability, 1e-15, 1 - 1e-15)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        recall = np.where(tp + fn > 0, tp / (tp + fn), 0.0)
        f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
        return {
            "roc_auc": _weighted_auc(y, probability, weights),
            "accuracy": weights @ (predicted == y).astype("float64") / total,
            "f1": f1,
            "precision": precision,
            "recall": recall,
            "log_loss": weights @ -(y * np.log(clipped) + (1 - y) * np.log(1 - clipped)) / total,
            "brier": weights @ (probability - y) ** 2 / total,
        }


def weighted_multiclass_metrics(y: np.ndarray, probability: np.ndarray, weights: np.ndarray,
                                classes: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Macro, weighted and (given ``classes``, their names) per-class metrics under each replicate's row
    weights; ``y`` holds class codes, ``probability`` is rows x classes, ``weights`` replicates x rows.

    Macro averages run over the classes present in ``y`` (a class absent from the window has no recall
    to average), for every replicate alike, so the interval is of the same quantity as the value.
    """
    y = np.asarray(y, dtype="int64")
    n_classes = probability.shape[1]
    truth = np.eye(n_classes)[y]  # rows x classes, one-hot
    chosen = np.eye(n_classes)[probability.argmax(axis=1)]
    present = np.flatnonzero(truth.sum(axis=0) > 0)
    total = weights.sum(axis=1)
    tp, actual, picked = weights @ (truth * chosen), weights @ truth, weights @ chosen  # replicates x classes
    clipped = np.clip(probability[np.arange(len(y)), y], 1e-15, 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(picked > 0, tp / picked, 0.0)
        recall = np.where(actual > 0, tp / actual, 0.0)
        f1 = np.where(actual + picked > 0, 2 * tp / (actual + picked), 0.0)
        auc = np.stack([_weighted_auc(truth[:, k], probability[:, k], weights) for k in present], axis=1)
        found = {
            "macro_f1": f1[:, present].mean(axis=1),
            "accuracy": weights @ (probability.argmax(axis=1) == y).astype("float64") / total,
            "macro_precision": precision[:, present].mean(axis=1),
            "macro_recall": recall[:, present].mean(axis=1),
            "weighted_f1": (f1 * actual).sum(axis=1) / actual.sum(axis=1),
            "macro_roc_auc": auc.mean(axis=1) if len(present) > 1 else np.full(len(weights), np.nan),
            "log_loss": weights @ -np.log(clipped) / total,
            "brier": weights @ ((probability - truth) ** 2).sum(axis=1) / total,
        }
    for k, name in enumerate(classes):
        found |= {class_metric_key(m, name): v[:, k] for m, v in (("precision", precision), ("recall", recall), ("f1", f1))}
    return found


@dataclass(frozen=True)
class MetricDifference:
    metric: str
    challenger: float
    champion: float
    improvement: float  # challenger better by this much (sign flipped for lower-is-better metrics)
    low: float  # confidence interval of the improvement
    high: float
    confidence: float


@dataclass(frozen=True)
class McNemar:
    challenger_only_right: int
    champion_only_right: int
    p_value: float


@dataclass(frozen=True)
class Comparison:
    n_rows: int
    overall: dict[str, MetricDifference]
    mcnemar: McNemar | None  # classifiers only
    segments: dict[str, dict[str, MetricDifference]]  # "region=south" -> metric -> difference
    segment_rows: dict[str, int]


def _weighted(task: str, threshold: float, classes: tuple[str, ...] = ()):
    """The task's metrics as a function of (y, output, weights)."""
    if task == "regression":
        return weighted_regression_metrics
    if task == "multiclass_classification":
        return lambda y, output, weights: weighted_multiclass_metrics(y, output, weights, classes)
    return lambda y, output, weights: weighted_metrics(y, output, weights, threshold)


def paired_differences(
    y: np.ndarray, challenger: np.ndarray, champion: np.ndarray, metrics: tuple[str, ...],
    threshold: float, n_bootstrap: int, confidence: float, rng: np.random.Generator, task: str = "binary_classification",
    bootstrap_max_rows: int = BOOTSTRAP_MAX_ROWS,
) -> dict[str, MetricDifference]:
    """Each metric's improvement with its paired interval: a bootstrap up to ``bootstrap_max_rows`` rows,
    the paired delta method (paired DeLong for AUC) above."""
    measure = _weighted(task, threshold)
    sign = {metric: 1.0 if METRIC_DIRECTION[metric] else -1.0 for metric in metrics}
    unit = np.ones((1, len(y)))
    point_new = {k: float(v[0]) for k, v in measure(y, challenger, unit).items()}
    point_old = {k: float(v[0]) for k, v in measure(y, champion, unit).items()}
    if len(y) > bootstrap_max_rows:
        new, old = influence(task, y, challenger, threshold), influence(task, y, champion, threshold)
        bounds = {metric: paired_interval(new[metric], old[metric], sign[metric], confidence) for metric in metrics}
    else:
        def improvement(weights: np.ndarray) -> dict[str, np.ndarray]:  # the same rows reweighted for both models
            new, old = measure(y, challenger, weights), measure(y, champion, weights)
            return {metric: sign[metric] * (new[metric] - old[metric]) for metric in metrics}

        bounds = _percentile_intervals(poisson_replicates(improvement, len(y), n_bootstrap, rng), confidence)
    return {
        metric: MetricDifference(metric, point_new[metric], point_old[metric], sign[metric] * (point_new[metric] - point_old[metric]),
                                 *bounds[metric], confidence)
        for metric in metrics
    }


def mcnemar(y: np.ndarray, challenger: np.ndarray, champion: np.ndarray, threshold: float) -> McNemar:
    """Exact McNemar test on the rows where exactly one model classifies correctly."""
    new_right = predicted_class(challenger, threshold) == y
    old_right = predicted_class(champion, threshold) == y
    b, c = int(np.sum(new_right & ~old_right)), int(np.sum(old_right & ~new_right))
    p = 1.0 if b + c == 0 else float(stats.binomtest(b, b + c, 0.5).pvalue)
    return McNemar(b, c, p)


def compare(
    y: np.ndarray, challenger: np.ndarray, champion: np.ndarray, segments: dict[str, np.ndarray], *,
    metrics: tuple[str, ...], threshold: float, n_bootstrap: int, confidence: float, min_segment_rows: int, seed: int = 0,
    task: str = "binary_classification", bootstrap_max_rows: int = BOOTSTRAP_MAX_ROWS,
) -> Comparison:
    """Overall and per-segment paired comparison; ``segments`` maps a column to its values per row.
    ``challenger``/``champion``: probabilities of the positive class, of every class (multiclass: rows x
    classes, ``y`` as class codes), or predicted values (regression)."""
    rng = np.random.default_rng(seed)
    classifier = task != "regression"
    y = np.asarray(y, dtype="int64" if classifier else "float64")
    overall = paired_differences(y, challenger, champion, metrics, threshold, n_bootstrap, confidence, rng, task, bootstrap_max_rows)
    by_segment, sizes = {}, {}
    for column, values in segments.items():
        values = np.asarray(values, dtype=object)
        for value in sorted(set(values[values != None].tolist()), key=str):  # noqa: E711
            mask = values == value
            if mask.sum() < min_segment_rows or len(np.unique(y[mask])) < 2:
                continue
            key = f"{column}={value}"
            sizes[key] = int(mask.sum())
            by_segment[key] = paired_differences(
                y[mask], challenger[mask], champion[mask], metrics, threshold, n_bootstrap, confidence, rng, task, bootstrap_max_rows
            )
    return Comparison(len(y), overall, mcnemar(y, challenger, champion, threshold) if classifier else None, by_segment, sizes)


def bootstrap_intervals(
    task: str, y: np.ndarray, output: np.ndarray, threshold: float, n_bootstrap: int, confidence: float,
    rng: np.random.Generator, classes: tuple[str, ...] = (),
) -> dict[str, tuple[float, float]]:
    """Percentile interval of every metric of one model on one window (for large windows,
    driftloop.intervals gives analytic ones)."""
    measure = functools.partial(_weighted(task, threshold, classes), np.asarray(y), np.asarray(output, dtype="float64"))
    return _percentile_intervals(poisson_replicates(measure, len(y), n_bootstrap, rng), confidence)


def _percentile_intervals(replicates: dict[str, np.ndarray], confidence: float) -> dict[str, tuple[float, float]]:
    tail = (1 - confidence) / 2 * 100
    intervals = {}
    for metric, values in replicates.items():
        values = values[np.isfinite(values)]  # a replicate can miss a class (AUC) or have no spread (R2)
        low, high = np.percentile(values, [tail, 100 - tail]) if len(values) else (np.nan, np.nan)
        intervals[metric] = (float(low), float(high))
    return intervals


def weighted_regression_metrics(y: np.ndarray, prediction: np.ndarray, weights: np.ndarray) -> dict[str, np.ndarray]:
    """MAE, RMSE and R2 under each row of ``weights`` (replicates x rows), as matrix products."""
    y, error = np.asarray(y, dtype="float64"), np.asarray(prediction, dtype="float64") - np.asarray(y, dtype="float64")
    total = weights.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mse = weights @ error**2 / total
        mean_y = weights @ y / total
        variance = (weights @ y**2) / total - mean_y**2
        return {"mae": weights @ np.abs(error) / total, "rmse": np.sqrt(mse), "r2": 1 - mse / variance}
