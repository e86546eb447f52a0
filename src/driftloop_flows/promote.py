"""A person reviews the challenger in the Prefect UI: the run waits on a typed form.

A deployment run *suspends*: its process exits and frees the worker while the review takes
days, and the worker reruns the flow when the form is answered (nothing before the wait is
worth keeping). A direct call (a script, a test) cannot be rescheduled, so it *pauses* in
its process. Approval moves the ``champion`` alias, rejection tags the version and removes
the ``challenger`` alias. The same decisions are available without Prefect from the CLI
(`driftloop promote | reject | rollback`); both apply ``driftloop.promotion.check_promotion``
and write the same audit trail.

Only the current challenger is reviewed: a run for any other version ends Cancelled before it
shows a form, and whenever a version is registered as challenger, promoted or rejected, the
reviews still waiting for other versions are cancelled (``driftloop_flows.reviews``).
"""

from __future__ import annotations

from typing import Literal

from prefect import flow, get_run_logger, pause_flow_run, suspend_flow_run
from prefect.artifacts import create_markdown_artifact
from prefect.input import RunInput
from prefect.runtime import deployment, flow_run
from prefect.states import Cancelled
from pydantic import Field

from driftloop.config import load_config
from driftloop.errors import RegistryError
from driftloop.promotion import PromotionCheck, check_promotion
from driftloop.redaction import redact
from driftloop.registry import CHALLENGER, CHAMPION, ModelRef, Registry
from driftloop_flows.common import fails_cleanly, io_task
from driftloop_flows.reviews import VERSION_TAG, answered, close_stale_reviews, mark_review_run


class ReviewDecision(RunInput):
    """The form on a waiting review run. What it reviews (version, gate verdict) is in the text above it."""

    decision: Literal["approve", "reject"] = Field(
        description="approve: this version becomes the champion. reject: it is tagged rejected and leaves the review queue.")
    reviewer: str = Field(min_length=1, description="Your name, recorded in the audit trail (`driftloop history`).")
    comment: str = Field("", description="Why. Recorded with the decision; a rejection's reason.")
    override: bool = Field(False, description="Approve although a check listed above says no. Needs an override_reason.")
    override_reason: str = Field("", description="Why the checks above do not apply. Recorded on the version.")


@io_task(name="read review state")
def review_state(cfg, version: str) -> tuple[ModelRef, ModelRef | None, ModelRef | None]:
    """The version under review (a number or an alias), the champion and the challenger."""
    registry = Registry(cfg.registry)
    target = registry.version(version) if version.isdigit() else registry.by_alias(version)
    if target is None:
        raise RegistryError(f"{registry.name} has no {version!r} alias; nothing to review")
    return target, registry.by_alias(CHAMPION), registry.by_alias(CHALLENGER)


def review_page(cfg, target: ModelRef, champion: ModelRef | None, check: PromotionCheck) -> str:
    """The text above the form: what is reviewed, its gate table, and what approval needs."""
    registry = Registry(cfg.registry)
    gate = target.tags.get("driftloop.gate_verdict", "not run").upper()
    url = registry.ui_url(version=target.version)
    where = f"[open v{target.version} in MLflow]({url})" if url else f"MLflow store {redact(cfg.registry.tracking_uri)}"
    lines = [
        f"## Review {registry.name} v{target.version}: gate {gate}",
        "",
        f"Champion now: v{champion.version if champion else '-'}. Version under review: **v{target.version}** ({where}).",
        "",
        target.description,
        "",
    ]
    if check.needs_override:
        lines += ["### Approval needs `override` and an `override_reason`", "", *[f"- {r}" for r in check.needs_override], ""]
    lines.append(f"Choose **approve** to make v{target.version} the champion, or **reject** to take it off the review queue.")
    return "\n".join(lines)


@io_task(name="read review answer")
def review_answered(flow_run_id) -> bool:
    return answered(flow_run_id)


def _current(challenger: ModelRef | None) -> str:
    return f"v{challenger.version} is" if challenger else "no version is"


