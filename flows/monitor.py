"""prefect.yaml entrypoint: Validate, score, evaluate and check drift for new batches (driftloop_flows.monitor)."""

from driftloop_flows.monitor import monitor

__all__ = ["monitor"]
