"""Where a run's time and memory go: wall seconds, CPU seconds and peak RSS of each stage.

The flows measure every task with :func:`measure`; the monitor logs each run's task seconds to its
MLflow run (``seconds.<task>``), `make bench-cycle` reads the stages back, and the debug log has
every one. Peak RSS is the process's high-water mark during the
stage (Linux resets it per stage through /proc/self/clear_refs; elsewhere it is the peak so far).
Stages may overlap (tasks submitted side by side): the high-water mark is then reset only when no
other stage is running, so a stage's peak is never lost, and CPU seconds, being the process's,
count the work of every stage running at the time.
"""

from __future__ import annotations

import logging
import resource
import threading
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stage:
    name: str
    started: float  # time.perf_counter() at its start: overlapping stages are told apart
    wall_seconds: float
    cpu_seconds: float  # of the whole process: every thread's work during the stage
    peak_rss_mb: float


# The newest stages of this process; bounded, so a long-lived worker does not grow with its runs.
RECORDED: deque[Stage] = deque(maxlen=10_000)
_counted = 0  # stages ever recorded in this process
_running = 0  # stages measured right now, in any thread
_lock = threading.Lock()


def mark() -> int:
    """A point to read the stages recorded after it (:func:`since`)."""
    return _counted


def since(point: int) -> list[Stage]:
    """The stages recorded after ``point`` (as many as are still kept)."""
    newer = _counted - point
    return list(RECORDED)[-newer:] if newer > 0 else []


def reset_peak_rss() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass  # not Linux, or not allowed: the peak is the process's so far


def peak_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextmanager
def measure(name: str):
    global _counted, _running
    with _lock:
        if not _running:
            reset_peak_rss()
        _running += 1
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        yield
    finally:
        stage = Stage(name, wall, time.perf_counter() - wall, time.process_time() - cpu, peak_rss_mb())
        with _lock:
            _running -= 1
            RECORDED.append(stage)
            _counted += 1
        logger.debug("%s: %.2f s wall, %.2f s CPU, peak RSS %.0f MB", name, stage.wall_seconds, stage.cpu_seconds, stage.peak_rss_mb)
