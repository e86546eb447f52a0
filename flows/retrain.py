"""Fit a challenger on recent labelled data, compare it with the champion, register it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date

from prefect import flow, get_run_logger

from driftloop import data, training
from driftloop.config import Config, load_config
from driftloop.evaluation import classification_metrics
from driftloop.registry import CHALLENGER, CHAMPION, LoadedModel, ModelRef, Registry
from driftloop.report import version_description
from flows.common import compute_task, fails_cleanly, io_task, load_model, register_candidate


@dataclass(frozen=True)
class RetrainResult:
    version: str
    already_registered: bool
    challenger_metrics: dict[str, float]
    champion_metrics: dict[str, float]


@io_task(name="find version for trigger")
def existing_version(cfg: Config, trigger_id: str) -> ModelRef | None:
    return Registry(cfg.registry).find_by_tag("trigger_id", trigger_id)


@io_task(name="read labelled window")
def read_labelled(cfg: Config, as_of: str):
    labelled = data.labelled_days(cfg.data, cfg.columns, date.fromisoformat(as_of))
    holdout = data.last_days(labelled, cfg.training.holdout_days)
    train = data.last_days(labelled, cfg.training.window_days, skip_latest=cfg.training.holdout_days)
    return train, holdout


@compute_task(name="train challenger")
def train_challenger(cfg: Config, train, holdout) -> training.Candidate:
    return training.train_candidate(
        train, holdout, data.PARTITION, cfg.columns, cfg.training, cfg.drift, cfg.evaluation.decision_threshold
    )


@compute_task(name="score champion on holdout")
def champion_on_holdout(cfg: Config, champion: LoadedModel, holdout) -> dict[str, float]:
    probability = training.predict_proba(champion.model, holdout, cfg.columns)
    return classification_metrics(holdout[cfg.columns.target].to_numpy(), probability, cfg.evaluation.decision_threshold)


@flow(name="retrain", flow_run_name="retrain as of {as_of}")
@fails_cleanly
def retrain(
    as_of: str,
    trigger: str = "manual",
    reasons: list[str] | None = None,
    monitor_run_id: str | None = None,
    config_path: str = "driftloop.yaml",
) -> RetrainResult:
    logger = get_run_logger()
    cfg = load_config(config_path)
    trigger_id = f"{trigger}@{as_of}"
    found = existing_version(cfg, trigger_id)
    if found is not None:
        logger.info("version %s was already registered for %s; not training again", found.version, trigger_id)
        return RetrainResult(found.version, True, {}, {})

    train, holdout = read_labelled(cfg, as_of)
    champion = load_model(cfg, CHAMPION)
    candidate = train_challenger(cfg, train, holdout)
    champion_metrics = champion_on_holdout(cfg, champion, holdout)
    window, held = candidate.train_window, candidate.holdout_window
    reasons = list(reasons or [])
    report = cfg.data.reports / f"{as_of}.md"  # the monitor report that asked for this retrain
    ref = register_candidate(
        cfg,
        candidate,
        alias=CHALLENGER,
        run_name=f"retrain as of {as_of}",
        params=cfg.training.model_dump() | {"as_of": as_of, "trigger": trigger},
        metrics={f"holdout_{k}": v for k, v in candidate.holdout_metrics.items()}
        | {f"champion_holdout_{k}": v for k, v in champion_metrics.items()},
        tags={
            "trigger": trigger,
            "trigger_id": trigger_id,
            "as_of": as_of,
            "reasons": json.dumps(reasons)[:4000],
            "batch_ids": ",".join(sorted(set(train[data.PARTITION]) | set(holdout[data.PARTITION]))),
            "data_window": f"{window.first}..{window.last}",
            "holdout_window": f"{held.first}..{held.last}",
            "data_fingerprint": window.fingerprint,
            "parent_version": champion.ref.version,
            "monitor_run_id": monitor_run_id or "",
        },
        description=version_description(
            trigger=trigger, reasons=reasons, window=f"{window.first}..{window.last}", n_train=window.n_rows,
            holdout=f"{held.first}..{held.last}", n_holdout=held.n_rows, challenger=candidate.holdout_metrics,
            champion=champion_metrics, champion_version=champion.ref.version, monitor_run=monitor_run_id,
        ),
        artifacts={"trigger": [p for p in (report, report.with_suffix(".json")) if p.exists()]},
    )
    logger.info(
        "registered version %s as %s: holdout auc %.3f vs champion v%s %.3f",
        ref.version, CHALLENGER, candidate.holdout_metrics["roc_auc"], champion.ref.version, champion_metrics["roc_auc"],
    )
    return RetrainResult(ref.version, False, candidate.holdout_metrics, champion_metrics)
