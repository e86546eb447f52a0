"""prefect.yaml entrypoint: A person reviews the challenger on a form (driftloop_flows.promote)."""

from driftloop_flows.promote import promote

__all__ = ["promote"]
