"""The review queue in Prefect: which `promote` runs wait on a form, and closing the stale ones.

A review run tags itself with its model and version when it starts. When a newer challenger is
registered, or a version is promoted or rejected (in a form or from the CLI), every review still
waiting for another version is set Cancelled, with a message naming what superseded it, so a
person never answers a stale form.
"""

from __future__ import annotations

from dataclasses import dataclass

from prefect.client.orchestration import get_client
from prefect.exceptions import PrefectHTTPStatusError
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType, FlowRunFilterTags
from prefect.client.schemas.objects import StateType
from prefect.states import Cancelled

from driftloop_flows.common import io_task

MODEL_TAG, VERSION_TAG = "driftloop.model:", "driftloop.review:v"


@dataclass(frozen=True)
class WaitingReview:
    flow_run_id: str
    name: str
    version: str


def review_tags(model: str, version: str) -> list[str]:
    return [f"{MODEL_TAG}{model}", f"{VERSION_TAG}{version}"]


def mark_review_run(flow_run_id, model: str, version: str, tags: list[str]) -> None:
    """Name the run after what it reviews and tag it, so the queue can find it by model and version."""
    with get_client(sync_client=True) as client:
        keep = [t for t in tags if not t.startswith((MODEL_TAG, VERSION_TAG))]
        client.update_flow_run(flow_run_id, name=f"review {model} v{version}", tags=[*keep, *review_tags(model, version)])


def answered(flow_run_id, key: str = "review") -> bool:
    """Whether a person has submitted the form of this run (suspended or paused on ``key``): a run that
    starts again without an answer is a retry, not a resume."""
    with get_client(sync_client=True) as client:
        for state in ("suspended", "paused"):  # Prefect keys a form's answer by the waiting state's name
            try:
                client.read_flow_run_input(flow_run_id=flow_run_id, key=f"{state}-{key}-response")
                return True
            except PrefectHTTPStatusError as exc:
                if exc.response.status_code != 404:
                    raise
    return False


def waiting_reviews(model: str) -> list[WaitingReview]:
    """Review runs of ``model`` suspended or paused on their form."""
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            tags=FlowRunFilterTags(all_=[f"{MODEL_TAG}{model}"]),
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED])),
        ))
    found = []
    for run in runs:
        version = next((t.removeprefix(VERSION_TAG) for t in run.tags if t.startswith(VERSION_TAG)), None)
        if version is not None:
            found.append(WaitingReview(str(run.id), run.name, version))
    return found


def cancel_waiting_reviews(model: str, keep: str | None, because: str) -> list[WaitingReview]:
    """Cancel every waiting review of ``model`` except the one for version ``keep``; returns what was cancelled.

    A suspended run has no process left, so it goes straight to Cancelled with our message
    (asking for Cancelling would be turned into a Cancelled without it).
    """
    stale = [r for r in waiting_reviews(model) if r.version != keep]
    with get_client(sync_client=True) as client:
        for review in stale:
            client.set_flow_run_state(review.flow_run_id, Cancelled(message=f"review of v{review.version} superseded: {because}"),
                                      force=True)
    return stale


@io_task(name="cancel stale reviews")
def close_stale_reviews(model: str, keep: str | None, because: str) -> list[str]:
    """``cancel_waiting_reviews`` as a task of a flow run (retried on a Prefect API hiccup); the names it cancelled."""
    return [r.name for r in cancel_waiting_reviews(model, keep, because)]