def _shown_version() -> str | None:
    """The version this run's form was shown for (a rerun after the answer resolves its parameters again)."""
    return next((t.removeprefix(VERSION_TAG) for t in (flow_run.tags or ()) if t.startswith(VERSION_TAG)), None)


@flow(name="promote", flow_run_name="review {version}")
@fails_cleanly
def promote(
    version: str = CHALLENGER,
    config_path: str = "driftloop.yaml",
    timeout_hours: float = 72.0,
    poll_seconds: int = 10,
):
    """Wait until a reviewer answers; ``version`` is a number or an alias (default: the challenger)."""
    logger = get_run_logger()
    cfg = load_config(config_path)
    model = cfg.registry.model_name
    shown = _shown_version()
    target, champion, challenger = review_state(cfg, shown or version)
    if not shown:  # first run: review only the current challenger, and say so in the run's name and tags
        if challenger is None or challenger.version != target.version:
            message = f"v{target.version} is not the challenger awaiting review ({_current(challenger)}); nothing to review"
            logger.info(message)
            return Cancelled(message=message)
        mark_review_run(flow_run.id, model, target.version, list(flow_run.tags or ()))
        close_stale_reviews(model, target.version, f"v{target.version} is the challenger awaiting review now")
    elif (challenger is None or challenger.version != target.version) and not review_answered(flow_run.id):
        # A retry of a review that was superseded (the UI's Retry on a Cancelled run): its form is gone.
        message = (f"review of v{target.version} superseded: {_current(challenger)} the challenger awaiting review now; "
                   "a retry has nothing to review")
        logger.info(message)
        return Cancelled(message=message)

    logger.info("waiting for a review of %s v%s (gate %s)", model, target.version, target.tags.get("driftloop.gate_verdict", "not run"))
    form = ReviewDecision.with_initial_data(description=review_page(cfg, target, champion, check_promotion(target, champion, challenger)))
    timeout = int(timeout_hours * 3600)
    if deployment.id:
        answer = suspend_flow_run(wait_for_input=form, timeout=timeout, key="review")
    else:
        answer = pause_flow_run(wait_for_input=form, timeout=timeout, poll_interval=poll_seconds, key="review")

    # The queue may have moved while the form waited (days, for a suspended run): judge the answer on today's registry.
    target, champion, challenger = review_state(cfg, target.version)
    if challenger is None or challenger.version != target.version:
        raise RegistryError(f"the answer was for v{target.version}, which is no longer the challenger awaiting review "
                            f"({_current(challenger)}); nothing changed. Review the current challenger, or run "
                            f"`driftloop promote {target.version} --override --reason '...'`")
    check = check_promotion(target, champion, challenger)
    registry = Registry(cfg.registry)
    reviewer = answer.reviewer.strip()
    if answer.decision == "approve":
        if check.refused:
            raise RegistryError(check.refused)
        if check.needs_override and not (answer.override and answer.override_reason.strip()):
            raise RegistryError(
                f"{'; '.join(check.needs_override)}; it was approved without `override` and an `override_reason`. "
                f"Start a new review and fill both, or run `driftloop promote {target.version} --override --reason '...'`"
            )
        previous, current = registry.promote(target.version, reviewer, answer.comment,
                                             override_reason=answer.override_reason if answer.override else None)
        outcome = f"v{current} promoted to champion (was v{previous or '-'})"
        logger.info("champion moved from v%s to v%s, approved by %s", previous, current, reviewer)
    else:
        registry.reject(target.version, reviewer, answer.comment or "rejected in the Prefect UI")
        outcome = f"v{target.version} rejected"
        logger.info("v%s rejected by %s: %s", target.version, reviewer, answer.comment)
    close_stale_reviews(model, None, f"{outcome} by {reviewer}")
    create_markdown_artifact(
        key="review-outcome",
        markdown=f"# {model}: {outcome}\n\n- reviewer: **{reviewer}**\n- comment: {answer.comment or '-'}\n"
                 + (f"- override: {answer.override_reason}\n" if answer.override and answer.override_reason.strip() else "")
                 + "\n`driftloop history` lists every alias move; `driftloop rollback --reason '...'` undoes a promotion.\n",
        description=f"{outcome} by {reviewer}",
    )
    return outcome
