"""Fixtures shared by every test layer: a small copy of the demo project under tmp_path."""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import functools
import os
import pickle
import secrets
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
# Tests write to their own stores under tmp_path, never to a server a developer has running.
os.environ.pop("MLFLOW_TRACKING_URI", None)
os.environ.pop("DRIFTLOOP_TRACKING_URI", None)
os.environ.pop("PREFECT_API_URL", None)

from driftloop.config import Config, load_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_CONFIG = ROOT / "driftloop.yaml"

# A scenario small enough for a test and long enough for every event to show.
SMALL_DEMO = {
    "reference_rows": 6000,
    "rows_per_batch": 800,
    "n_batches": 13,
    "quality_incident_batch": 3,
    "covariate_shift_batch": 5,
    "concept_drift_batch": 6,
}

# The days the small scenario retrains on when monitored inline, one per degradation episode
# (the concept drift's labels land on day 8; cooldown_batches 3). The server path, whose retrains
# run later through an automation, must ask for exactly these.
INLINE_RETRAIN_DAYS = ("2026-02-08", "2026-02-11")


def stored_events(api: str, name: str, where=lambda event: True, at_least: int = 1, timeout: float = 60) -> list[dict]:
    """Events named ``name`` that satisfy ``where``, as the Prefect server stored them.

    The server persists events in batches and other tests share it, so this reads every page
    and waits until ``at_least`` of the caller's events are there (or ``timeout`` passes).
    """
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        page = httpx.post(f"{api}/events/filter", json={"filter": {"event": {"name": [name]}}, "limit": 50}, timeout=10)
        events = []
        while True:
            page.raise_for_status()
            body = page.json()
            events += [event for event in body["events"] if where(event)]
            if not body.get("next_page"):
                break
            page = httpx.get(body["next_page"], timeout=10)
        if len(events) >= at_least or time.monotonic() > deadline:
            return events
        time.sleep(1)


