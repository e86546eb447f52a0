"""prefect.yaml entrypoint: Fit a version, gate it against the champion, register it (driftloop_flows.retrain)."""

from driftloop_flows.retrain import retrain

__all__ = ["retrain"]
