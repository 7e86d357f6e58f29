"""CPU work that touches no database, done in a helper process.

The worker is the main database's one writer on SQLite, so everything it does runs on one
core. Rendering an email (Jinja2, CSS inlining) and building its MIME (and DKIM signature)
are pure functions of their inputs, and about a third of what an order costs the worker
(bench/stages.py: rendering ~2.5 ms, MIME ~1.3 ms of ~12 ms; an RSA-2048 DKIM signature
adds ~8 ms). A helper process does them on the other core while the worker goes on.

With `processes=0` (tests, and `ULAK_WORKER_PROCESSES=0` where one core does everything)
the work runs inline.

A helper renders stores' own templates, so its memory is bounded: HELPER_MEMORY_BYTES more
than it holds once started. A render past it fails with MemoryError, alone; the worker's
memory is never at stake. (Time and output are bounded per render: `messages.rendering`.)
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import resource
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

# What one helper may allocate beyond its start-up size (~100 MB resident): a render of a
# real order needs a few MB.
HELPER_MEMORY_BYTES = 1 << 30


class Offload:
    def __init__(self, processes: int) -> None:
        self.processes = processes
        self._pool: ProcessPoolExecutor | None = None

    async def run(self, work: Callable[[], T]) -> T:
        """`work()` in a helper process (it and its result must pickle), or inline."""
        if not self.processes:
            return work()
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor(), work)
        except BrokenProcessPool:
            # A helper that died (killed, out of memory) breaks the pool: start another
            # and try once more; the work is a pure function, so running it again is safe.
            log.warning("a helper process died; starting another")
            self._pool = None
            return await loop.run_in_executor(self._executor(), work)

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # spawn, not fork: the worker has an event loop, threads and open databases.
            self._pool = ProcessPoolExecutor(
                self.processes,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_helper,
                initargs=(os.getpid(), HELPER_MEMORY_BYTES),
            )
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


def _start_helper(parent: int, memory: int) -> None:
    _exit_with(parent)
    _bound_memory(memory)


def _bound_memory(extra: int) -> None:
    """Cap this process's address space at its size now plus `extra` bytes (Linux)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            size = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # no /proc: leave it unbounded
        return
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = size + extra
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _exit_with(parent: int) -> None:
    """In a helper: exit when the worker that started it is gone. A helper waits on a queue
    whose pipe it holds both ends of, so a worker killed with -9 would leave it waiting
    for ever (seen: one orphaned helper per killed worker)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(0)

    threading.Thread(target=watch, name="ulak-exit-with-worker", daemon=True).start()
