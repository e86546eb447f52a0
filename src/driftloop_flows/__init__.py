"""Prefect-side helpers of driftloop, installed with it (unlike ``flows/``, the deployments' entrypoints).

The library ``driftloop`` never imports prefect; the code here does, and the CLI imports it
only inside the commands that need a Prefect server.
"""
