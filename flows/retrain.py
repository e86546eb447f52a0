"""Fit a challenger on recent labelled data, put it through the gate against the champion, register it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.events import emit_event

from driftloop import data, training
from driftloop.comparison import Comparison, compare
from driftloop.config import TASK_METRICS, Config, load_config
from driftloop.policy import GateVerdict, evaluate_gate
from driftloop.registry import CHALLENGER, CHAMPION, COMPLETE, LoadedModel, ModelRef, Registry
from driftloop.report import comparison_markdown, version_description
from flows.common import cached_task, compute_task, fails_cleanly, io_task, load_model, register_candidate, training_key


CHALLENGER_REGISTERED = "driftloop.challenger.registered"


@dataclass(frozen=True)
class RetrainResult:
    version: str
    already_registered: bool
    gate_passed: bool


@io_task(name="find version for trigger")
def existing_version(cfg: Config, trigger_id: str) -> ModelRef | None:
    return Registry(cfg.registry).find_by_tag("trigger_id", trigger_id)


@io_task(name="finish interrupted registration")
def finish_registration(cfg: Config, ref: ModelRef) -> ModelRef:
    return Registry(cfg.registry).complete_registration(ref.version, CHALLENGER, who="retrain (rerun)", why="registration resumed")


@io_task(name="read labelled window")
def read_labelled(cfg: Config, as_of: str):
    labelled = data.labelled_days(cfg.data, cfg.columns, date.fromisoformat(as_of),
                                  n_batches=cfg.training.window_days + cfg.training.holdout_days)
    holdout = data.last_days(labelled, cfg.training.holdout_days)
    train = data.last_days(labelled, cfg.training.window_days, skip_latest=cfg.training.holdout_days)
    return train, holdout


@cached_task(name="train challenger", cache_key_fn=lambda _, p: training_key("train", p["cfg"], p["train"], p["holdout"]))
def train_challenger(cfg: Config, train, holdout) -> training.Candidate:
    return training.train_candidate(
        train, holdout, data.PARTITION, cfg.columns, cfg.training, cfg.drift, cfg.evaluation.decision_threshold
    )


@compute_task(name="compare with champion")
def compare_with_champion(cfg: Config, candidate: training.Candidate, champion: LoadedModel, holdout) -> tuple[Comparison, GateVerdict]:
    comparison = compare(
        holdout[cfg.columns.target].to_numpy(),
        candidate.holdout_output,
        training.predict_output(champion.model, holdout, cfg.columns),
        {column: holdout[column].to_numpy() for column in cfg.columns.segments},
        metrics=TASK_METRICS[cfg.columns.task],
        threshold=cfg.evaluation.decision_threshold,
        n_bootstrap=cfg.gate.n_bootstrap,
        confidence=cfg.gate.confidence,
        min_segment_rows=cfg.gate.min_segment_rows,
        seed=cfg.gate.seed,
        task=cfg.columns.task,
    )
    return comparison, evaluate_gate(comparison, cfg.gate)


@io_task(name="write comparison report")
def write_comparison(cfg: Config, as_of: str, comparison: Comparison, verdict: GateVerdict, champion_version: str) -> list[Path]:
    record = {"comparison": asdict(comparison), "gate": asdict(verdict)}
    return list(data.write_report(cfg.data, f"retrain-{as_of}.comparison", record, comparison_markdown(comparison, verdict, champion_version)))


def _gate_metrics(comparison: Comparison, verdict: GateVerdict) -> dict[str, float]:
    values = {"gate_passed": float(verdict.passed)}
    if comparison.mcnemar is not None:
        values["mcnemar_p"] = comparison.mcnemar.p_value
    for d in comparison.overall.values():
        values |= {f"champion_holdout_{d.metric}": d.champion, f"improvement_{d.metric}": d.improvement,
                   f"improvement_{d.metric}_low": d.low, f"improvement_{d.metric}_high": d.high}
    return values


def announce_challenger(cfg: Config, ref: ModelRef, verdict: GateVerdict, config_path: str) -> None:
    """A review artifact on this run, and the event that starts the promote deployment (which waits for a person)."""
    url = Registry(cfg.registry).ui_url(version=ref.version)
    link = f"[{ref.name} v{ref.version} in MLflow]({url})" if url else f"{ref.name} v{ref.version} in {cfg.registry.tracking_uri}"
    create_markdown_artifact(key="challenger-review", markdown=f"# Challenger {link}\n\n{ref.description}\n",
                             description=f"v{ref.version}: gate {'passed' if verdict.passed else 'failed'}")
    emit_event(
        event=CHALLENGER_REGISTERED,
        resource={"prefect.resource.id": f"driftloop.model.{ref.name}", "prefect.resource.name": ref.name},
        payload={"version": ref.version, "gate": "passed" if verdict.passed else "failed", "config_path": config_path},
    )


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
        if found.tags.get(COMPLETE) != "complete":
            found = finish_registration(cfg, found)
        logger.info("version %s was already registered for %s; not training again", found.version, trigger_id)
        return RetrainResult(found.version, True, found.tags.get("driftloop.gate_verdict") == "passed")

    train, holdout = read_labelled(cfg, as_of)
    champion = load_model(cfg, CHAMPION)
    candidate = train_challenger(cfg, train, holdout)
    comparison, verdict = compare_with_champion(cfg, candidate, champion, holdout)
    review = write_comparison(cfg, as_of, comparison, verdict, champion.ref.version)
    trigger_files = [cfg.data.reports / f"{as_of}{suffix}" for suffix in (".md", ".json", ".validation.json")]
    window, held = candidate.train_window, candidate.holdout_window
    reasons = list(reasons or [])
    ref = register_candidate(
        cfg,
        candidate,
        alias=CHALLENGER,
        run_name=f"retrain as of {as_of}",
        params=cfg.training.model_dump() | {"as_of": as_of, "trigger": trigger},
        metrics={f"holdout_{k}": v for k, v in candidate.holdout_metrics.items()} | _gate_metrics(comparison, verdict),
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
            "gate_verdict": "passed" if verdict.passed else "failed",
            "gate_failed": "; ".join(r.rule for r in verdict.failed),
        },
        description=version_description(
            trigger=trigger, reasons=reasons, window=f"{window.first}..{window.last}", n_train=window.n_rows,
            holdout=f"{held.first}..{held.last}", n_holdout=held.n_rows, verdict=verdict,
            champion_version=champion.ref.version, monitor_run=monitor_run_id,
        ),
        artifacts={"review": review, "trigger": [p for p in trigger_files if p.exists()]},
        why=f"{trigger}: {reasons[0] if reasons else 'manual retrain'} (gate {'passed' if verdict.passed else 'failed'})",
    )
    announce_challenger(cfg, ref, verdict, config_path)
    headline = next(iter(comparison.overall.values()))
    logger.info(
        "registered version %s as %s: holdout %s %.3f vs champion v%s %.3f, gate %s", ref.version, CHALLENGER,
        headline.metric, headline.challenger, champion.ref.version, headline.champion, "passed" if verdict.passed else "FAILED",
    )
    for rule in verdict.failed:
        logger.info("  gate: %s", rule.detail)
    return RetrainResult(ref.version, False, verdict.passed)
