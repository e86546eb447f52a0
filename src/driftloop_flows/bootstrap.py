"""Train the first model on the reference period and make it the champion."""

from __future__ import annotations

from prefect import flow, get_run_logger

from driftloop import data, training
from driftloop.config import TASK_METRICS, Config, load_config
from driftloop.errors import RegistryError
from driftloop.registry import CHAMPION, ModelRef, Registry
from driftloop_flows.common import cached_task, fails_cleanly, io_task, register_candidate, training_key


@io_task(name="check champion")
def check_no_champion(cfg: Config, replace_champion: bool) -> ModelRef | None:
    """The champion a bootstrap would replace; refused unless asked for, since nobody reviews a bootstrap."""
    champion = Registry(cfg.registry).by_alias(CHAMPION)
    if champion is not None and not replace_champion:
        raise RegistryError(f"{champion.name} already has a champion (v{champion.version}); a bootstrap would replace it with "
                            "no review: run it with --replace-champion (the deployment: replace_champion=true; recorded in the "
                            "audit trail), or retrain and promote instead")
    return champion


@io_task(name="read reference")
def read_reference(cfg: Config):
    return data.read_reference(cfg.data, cfg.columns)


@cached_task(name="train candidate", cache_key_fn=lambda _, p: training_key("bootstrap", p["cfg"], p["reference"]))
def train_on_reference(cfg: Config, reference) -> training.Candidate:
    train, holdout = training.split_by_time(reference, cfg.columns, cfg.training.reference_holdout_share)
    return training.train_candidate(
        train, holdout, cfg.columns.timestamp_column, cfg.columns, cfg.training, cfg.drift, cfg.evaluation.decision_threshold
    )


@flow(name="bootstrap", flow_run_name="bootstrap {config_path}")
@fails_cleanly
def bootstrap(config_path: str = "driftloop.yaml", replace_champion: bool = False) -> ModelRef:
    """Train on ``data.reference`` and make the result the champion; a champion already there is
    replaced only with ``replace_champion``."""
    logger = get_run_logger()
    cfg = load_config(config_path)
    replaced = check_no_champion(cfg, replace_champion)
    candidate = train_on_reference(cfg, read_reference(cfg))
    window = candidate.train_window
    headline = TASK_METRICS[cfg.columns.task][0]
    ref = register_candidate(
        cfg,
        candidate,
        alias=CHAMPION,
        run_name="bootstrap on reference",
        params=cfg.training.model_dump(),
        metrics={f"holdout_{k}": v for k, v in candidate.holdout_metrics.items()},
        tags={
            "trigger": "bootstrap",
            "data_window": f"{window.first}..{window.last}",
            "data_fingerprint": window.fingerprint,
            "train_rows": window.n_rows,
        },
        description=(
            f"**Bootstrap champion** trained on the reference period {window.first}..{window.last} "
            f"({window.n_rows} rows); holdout {headline} {candidate.holdout_metrics[headline]:.3f} on "
            f"{candidate.holdout_window.n_rows} later rows."
        ),
        artifacts={},
        why=(f"bootstrap on the reference period {window.first}..{window.last}, replacing champion v{replaced.version} "
             "(--replace-champion)" if replaced else f"first champion, trained on the reference period {window.first}..{window.last}"),
    )
    logger.info("registered %s version %s as %s (holdout %s %.3f)", ref.name, ref.version, CHAMPION, headline, candidate.holdout_metrics[headline])
    return ref
