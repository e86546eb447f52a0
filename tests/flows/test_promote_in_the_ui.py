"""The promote flow pauses on a typed form; answering it through the Prefect API decides."""

from __future__ import annotations

import threading
import time

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey, FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType,
)
from prefect.client.schemas.objects import StateType
from prefect.client.schemas.sorting import FlowRunSort
from prefect.flow_runs import resume_flow_run

from driftloop.registry import CHALLENGER, CHAMPION, Registry
from driftloop_flows.promote import promote
from tests.conftest import register


def _paused_review_run(known: set, timeout: float = 60.0):
    """Wait until a new promote run is PAUSED and return it."""
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            runs = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED]))),
                sort=FlowRunSort.ID_DESC, limit=50,
            )
            fresh = [r for r in runs if r.id not in known and r.name.startswith("review")]
            if fresh:
                return fresh[0]
            time.sleep(0.5)
    raise AssertionError("the promote flow never paused")


def _review(config_path, answer: dict, while_waiting=lambda: None):
    """Start the promote flow in a thread, answer its form through the API, return its final state."""
    outcome = {}
    with get_client(sync_client=True) as client:
        known = {r.id for r in client.read_flow_runs(sort=FlowRunSort.ID_DESC, limit=200)}
    worker = threading.Thread(
        target=lambda: outcome.setdefault("state", promote(config_path=str(config_path), poll_seconds=1, return_state=True))
    )
    worker.start()
    run = _paused_review_run(known)
    while_waiting()
    resume_flow_run(run.id, run_input=answer)
    worker.join(timeout=120)
    assert not worker.is_alive()
    return outcome["state"]


@pytest.fixture
def registry_with_challenger(cfg, candidate):
    registry = Registry(cfg.registry)
    register(registry, candidate, CHAMPION)
    challenger = register(registry, candidate, CHALLENGER, gate_verdict="passed")
    return registry, challenger


def test_approval_in_the_form_moves_the_champion(config_path, registry_with_challenger):
    registry, challenger = registry_with_challenger
    state = _review(config_path, {"decision": "approve", "reviewer": "erin", "comment": "better on every segment"})
    assert state.is_completed(), state.message
    assert registry.by_alias(CHAMPION).version == challenger
    assert registry.history()[-1].who == "erin"
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(state.state_details.flow_run_id)
        outcome = client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=["review-outcome"]), flow_run_id=ArtifactFilterFlowRunId(any_=[run.id])))
    assert run.name == f"review {registry.name} v{challenger}" and f"driftloop.review:v{challenger}" in run.tags
    assert outcome and f"v{challenger} promoted to champion (was v1)" in outcome[0].data and "**erin**" in outcome[0].data


def test_the_form_requires_a_decision_and_a_reviewer_and_shows_the_version_only_as_text():
    from driftloop_flows.promote import ReviewDecision

    schema = ReviewDecision.model_json_schema()
    assert set(schema["required"]) == {"decision", "reviewer"}
    assert "version" not in schema["properties"]  # the version is in the text above the form, not an editable field
    assert schema["properties"]["reviewer"]["minLength"] == 1


def test_a_review_of_a_version_that_is_not_the_challenger_ends_cancelled_without_a_form(config_path, registry_with_challenger):
    registry, challenger = registry_with_challenger
    state = promote(version="1", config_path=str(config_path), return_state=True)
    assert state.is_cancelled() and state.message == f"v1 is not the challenger awaiting review (v{challenger} is); nothing to review"


def test_approving_a_gate_failure_without_an_override_fails_with_what_to_fill_in(cfg, config_path, candidate):
    registry = Registry(cfg.registry)
    register(registry, candidate, CHAMPION)
    failed = register(registry, candidate, CHALLENGER, gate_verdict="failed", gate_failed="roc_auc on region=south")
    state = _review(config_path, {"decision": "approve", "reviewer": "gail"})
    assert state.is_failed() and "failed the promotion gate (roc_auc on region=south)" in state.message
    assert "without `override` and an `override_reason`" in state.message and registry.by_alias(CHAMPION).version == "1"
    state = _review(config_path, {"decision": "approve", "reviewer": "gail", "override": True, "override_reason": "south is 40 rows"})
    assert state.is_completed(), state.message
    assert registry.by_alias(CHAMPION).version == failed
    assert registry.version(failed).tags["driftloop.override_reason"] == "south is 40 rows"


def test_an_answer_for_a_version_superseded_while_the_form_waited_changes_nothing(config_path, candidate, registry_with_challenger):
    registry, challenger = registry_with_challenger
    newer = {}
    state = _review(config_path, {"decision": "approve", "reviewer": "hal"},
                    while_waiting=lambda: newer.setdefault("v", register(registry, candidate, CHALLENGER, gate_verdict="passed")))
    assert state.is_failed() and f"the answer was for v{challenger}, which is no longer the challenger awaiting review (v{newer['v']} is)" in state.message
    assert registry.by_alias(CHAMPION).version == "1"


def test_rejection_in_the_form_keeps_the_champion(config_path, registry_with_challenger):
    registry, challenger = registry_with_challenger
    state = _review(config_path, {"decision": "reject", "reviewer": "frank", "comment": "holdout too small"})
    assert state.is_completed(), state.message
    assert registry.by_alias(CHAMPION).version == "1"
    assert registry.by_alias(CHALLENGER) is None
    assert registry.version(challenger).tags["driftloop.rejection_reason"] == "holdout too small"
