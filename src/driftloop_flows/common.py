"""What every flow shares: retry rules, clean failure for user errors, registration."""

from __future__ import annotations

import contextlib
import functools
import gc
import hashlib
import logging
import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.context import SettingsContext
from prefect.settings import get_current_settings
from prefect.states import Failed

from driftloop import drift, evaluation, stages, training
from driftloop.config import Config
from driftloop.errors import BatchRejected, DriftloopError, LedgerUnavailable, RegistryUnavailable
from driftloop.redaction import redact
from driftloop.registry import ModelRef, Registry


class _UserErrorsInOneLine(logging.Filter):
    """Prefect's engines log a failed task or flow with its traceback; a DriftloopError is a user
    error whose one line already says what to fix, so its record keeps the message only. Every
    record of a run's logger (sent to the Prefect API) is redacted, whoever wrote it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], DriftloopError):
            record.exc_info, record.exc_text = None, None
        message = record.getMessage()
        if (redacted := redact(message)) != message:
            record.msg, record.args = redacted, ()
        return True


for _engine_logger in ("prefect.task_runs", "prefect.flow_runs"):
    logging.getLogger(_engine_logger).addFilter(_UserErrorsInOneLine())


def transient_only(task, task_run, state) -> bool:
    """Retry I/O hiccups; a user error (bad file, unknown model) will not heal by waiting."""
    try:
        state.result()
    except (RegistryUnavailable, LedgerUnavailable):
        return True
    except DriftloopError:
        return False
    except Exception:
        return True  # OSError and friends from disk or network
    return False


def _measured_task(**defaults):
    """``task`` whose every call is measured as a stage (driftloop.stages: wall, CPU, peak RSS)."""

    def options(**given):
        def decorate(fn):
            @functools.wraps(fn)
            def measured(*args, **kwargs):
                with stages.measure(given.get("name", fn.__name__)):
                    return fn(*args, **kwargs)

            return task(**defaults | given)(measured)

        return decorate

    return options


# Tasks that touch disk or MLflow; the rest are pure computation and do not retry.
io_task = _measured_task(retries=2, retry_delay_seconds=[1, 5], retry_condition_fn=transient_only, cache_policy=NO_CACHE)
compute_task = _measured_task(cache_policy=NO_CACHE)


# Part of every cache key: results computed by other library code are never reused.
LIBRARY_HASH = hashlib.sha256(
    b"".join(Path(module.__file__).read_bytes() for module in (training, drift, evaluation))
).hexdigest()[:12]


def cache_key(kind: str, *parts: object) -> str:
    """A persisted-result key from content fingerprints and settings, for tasks worth not redoing."""
    digest = hashlib.sha256("\x1f".join(map(str, (LIBRARY_HASH, *parts))).encode()).hexdigest()[:32]
    return f"{kind}-{digest}"


def training_key(kind: str, cfg: Config, *frames) -> str:
    """Same rows and same settings fit the same model: the key of a training task. Where the config
    lives is not a setting of the built-in estimator (a moved or copied project refits nothing); an
    own estimator's folder is, since its fitted model unpickles only where its module imports."""
    own = cfg.training.estimator is not None
    fit = cfg.training if own else cfg.training.model_copy(update={"estimator_path": None})
    settings = (cfg.columns, fit, training.estimator_fingerprint(cfg.training), cfg.drift, cfg.evaluation.decision_threshold)
    return cache_key(kind, *(training.fingerprint(f) for f in frames), *map(repr, settings))


# Expensive, deterministic tasks: a retried or rerun flow picks the stored result up by key.
cached_task = _measured_task(persist_result=True, cache_expiration=timedelta(days=7))


def freeze_what_is_loaded() -> None:
    """After a process's first flow run, move every object then alive (the imports of Prefect, GX,
    MLflow, scikit-learn: millions) out of the cyclic collector's reach. In a long-lived worker a
    full collection otherwise scans them all, a 0.5 s pause in about one run in five of a 2,000-row
    batch; frozen, later collections scan only what later runs create. Once per process."""
    if not gc.get_freeze_count():
        gc.freeze()


@contextlib.contextmanager
def heartbeats_off() -> Iterator[None]:
    """Flow runs started inside send no heartbeats: for runs against an API that lives only as long
    as this process (the one Prefect starts when no PREFECT_API_URL is set, a test harness). No one
    there watches for a crashed run, and Prefect ends every run by waiting out its heartbeat
    thread's current one-second sleep. Against a server, leave them on: they are how it tells a
    crashed run from a slow one."""
    settings = get_current_settings()
    quiet = settings.model_copy(update={"flows": settings.flows.model_copy(update={"heartbeat_frequency": None})})
    with SettingsContext(profile=SettingsContext.get().profile, settings=quiet):
        yield


def run_settings() -> contextlib.AbstractContextManager:
    """The settings this process's flow runs go in: ``heartbeats_off`` unless PREFECT_API_URL names a server."""
    return contextlib.nullcontext() if os.environ.get("PREFECT_API_URL") else heartbeats_off()


def fails_cleanly(fn):
    """A user error ends the flow run Failed with its one-line message, not a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except DriftloopError as exc:
            get_run_logger().error(str(exc))
            # The state's name tells a caller (the CLI's exit code) and the UI which kind of failure it was.
            return Failed(message=str(exc), name="Quarantined" if isinstance(exc, BatchRejected) else "Failed")

    return wrapper


@io_task(name="register model version")
def register_candidate(cfg: Config, candidate, *, alias: str | None, run_name: str, params: dict, metrics: dict,
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
        code_path=cfg.training.code_path,
    )


@io_task(name="load model")
def load_model(cfg: Config, alias: str):
    return Registry(cfg.registry).load(alias, cfg.training.code_path)
