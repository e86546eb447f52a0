"""A person reviews the challenger in the Prefect UI: the run waits on a typed form.

A deployment run *suspends*: its process exits and frees the worker while the review takes
days, and the worker reruns the flow when the form is answered (nothing before the wait is
worth keeping). A direct call (a script, a test) cannot be rescheduled, so it *pauses* in
its process. Approval moves the ``champion`` alias, rejection tags the version and removes
the ``challenger`` alias. The same decisions are available without Prefect from the CLI
(`driftloop promote | reject | rollback`); both write the same audit trail.
"""

from __future__ import annotations

from prefect import flow, get_run_logger, pause_flow_run, suspend_flow_run
from prefect.input import RunInput
from prefect.runtime import deployment

from driftloop.config import load_config
from driftloop.errors import RegistryError
from driftloop.registry import CHALLENGER, Registry
from flows.common import fails_cleanly


class ReviewDecision(RunInput):
    """The form the Prefect UI shows on the paused run."""

    version: str = ""  # the version the form was shown for
    approve: bool = False
    reviewer: str
    comment: str = ""
    override_gate: bool = False
    override_reason: str = ""


@flow(name="promote", flow_run_name="review {version}")
@fails_cleanly
def promote(
    version: str = CHALLENGER,
    config_path: str = "driftloop.yaml",
    timeout_hours: float = 72.0,
    poll_seconds: int = 10,
) -> str:
    """Wait until a reviewer answers; ``version`` is a number or an alias (default: the challenger)."""
    logger = get_run_logger()
    registry = Registry(load_config(config_path).registry)
    target = registry.version(version) if version.isdigit() else registry.by_alias(version)
    if target is None:
        raise RegistryError(f"{registry.name} has no {version!r} alias; nothing to review")
    gate = target.tags.get("driftloop.gate_verdict", "not run")
    logger.info("waiting for a review of %s v%s (gate %s)", registry.name, target.version, gate)
    form = ReviewDecision.with_initial_data(
        description=f"## Review {registry.name} v{target.version} (gate {gate.upper()})\n\n{target.description}\n\n"
        "Approve to make it the champion. A version that failed the gate needs `override_gate` and a written `override_reason`.",
        reviewer="",
        version=target.version,
    )
    timeout = int(timeout_hours * 3600)
    if deployment.id:
        answer = suspend_flow_run(wait_for_input=form, timeout=timeout, key="review")
    else:
        answer = pause_flow_run(wait_for_input=form, timeout=timeout, poll_interval=poll_seconds, key="review")
    if answer.version and answer.version != target.version:
        # a suspended run resolves `version` again when it reruns; an alias may have moved meanwhile
        raise RegistryError(f"the review was for v{answer.version} but {version!r} is now v{target.version}; "
                            f"start a new review of v{target.version}, or run `driftloop promote {answer.version}`")
    if answer.approve and gate == "failed" and not (answer.override_gate and answer.override_reason.strip()):
        raise RegistryError(
            f"v{target.version} failed the promotion gate ({target.tags.get('driftloop.gate_failed', 'see its description')}) and "
            "was approved without override_gate and an override_reason; start a new review and fill both, or run "
            f"`driftloop promote {target.version} --override --reason '...'`"
        )
    if answer.approve:
        previous, current = registry.promote(
            target.version, answer.reviewer, answer.comment,
            override_reason=answer.override_reason if answer.override_gate else None,
        )
        logger.info("champion moved from v%s to v%s, approved by %s", previous, current, answer.reviewer)
        return f"promoted v{current}"
    registry.reject(target.version, answer.reviewer, answer.comment or "rejected in the Prefect UI")
    logger.info("v%s rejected by %s: %s", target.version, answer.reviewer, answer.comment)
    return f"rejected v{target.version}"
