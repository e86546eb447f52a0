"""Fit a challenger on recent labelled data, put it through the gate against the champion, register it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.events import emit_event

from driftloop import charts, data, training
from driftloop.comparison import Comparison, compare
from driftloop.config import TASK_METRICS, Config, load_config
from driftloop.ledger import Ledger, Retrain, retrain_id
from driftloop.policy import GateVerdict, evaluate_gate
from driftloop.promotion import Offer, offer_as_challenger
from driftloop.redaction import redact
from driftloop.registry import CHALLENGER, CHAMPION, COMPLETE, LoadedModel, ModelRef, Registry
from driftloop.report import comparison_markdown, version_description
from driftloop_flows.reviews import close_stale_reviews
from driftloop_flows.common import cached_task, compute_task, fails_cleanly, io_task, load_model, register_candidate, training_key


CHALLENGER_REGISTERED = "driftloop.challenger.registered"


@dataclass(frozen=True)
class RetrainResult:
    version: str
    already_registered: bool
    gate_passed: bool
    offered: bool = False  # took the challenger alias (a review was asked for)
    why: str = ""
    replaces: str | None = None  # the challenger that waited for review before it

    @property
    def summary(self) -> str:
        if not self.gate_passed:
            return f"v{self.version} (gate failed)"
        if not self.offered:
            return f"v{self.version} (gate passed, not offered)"
        return f"v{self.version} (gate passed, replaces v{self.replaces})" if self.replaces else f"v{self.version} (gate passed)"


@io_task(name="find version for trigger")
def existing_version(cfg: Config, trigger_id: str) -> ModelRef | None:
    return Registry(cfg.registry).find_by_tag("trigger_id", trigger_id)


@io_task(name="finish interrupted registration")
def finish_registration(cfg: Config, ref: ModelRef) -> ModelRef:
    alias = CHALLENGER if ref.tags.get("driftloop.offered") == "yes" else None
    return Registry(cfg.registry).complete_registration(ref.version, alias, who="retrain (rerun)", why="registration resumed")


@io_task(name="check as of")
def check_as_of(cfg: Config, as_of: str) -> None:
    data.check_as_of(cfg.data, as_of)


@io_task(name="ledger: retrain")
def mark_retrain(cfg: Config, trigger: str, as_of: str, state: str, version: str | None = None, detail: str = "") -> None:
    Ledger(cfg.ledger).retrain_state(trigger, as_of, state, version, detail)


@io_task(name="ledger: earlier requests")
def earlier_requests(cfg: Config, as_of: str) -> list[Retrain]:
    return Ledger(cfg.ledger).retrains(state="requested", before=as_of)


@io_task(name="load challenger awaiting review")
def pending_challenger(cfg: Config) -> LoadedModel | None:
    """The challenger a person has not decided on yet, if any (a new version must beat it to replace it)."""
    registry = Registry(cfg.registry)
    return registry.load(CHALLENGER, cfg.training.code_path) if registry.by_alias(CHALLENGER) is not None else None


@io_task(name="read labelled window")
def read_labelled(cfg: Config, as_of: str):
    labelled = data.labelled_batches(cfg.data, cfg.columns, date.fromisoformat(as_of),
                                  n_batches=cfg.training.window_batches + cfg.training.holdout_batches)
    holdout = data.last_batches(labelled, cfg.training.holdout_batches)
    train = data.last_batches(labelled, cfg.training.window_batches, skip_latest=cfg.training.holdout_batches)
    return train, holdout


@cached_task(name="train challenger", cache_key_fn=lambda _, p: training_key("train", p["cfg"], p["train"], p["holdout"]))
def train_challenger(cfg: Config, train, holdout) -> training.Candidate:
    return training.train_candidate(
        train, holdout, data.PARTITION, cfg.columns, cfg.training, cfg.drift, cfg.evaluation.decision_threshold
    )


def _paired(cfg: Config, candidate: training.Candidate, other: LoadedModel, holdout) -> Comparison:
    return compare(
        training.truth(holdout, cfg.columns),
        candidate.holdout_output,
        training.predict_output(other.model, holdout, cfg.columns),
        {column: holdout[column].to_numpy() for column in cfg.columns.segments},
        metrics=TASK_METRICS[cfg.columns.task],
        threshold=cfg.evaluation.decision_threshold,
        n_bootstrap=cfg.gate.n_bootstrap,
        confidence=cfg.gate.confidence,
        min_segment_rows=cfg.gate.min_segment_rows,
        seed=cfg.gate.seed,
        task=cfg.columns.task,
        bootstrap_max_rows=cfg.gate.bootstrap_max_rows,
    )


@compute_task(name="compare with champion")
def compare_with_champion(cfg: Config, candidate: training.Candidate, champion: LoadedModel, holdout) -> tuple[Comparison, GateVerdict]:
    comparison = _paired(cfg, candidate, champion, holdout)
    return comparison, evaluate_gate(comparison, cfg.gate)


@compute_task(name="decide the offer")
def decide_offer(cfg: Config, candidate: training.Candidate, verdict: GateVerdict, pending: LoadedModel | None, holdout) -> Offer:
    """Gate passed, and, while another challenger awaits review, credibly better than it on the same holdout."""
    versus = _paired(cfg, candidate, pending, holdout) if pending is not None else None
    return offer_as_challenger(verdict.passed, "; ".join(r.rule for r in verdict.failed),
                               pending.ref.version if pending else None, versus, cfg.gate)


@io_task(name="write comparison report")
def write_comparison(cfg: Config, as_of: str, comparison: Comparison, verdict: GateVerdict, champion_version: str) -> list[Path]:
    record = {"comparison": asdict(comparison), "gate": asdict(verdict)}
    written = data.write_report(cfg.data, f"retrain-{as_of}.comparison", record, comparison_markdown(comparison, verdict, champion_version))
    try:
        chart = [charts.gate_chart(comparison, verdict, champion_version, cfg.data.reports / f"retrain-{as_of}.comparison.png")]
    except Exception:  # a picture that could not be drawn never fails the retrain: the tables say the same
        get_run_logger().exception("the gate chart of %s could not be drawn", as_of)
        chart = []
    return [*chart, *written]  # the markdown last: the version description links the last file


def _vs_parent(comparison: Comparison, parent: str) -> str:
    d = next(iter(comparison.overall.values()))
    return f"{d.metric} {d.improvement:+.4f} [{d.low:+.4f}, {d.high:+.4f}] vs v{parent}"


def _gate_metrics(comparison: Comparison, verdict: GateVerdict) -> dict[str, float]:
    values = {"gate_passed": float(verdict.passed)}
    if comparison.mcnemar is not None:
        values["mcnemar_p"] = comparison.mcnemar.p_value
    for d in comparison.overall.values():
        values |= {f"champion_holdout_{d.metric}": d.champion, f"improvement_{d.metric}": d.improvement,
                   f"improvement_{d.metric}_low": d.low, f"improvement_{d.metric}_high": d.high}
    return values


def announce_challenger(cfg: Config, ref: ModelRef, offer: Offer, config_path: str) -> None:
    """A review artifact on this run and, for an offered version, the event that starts the promote
    deployment (which waits for a person)."""
    url = Registry(cfg.registry).ui_url(version=ref.version)
    link = f"[{ref.name} v{ref.version} in MLflow]({url})" if url else f"{ref.name} v{ref.version} in {redact(cfg.registry.tracking_uri)}"
    title = "Challenger" if offer.offered else "Registered, not offered for review:"
    create_markdown_artifact(key="challenger-review", markdown=f"# {title} {link}\n\n{offer.why}\n\n{ref.description}\n",
                             description=f"v{ref.version}: {offer.why}")
    if offer.offered:
        emit_event(
            event=CHALLENGER_REGISTERED,
            resource={"prefect.resource.id": f"driftloop.model.{ref.name}", "prefect.resource.name": ref.name},
            payload={"version": ref.version, "gate": ref.tags.get("driftloop.gate_verdict", ""), "config_path": config_path},
        )


@flow(name="retrain", flow_run_name="retrain as of {as_of}")
@fails_cleanly
def retrain(
    as_of: str,
    trigger: str = "manual",
    reasons: list[str] | None = None,
    monitor_run_id: str | None = None,
    config_path: str = "driftloop.yaml",
    catch_up: bool = True,
) -> RetrainResult:
    """Fit, gate, register. Its ledger entry (requested by the monitor run, or made here for a retrain
    started by hand) goes running -> registered | failed; the cooldown counts it from the request on.

    With ``catch_up``, retrains requested for earlier days and not started yet run first, oldest
    first: an automation may deliver the events of a backfill out of order, and versions must
    follow the data (each is compared with the challenger the one before it registered).
    """
    logger = get_run_logger()
    cfg = load_config(config_path)
    check_as_of(cfg, as_of)  # before the ledger records it: a date no batch has would hold every later retrain back
    for earlier in earlier_requests(cfg, as_of) if catch_up else ():
        logger.info("first the retrain requested for %s (%s), which has not run yet", earlier.as_of, earlier.trigger)
        retrain(as_of=earlier.as_of, trigger=earlier.trigger, reasons=list(earlier.reasons), monitor_run_id=earlier.monitor_run_id,
                config_path=config_path, catch_up=False, return_state=True)
    trigger_id = retrain_id(trigger, as_of)
    found = existing_version(cfg, trigger_id)
    if found is not None:
        if found.tags.get(COMPLETE) != "complete":
            found = finish_registration(cfg, found)
        mark_retrain(cfg, trigger, as_of, "registered", found.version, "already registered")
        logger.info("version %s was already registered for %s; not training again", found.version, trigger_id)
        return RetrainResult(found.version, True, found.tags.get("driftloop.gate_verdict") == "passed",
                             found.tags.get("driftloop.offered") == "yes", found.tags.get("driftloop.offer", ""))
    mark_retrain(cfg, trigger, as_of, "running")
    try:
        return _fit_gate_register(cfg, as_of, trigger, trigger_id, list(reasons or []), monitor_run_id, config_path)
    except Exception as exc:
        mark_retrain(cfg, trigger, as_of, "failed", detail=f"{type(exc).__name__}: {exc}")
        raise


def _fit_gate_register(cfg: Config, as_of: str, trigger: str, trigger_id: str, reasons: list[str], monitor_run_id: str | None,
                       config_path: str) -> RetrainResult:
    logger = get_run_logger()
    train, holdout = read_labelled(cfg, as_of)
    champion = load_model(cfg, CHAMPION)
    candidate = train_challenger(cfg, train, holdout)
    comparison, verdict = compare_with_champion(cfg, candidate, champion, holdout)
    # The waiting challenger is loaded only for a version that could replace it.
    offer = decide_offer(cfg, candidate, verdict, pending_challenger(cfg) if verdict.passed else None, holdout)
    review = write_comparison(cfg, as_of, comparison, verdict, champion.ref.version)
    trigger_files = [cfg.data.reports / f"{as_of}{suffix}" for suffix in (".md", ".json", ".validation.json")]
    window, held = candidate.train_window, candidate.holdout_window
    ref = register_candidate(
        cfg,
        candidate,
        alias=CHALLENGER if offer.offered else None,
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
            "offered": "yes" if offer.offered else "no",
            "offer": offer.why,
            # Paired, on the one holdout both models were scored on: what `driftloop status` compares versions by.
            "vs_parent": _vs_parent(comparison, champion.ref.version),
        },
        description=version_description(
            trigger=trigger, reasons=reasons, window=f"{window.first}..{window.last}", n_train=window.n_rows,
            holdout=f"{held.first}..{held.last}", n_holdout=held.n_rows, verdict=verdict,
            champion_version=champion.ref.version, monitor_run=monitor_run_id, offer=offer.why,
            comparison_artifact=f"review/{review[-1].name}",
        ),
        artifacts={"review": review, "trigger": [p for p in trigger_files if p.exists()]},
        why=f"{trigger}: {reasons[0] if reasons else 'manual retrain'} ({offer.why})",
    )
    mark_retrain(cfg, trigger, as_of, "registered", ref.version, offer.why)
    announce_challenger(cfg, ref, offer, config_path)
    if offer.offered:
        close_stale_reviews(cfg.registry.model_name, ref.version, f"v{ref.version} was registered as the challenger")
    headline = next(iter(comparison.overall.values()))
    logger.info(
        "registered version %s: holdout %s %.3f vs champion v%s %.3f; %s", ref.version,
        headline.metric, headline.challenger, champion.ref.version, headline.champion, offer.why,
    )
    for rule in verdict.failed:
        logger.info("  gate: %s", rule.detail)
    return RetrainResult(ref.version, False, verdict.passed, offer.offered, offer.why, offer.replaces)
