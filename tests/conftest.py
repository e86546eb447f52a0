"""Fixtures shared by every test layer: a small copy of the demo project under tmp_path."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import yaml

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

from driftloop.config import Config, load_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_CONFIG = ROOT / "driftloop.yaml"

# A scenario small enough for a test and long enough for every event to show.
SMALL_DEMO = {
    "reference_rows": 6000,
    "rows_per_day": 800,
    "n_days": 13,
    "quality_incident_day": 3,
    "covariate_shift_day": 5,
    "concept_drift_day": 6,
}


def write_project(tmp_path: Path, **overrides) -> Path:
    """Copy the shipped config into tmp_path, pointing data and MLflow there; returns its path."""
    raw = yaml.safe_load(SHIPPED_CONFIG.read_text())
    raw["validation"]["suite"] = str(ROOT / raw["validation"]["suite"])
    raw["demo"] |= SMALL_DEMO
    raw["training"]["min_train_rows"] = 500
    for section, values in overrides.items():
        raw.setdefault(section, {}).update(values)
    path = tmp_path / "driftloop.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


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
