"""A person approves or rejects the challenger; approval moves the champion alias."""

from __future__ import annotations

from prefect import flow, get_run_logger

from driftloop.config import load_config
from driftloop.registry import CHALLENGER, Registry
from driftloop.errors import RegistryError
from flows.common import fails_cleanly


@flow(name="promote", flow_run_name="promote v{version} ({reviewer})")
@fails_cleanly
def promote(version: str, reviewer: str, approve: bool = True, comment: str = "", config_path: str = "driftloop.yaml") -> str:
    logger = get_run_logger()
    registry = Registry(load_config(config_path).registry)
    if approve:
        previous, current = registry.promote(version, reviewer, comment)
        logger.info("champion moved from v%s to v%s by %s", previous, current, reviewer)
        return current
    if not comment:
        raise RegistryError("a rejection needs a reason: pass comment=...")
    registry.reject(version, reviewer, comment)
    logger.info("version %s rejected by %s: %s (%s alias removed)", version, reviewer, comment, CHALLENGER)
    return version
