"""Monitor every batch of a date range, in order, with a progress artifact in the Prefect UI."""

# No `from __future__ import annotations` here: Prefect resolves parameter annotations in the
# globals of the fails_cleanly wrapper, which does not know `date`; real objects need no lookup.
from datetime import date, timedelta

from prefect import flow, get_run_logger
from prefect.artifacts import create_progress_artifact, create_table_artifact, update_progress_artifact

from driftloop.errors import ConfigError
from flows.common import fails_cleanly
from flows.monitor import monitor, summarize


@flow(name="backfill", flow_run_name="backfill {start}..{end}")
@fails_cleanly
def backfill(start: date, end: date, config_path: str = "driftloop.yaml", retrain_inline: bool = False) -> list[dict]:
    """One monitor run per day from ``start`` to ``end`` inclusive; a failed day does not stop the rest."""
    logger = get_run_logger()
    if end < start:
        raise ConfigError(f"backfill end {end} is before start {start}; swap them")
    days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    progress = create_progress_artifact(progress=0.0, key="backfill-progress", description=f"backfill {start}..{end}")
    rows = []
    for done, day in enumerate(days, start=1):
        state = monitor(batch_id=day.isoformat(), config_path=config_path, retrain_inline=retrain_inline, return_state=True)
        rows.append({"batch": day.isoformat()} | summarize(state))
        update_progress_artifact(progress, progress=100.0 * done / len(days))
        logger.info("%d/%d %s: %s", done, len(days), day, rows[-1]["decision"] if state.is_completed() else rows[-1]["validation"])
    create_table_artifact(key="backfill-summary", table=rows, description=f"monitor verdicts for {start}..{end}")
    return rows
