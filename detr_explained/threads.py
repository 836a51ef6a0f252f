"""How many CPU threads a run should use: the cores that are free, not every core.

Explained in ``book/07_train_it_yourself.ipynb``. PyTorch starts one OpenMP thread per core, and
every parallel operation waits for its slowest thread. When another program keeps one of two
cores busy, one of the two threads is often off the CPU and the other waits for it: measured on
this project's 2-core machine, 40 training steps took 2.6 times as long with one core busy and 2
threads, but only 1.16 times as long with 1 thread. So a run measures how much of the CPU other
programs use and sets ``torch.set_num_threads`` to the cores that are left (at least 1), and
measures again every ``RECHECK_SECONDS``, since the other program may stop or start.

The measure comes from ``/proc/stat`` (Linux, Colab included): CPU time of the whole machine minus
this process's own, over the same wall time. Elsewhere the thread count is left as it is.

A run whose thread count changes is not repeatable bit for bit (sums are split differently);
``--threads N`` in the training command fixes it.
"""
from __future__ import annotations

import math
import os
import time
from typing import Optional

import torch

# Re-measure the other programs' load this often during a run.
RECHECK_SECONDS = 30.0
# How long the first measure watches the machine before a run starts.
FIRST_SAMPLE_SECONDS = 0.5
# Other programs using less than this much of a core (a shell, a browser tab) cost no thread.
IGNORED_LOAD = 0.3

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity; ``book/07_train_it_yourself.ipynb``)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _machine_busy_seconds() -> Optional[float]:
    """CPU seconds every core of the machine has spent working since boot, or None off Linux."""
    try:
        with open("/proc/stat", encoding="ascii") as handle:
            fields = handle.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    # user nice system idle iowait irq softirq steal ...: busy is all but idle and iowait
    ticks = [int(value) for value in fields[1:]]
    busy = sum(ticks) - ticks[3] - (ticks[4] if len(ticks) > 4 else 0)
    return busy / _CLOCK_TICKS


class LoadMeter:
    """How many cores other programs kept busy since the last reading
    (``book/07_train_it_yourself.ipynb``)."""

    def __init__(self):
        self._last = self._reading()

    @staticmethod
    def _reading():
        return time.monotonic(), _machine_busy_seconds(), time.process_time()

    @property
    def available(self) -> bool:
        """Whether this system lets the load be measured (``/proc/stat``)."""
        return self._last[1] is not None

    def others(self) -> Optional[float]:
        """Cores busy with other processes since the last call (0.0 .. cores), or None."""
        now = self._reading()
        (wall0, busy0, own0), (wall1, busy1, own1) = self._last, now
        self._last = now
        if busy0 is None or busy1 is None or wall1 - wall0 <= 0:
            return None
        others = ((busy1 - busy0) - (own1 - own0)) / (wall1 - wall0)
        return min(max(others, 0.0), float(usable_cores()))


def free_cores(other_load: float, cores: Optional[int] = None) -> int:
    """Threads to use when other programs keep ``other_load`` cores busy: the rest, at least 1
    (``book/07_train_it_yourself.ipynb``).

    >>> free_cores(0.1, cores=2), free_cores(1.0, cores=2), free_cores(2.0, cores=2)
    (2, 1, 1)
    """
    if not (isinstance(other_load, (int, float)) and math.isfinite(other_load) and other_load >= 0):
        raise ValueError(f"other_load must be a number of cores >= 0, got {other_load!r}")
    cores = usable_cores() if cores is None else cores
    if cores < 1:
        raise ValueError(f"cores must be at least 1, got {cores}")
    return max(1, cores - math.ceil(max(0.0, other_load - IGNORED_LOAD)))


class ThreadGovernor:
    """Keeps ``torch.set_num_threads`` at the free cores during a run
    (``book/07_train_it_yourself.ipynb``).

    ``fixed``: a thread count to keep whatever the load (``--threads N``), or None to adapt.
    ``limit``: at most this many threads (e.g. the cores of one of several processes).
    Call :meth:`start` before the run and :meth:`update` between steps; both return the
    thread count in force.
    """

    def __init__(self, fixed: Optional[int] = None, limit: Optional[int] = None,
                 recheck_seconds: float = RECHECK_SECONDS):
        if fixed is not None and fixed < 1:
            raise ValueError(f"a fixed thread count must be at least 1, got {fixed}")
        self.fixed = fixed
        self.limit = max(1, min(limit or usable_cores(), usable_cores()))
        self.recheck_seconds = recheck_seconds
        self.meter = LoadMeter()
        self.threads = torch.get_num_threads()
        self._last_check = time.monotonic()

    def _apply(self, threads: int) -> int:
        if threads != torch.get_num_threads():
            torch.set_num_threads(threads)
        self.threads = threads
        return threads

    def start(self, sample_seconds: float = FIRST_SAMPLE_SECONDS) -> int:
        """Choose the first thread count: watch the machine for ``sample_seconds`` while idle."""
        if self.fixed is not None:
            return self._apply(self.fixed)
        if not self.meter.available:
            return self._apply(min(self.threads, self.limit))
        self.meter.others()
        time.sleep(sample_seconds)
        return self._check()

    def _check(self) -> int:
        self._last_check = time.monotonic()
        others = self.meter.others()
        if others is None:
            return self.threads
        return self._apply(min(free_cores(others), self.limit))

    def update(self) -> int:
        """Between steps: measure again once ``recheck_seconds`` have passed."""
        if self.fixed is not None or not self.meter.available:
            return self.threads
        if time.monotonic() - self._last_check < self.recheck_seconds:
            return self.threads
        return self._check()


def use_free_cores(sample_seconds: float = FIRST_SAMPLE_SECONDS) -> int:
    """Set torch's thread count once to the cores other programs leave free, and return it
    (``book/07_train_it_yourself.ipynb``): what a notebook calls before heavy cells. Unlike the
    training command it does not look again later; call it again after the load changed."""
    return ThreadGovernor().start(sample_seconds)


def parse_threads(text: str) -> Optional[int]:
    """``--threads``: "auto" (None: adapt to the load) or a whole number of at least 1
    (``book/07_train_it_yourself.ipynb``)."""
    import argparse

    if text == "auto":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither 'auto' nor a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} threads: give 1 or more, or 'auto'")
    return value
