"""Thin Prefect flows over the driftloop library: load config, call the library in tasks, branch."""
