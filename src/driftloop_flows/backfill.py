"""Monitor every batch of a date range, in order, with a progress artifact in the Prefect UI."""

# No `from __future__ import annotations` here: Prefect resolves parameter annotations in the
# globals of the fails_cleanly wrapper, which does not know `date`; real objects need no lookup.
from datetime import date

from prefect import flow, get_run_logger

from driftloop.config import load_config
from driftloop.errors import ConfigError
from driftloop_flows.common import fails_cleanly
from driftloop_flows.monitor import check_files, find_batches, monitor_each


@flow(name="backfill", flow_run_name="backfill {start}..{end}")
@fails_cleanly
def backfill(start: date, end: date, config_path: str = "driftloop.yaml", retrain_inline: bool = False) -> list[dict]:
    """One monitor run per batch whose id falls in ``start``..``end`` (inclusive), whatever the cadence:
    the batch files in ``data.incoming`` and the batches the ledger already finished (reported as
    such). A failed batch does not stop the rest."""
    if end < start:
        raise ConfigError(f"backfill end {end} is before start {start}; swap them")
    cfg = load_config(config_path)
    check_files(cfg, None)
    batches = find_batches(cfg, start, end, new_only=False)
    if not batches:
        get_run_logger().warning("no batch between %s and %s in %s or the ledger", start, end, cfg.data.incoming)
        return []
    return monitor_each(batches, config_path, retrain_inline, f"backfill {start}..{end}: {len(batches)} batch(es)")
