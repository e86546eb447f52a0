"""What every flow shares: retry rules, clean failure for user errors, registration."""

from __future__ import annotations

import functools

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.states import Failed

from driftloop.config import Config
from driftloop.errors import DriftloopError, RegistryUnavailable
from driftloop.registry import ModelRef, Registry


def transient_only(task, task_run, state) -> bool:
    """Retry I/O hiccups; a user error (bad file, unknown model) will not heal by waiting."""
    try:
        state.result()
    except RegistryUnavailable:
        return True
    except DriftloopError:
        return False
    except Exception:
        return True  # OSError and friends from disk or network
    return False


# Tasks that touch disk or MLflow; the rest are pure computation and do not retry.
io_task = functools.partial(
    task, retries=2, retry_delay_seconds=[1, 5], retry_condition_fn=transient_only, cache_policy=NO_CACHE
)
compute_task = functools.partial(task, cache_policy=NO_CACHE)


def fails_cleanly(fn):
    """A user error ends the flow run Failed with its one-line message, not a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except DriftloopError as exc:
            get_run_logger().error(str(exc))
            return Failed(message=str(exc))

    return wrapper


@io_task(name="register model version")
def register_candidate(cfg: Config, candidate, *, alias: str, run_name: str, params: dict, metrics: dict,
                       tags: dict, description: str, artifacts: dict, why: str) -> ModelRef:
    return Registry(cfg.registry).register(
        model=candidate.model,
        input_example=candidate.input_example,
        profile=candidate.profile,
        params=params,
        metrics=metrics,
        artifacts=artifacts,
        run_name=run_name,
        tags=tags,
        description=description,
        alias=alias,
        why=why,
    )


@io_task(name="load model")
def load_model(cfg: Config, alias: str):
    return Registry(cfg.registry).load(alias)