@functools.cache
def _empty_mlflow_store() -> Path:
    """An MLflow SQLite store with its tables made, once per test process. A new store runs all of
    MLflow's migrations (seconds), and almost every test starts one; a copy of this one is the same
    empty store."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    folder = Path(tempfile.mkdtemp(prefix="driftloop-empty-mlflow-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    SqlAlchemyStore(f"sqlite:///{folder / 'mlflow.db'}", str(folder / "artifacts")).engine.dispose()
    return folder / "mlflow.db"


# Unit tests never open MLflow (tests/unit/conftest.py turns this off for each of them), so a unit
# run never pays for making the empty store.
NEW_STORE_BY_DEFAULT = True


def write_project(tmp_path: Path, *, new_store: bool | None = None, **overrides) -> Path:
    """Copy the shipped config into tmp_path, pointing data and MLflow there; returns its path.
    With ``new_store``, a project on the default local MLflow store starts with an empty one (a copy of
    ``_empty_mlflow_store``); without, with none (as the demo wants)."""
    new_store = NEW_STORE_BY_DEFAULT if new_store is None else new_store
    raw = yaml.safe_load(SHIPPED_CONFIG.read_text())
    raw["validation"]["suite"] = str(ROOT / raw["validation"]["suite"])
    raw["demo"] |= SMALL_DEMO
    raw["training"]["min_train_rows"] = 500
    # Drawing is most of a small monitor run's time: the tests that look at the charts draw them
    # (test_loop, test_charts; the README's first server run sends them to `make up`'s MLflow).
    raw.setdefault("reports", {})["charts"] = False
    for section, values in overrides.items():
        raw.setdefault(section, {}).update(values)
    path = tmp_path / "driftloop.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    store = tmp_path / "mlruns" / "mlflow.db"  # the shipped tracking_uri, relative to the config
    if new_store and raw["registry"]["tracking_uri"] == "sqlite:///mlruns/mlflow.db" and not store.exists():
        store.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(_empty_mlflow_store(), store)
    return path


@pytest.fixture(scope="session")
def prefect_harness():
    """One real, temporary Prefect API per pytest worker for the flows this process runs (started
    once: it takes seconds); its runs go without heartbeats, as the CLI runs them against its own
    throwaway API."""
    from prefect.testing.utilities import prefect_test_harness

    from driftloop_flows.common import heartbeats_off

    with prefect_test_harness(server_startup_timeout=120), heartbeats_off():
        yield


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    return write_project(tmp_path)


@pytest.fixture
def cfg(config_path: Path) -> Config:
    return load_config(config_path)


@pytest.fixture
def demo_project(cfg: Config):
    """The small scenario written to disk: (config, generated plan)."""
    from driftloop import demo

    return cfg, demo.generate(cfg.demo, cfg.data)


@pytest.fixture(scope="session")
def candidate(tmp_path_factory):
    """A model fitted on the small scenario's reference period. Fitting once is enough: the workers of
    `pytest -n` share one fit, pickled beside their temporary folders (which are this run's alone)."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return _fit_candidate(tmp_path_factory.mktemp("fit"))
    run_folder = tmp_path_factory.getbasetemp().parent
    fitted = run_folder / "candidate.pickle"
    with open(run_folder / "candidate.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the first worker fits, the others wait and read
        if not fitted.exists():
            candidate = _fit_candidate(tmp_path_factory.mktemp("fit"))
            fitted.write_bytes(pickle.dumps(candidate))
            return candidate
    return pickle.loads(fitted.read_bytes())


def _fit_candidate(folder: Path):
    from driftloop import data, training
    from driftloop.demo import generate

    cfg = load_config(write_project(folder, new_store=False))
    generate(cfg.demo, cfg.data)
    train, holdout = training.split_by_time(data.read_reference(cfg.data, cfg.columns), cfg.columns, 0.2)
    return training.train_candidate(train, holdout, cfg.columns.timestamp_column, cfg.columns, cfg.training, cfg.drift, 0.5)


def register(registry, candidate, alias: str, **tags) -> str:
    """Register ``candidate`` under ``alias`` with extra lineage tags; returns the version."""
    ref = registry.register(
        model=candidate.model, input_example=candidate.input_example, profile=candidate.profile,
        params={"p": 1}, metrics={f"holdout_{k}": v for k, v in candidate.holdout_metrics.items()},
        artifacts={}, run_name="test", tags={"trigger": "test", **tags}, description="test version", alias=alias,
        why="registered by a test",
    )
    return ref.version


# The PostgreSQL the production-setup tests make their own databases on (trust auth).
POSTGRES_ENV = "DRIFTLOOP_TEST_POSTGRES"
POSTGRES_ADMIN = os.environ.get(POSTGRES_ENV, "postgresql://postgres@127.0.0.1:5432/test")


@functools.cache
def postgres_problem() -> str | None:
    """Why the tests' PostgreSQL cannot be used, or None when it can."""
    import psycopg

    try:
        with psycopg.connect(_admin_conninfo(), connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return f"PostgreSQL at {_server(POSTGRES_ADMIN)} is unreachable ({str(exc).splitlines()[0]})"


def _admin_conninfo() -> str:
    return POSTGRES_ADMIN.replace("postgresql+psycopg://", "postgresql://")


def _server(url: str) -> str:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    return f"{parsed.host}:{parsed.port or 5432}"


@contextlib.contextmanager
def postgres_databases(*kinds: str):
    """Fresh databases on the tests' PostgreSQL, one per kind, dropped afterwards: {kind: SQLAlchemy URL (psycopg)}."""
    import psycopg
    from sqlalchemy.engine import make_url

    suffix = secrets.token_hex(4)
    names = {kind: f"driftloop_test_{kind}_{suffix}" for kind in kinds}
    admin = make_url(POSTGRES_ADMIN).set(drivername="postgresql+psycopg")
    with psycopg.connect(_admin_conninfo(), autocommit=True) as conn:
        for name in names.values():
            conn.execute(f"CREATE DATABASE {name}")
    try:
        yield {kind: admin.set(database=name).render_as_string(hide_password=False) for kind, name in names.items()}
    finally:
        from driftloop import history, ledger

        for engines in (ledger.engine, history._engine):  # release pooled connections before the databases are dropped
            engines.cache_clear()
        with psycopg.connect(_admin_conninfo(), autocommit=True) as conn:
            for name in names.values():
                conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def pytest_report_header(config) -> str | None:
    if postgres_problem():
        then = "they fail (CI is set)" if os.environ.get("CI") else "they are skipped here, and fail in CI"
        return (f"{postgres_problem()}: the tests marked postgres need it; start it, or point {POSTGRES_ENV} at one "
                f"(postgresql://user@host:port/db, trust auth, allowed to CREATE DATABASE); {then}")
    return None


def pytest_xdist_make_scheduler(config, log):
    """`make test`'s `--dist loadscope`, with the files that share `make up`'s stack (the session
    fixture ``made_up``) as one scope: one worker starts that stack once and runs them all. The
    scopes go out in collection order (``pytest_collection_modifyitems``: the long ones first), not
    xdist's default of the most tests first, which left the longest test, alone in its file, for last."""
    if config.getoption("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    config.option.loadscopereorder = False

    shared = {f"tests/integration/{p.name}" for p in (ROOT / "tests" / "integration").glob("test_*.py") if "made_up" in p.read_text()}

    class OneScopePerStack(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return "made_up" if module in shared else module

    return OneScopePerStack(config, log)


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        if "postgres_url" in item.fixturenames:
            item.add_marker(pytest.mark.postgres)
        if item.get_closest_marker("postgres") and postgres_problem() and not os.environ.get("CI"):
            item.add_marker(pytest.mark.skip(reason=f"{postgres_problem()}; set {POSTGRES_ENV} to run it"))
    # Under `pytest -n --dist loadscope` (make test) each module runs on one worker, in this order: the
    # longest first (the files sharing `make up`'s stack, the other servers, the scenarios), the many
    # short unit files last, so no worker is left with a long one at the end.
    layer = {"integration": 1, "flows": 2}
    items.sort(key=lambda item: 0 if "made_up" in item.fixturenames else layer.get(item.path.parent.name, 3))


@pytest.fixture
def postgres_url():
    """A PostgreSQL database of its own (trust auth), made and dropped by the test: the production ledger."""
    if postgres_problem():
        pytest.fail(f"{postgres_problem()}; start it, or point {POSTGRES_ENV} at one", pytrace=False)
    with postgres_databases("ledger") as urls:
        yield urls["ledger"]
