"""prefect.yaml entrypoint: Monitor every batch of a date range (driftloop_flows.backfill)."""

from driftloop_flows.backfill import backfill

__all__ = ["backfill"]
