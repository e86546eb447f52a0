"""The entrypoints prefect.yaml names. The flow code itself is installed with driftloop as
``driftloop_flows``, so `driftloop run ...` works outside this checkout."""
