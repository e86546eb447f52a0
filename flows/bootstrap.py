"""prefect.yaml entrypoint: Train the first champion on the reference period (driftloop_flows.bootstrap)."""

from driftloop_flows.bootstrap import bootstrap

__all__ = ["bootstrap"]
