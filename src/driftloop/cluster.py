"""Dask adapter: the only module that imports ``distributed``.

A monitor run connects to a running scheduler (``execution.dask_address``); it never starts a
cluster. One client per scheduler and process, kept for the next run: a long-lived worker
pays for the connection once.
"""

from __future__ import annotations

import functools
from typing import Callable

from driftloop.errors import ClusterUnavailable


@functools.lru_cache(maxsize=4)
def client(address: str, timeout: float):
    from distributed import Client

    try:
        return Client(address, timeout=timeout, set_as_default=False, asynchronous=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise ClusterUnavailable(
            f"cannot reach the Dask scheduler at {address} within {timeout:g} s ({type(exc).__name__}); "
            "start it (dask scheduler) or unset execution.dask_address / DRIFTLOOP_DASK_ADDRESS to run in process"
        ) from None


def runner(address: str, timeout: float) -> Callable[..., list]:
    def run(fn: Callable, parts: list, **shared) -> list:
        dask = client(address, timeout)
        # Shared arguments (the model, the profile) go to every worker once, not with each partition.
        shared = {name: dask.scatter(value, broadcast=True, hash=False) for name, value in shared.items()}
        futures = dask.map(fn, dask.scatter(parts, hash=False), pure=False, **shared)
        try:
            return dask.gather(futures)
        finally:
            dask.cancel([*futures, *shared.values()])

    return run
