"""A person reviews a challenger in the Prefect UI, in a real browser, on the stack `make up` starts.

Playwright for Python drives Debian's chromium (`make browser` installs it); Playwright's own
browser download is never used. Versions are registered in the stack's MLflow server and
announced with the same event the retrain flow emits, so the automation of prefect.yaml starts
each review run and the worker suspends it on its form.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey
from prefect.client.schemas.objects import StateType
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.states import AwaitingRetry

from driftloop import cli
from driftloop.config import TRACKING_URI_ENV, load_config
from driftloop.registry import CHALLENGER, CHAMPION, Registry
from driftloop_flows.reviews import VERSION_TAG
from driftloop_flows.retrain import CHALLENGER_REGISTERED
from tests.conftest import register, write_project
from tests.integration.conftest import chromium, emit, prefect_api_at, wait_for_run

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def project(made_up):
    """A project whose registry is the stack's MLflow server, under a model name of its own (the README
    project's churn-classifier is there already); champion v1 trained on January."""
    (made_up["tmp"] / "project").mkdir()
    path = write_project(made_up["tmp"] / "project", registry={"model_name": "churn-reviewed"})
    with pytest.MonkeyPatch.context() as env:
        env.setenv(TRACKING_URI_ENV, made_up["mlflow"])
        env.setenv("PREFECT_API_URL", made_up["api"])
        cfg = load_config(path)
        yield {"path": path, "cfg": cfg, "registry": Registry(cfg.registry), "api": made_up["api"]}


def offer(project, candidate, window: str) -> str:
    """Register a gate-passing version as challenger and announce it, as the retrain flow does."""
    version = register(project["registry"], candidate, CHALLENGER, data_window=window, gate_verdict="passed", offered="yes")
    name = project["cfg"].registry.model_name
    emit(project["api"], CHALLENGER_REGISTERED, {"prefect.resource.id": f"driftloop.model.{name}", "prefect.resource.name": name},
         {"version": version, "gate": "passed", "config_path": str(project["path"])})
    return version


def waiting_review(version: str):
    run = wait_for_run("promote/review", StateType.PAUSED, where=lambda r: f"{VERSION_TAG}{version}" in r.tags)
    assert run.state.name == "Suspended"
    return run


def pick(page, field: str, option: str) -> None:
    """Choose ``option`` in the select of the form field labelled ``field``."""
    form = page.get_by_role("dialog")
    prop = form.locator(".schema-form-property").filter(has=page.locator(".schema-form-property__label", has_text=field))
    prop.locator(".p-select-button__icon").click()  # the chevron opens the list
    page.get_by_role("option", name=option, exact=True).click()
    expect(prop).to_contain_text(option)  # the choice is in the form before the next click (a loaded machine lags)


def write(page, field: str, text: str) -> None:
    form = page.get_by_role("dialog")
    box = form.locator(".schema-form-property").filter(has=page.locator(".schema-form-property__label", has_text=field)).locator(
        "textarea, input").first
    box.fill(text)
    expect(box).to_have_value(text)


def test_a_reviewer_approves_the_challenger_in_the_prefect_ui(made_up, project, candidate, capsys):
    register(project["registry"], candidate, CHAMPION, data_window="2026-01-01..2026-01-10")
    version = offer(project, candidate, "2026-02-01..2026-02-05")
    run = waiting_review(version)

    with chromium() as page:
        page.goto(f"{made_up['api'].removesuffix('/api')}/runs/flow-run/{run.id}")
        page.get_by_role("button", name="Resume").click()
        form = page.get_by_role("dialog")
        # expect() waits for the dialog to render (a loaded machine lags); is_visible() would look once
        expect(form.get_by_text(f"Review {project['cfg'].registry.model_name} v{version}: gate PASSED")).to_be_visible()
        expect(form.get_by_text("(Optional)")).to_have_count(3)  # comment, override, override reason; decision and reviewer are required
        form.get_by_role("button", name="Submit").click()  # an empty form is refused in the browser, nothing is sent
        expect(form.get_by_text("'reviewer' is a required property")).to_be_visible()
        pick(page, "Decision", "approve")
        write(page, "Reviewer", "dana")
        write(page, "Comment", "recovers AUC on every segment")
        form.get_by_role("button", name="Submit").click()
        form.wait_for(state="hidden")

    wait_for_run("promote/review", StateType.COMPLETED, where=lambda r: r.id == run.id)
    assert project["registry"].by_alias(CHAMPION).version == version
    capsys.readouterr()
    assert cli.main(["--config", str(project["path"]), "history"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert "promote" in last and "dana" in last and "recovers AUC on every segment" in last
    with get_client(sync_client=True) as client:
        outcome = client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=["review-outcome"]), flow_run_id=ArtifactFilterFlowRunId(any_=[run.id])))
    assert outcome and f"v{version} promoted to champion (was v1)" in outcome[0].data


def test_a_superseded_review_is_cancelled_and_its_form_cannot_be_answered(made_up, project, candidate, capsys):
    older = offer(project, candidate, "2026-02-06..2026-02-10")
    stale = waiting_review(older)
    newer = offer(project, candidate, "2026-02-08..2026-02-12")
    current = waiting_review(newer)
    cancelled = wait_for_run("promote/review", StateType.CANCELLED, where=lambda r: r.id == stale.id)
    assert cancelled.state.message == f"review of v{older} superseded: v{newer} is the challenger awaiting review now"

    with chromium() as page:
        page.goto(f"{made_up['api'].removesuffix('/api')}/runs/flow-run/{stale.id}")
        page.get_by_text("Cancelled").first.wait_for()
        assert page.get_by_role("button", name="Resume").count() == 0  # no form to answer
    # A person retries it anyway, as the UI's Retry does: the worker runs it again, and it has nothing to review.
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(stale.id, AwaitingRetry(), force=True)
    retried = wait_for_run("promote/review", StateType.CANCELLED, where=lambda r: r.id == stale.id and r.run_count > cancelled.run_count)
    assert retried.state.message == f"review of v{older} superseded: v{newer} is the challenger awaiting review now; a retry has nothing to review"

    # A decision from the CLI closes the form it made stale, too.
    capsys.readouterr()
    with prefect_api_at(made_up["api"]):
        assert cli.main(["--config", str(project["path"]), "promote", newer, "--reviewer", "erin"]) == 0
    assert f"cancelled the waiting review run 'review {project['cfg'].registry.model_name} v{newer}'" in capsys.readouterr().out
    closed = wait_for_run("promote/review", StateType.CANCELLED, where=lambda r: r.id == current.id, timeout=30)
    assert closed.state.message == f"review of v{newer} superseded: v{newer} was promoted by erin from the CLI"
    assert project["registry"].by_alias(CHAMPION).version == newer

