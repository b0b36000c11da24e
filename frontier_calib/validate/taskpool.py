"""A process pool that runs the highest-priority *ready* task first, with tasks added while others run.

``validate silicon`` has three kinds of work with dependencies between them: fitting a (GPU, engine) pair's operator
models and building its cost tables, then replaying the rows that use those tables. Running them as separate phases
leaves a core idle whenever one phase ends on a single long task (the last pair's fit, the heaviest row). Here a row
becomes a task as soon as its tables exist, so replays fill the cores while the last fits run.

A plain ``ProcessPoolExecutor`` queues submitted work first in, first out; :class:`TaskPool` keeps its own priority
queue and hands the executor at most one task per process, so a task added later with a higher priority still runs
before lower-priority ones that are waiting. Results come back in completion order; each task is a pure function of
its arguments, so the order changes the wall time only.
"""

from __future__ import annotations

import heapq
import itertools
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait


class TaskPool:
    """``fn(*args)`` tasks on ``jobs`` spawned processes (in this process when ``jobs`` <= 1).

    ``add(priority, tag, fn, *args)`` queues a task (higher priority runs first; ties in the order added);
    ``results()`` yields ``(tag, result)`` as tasks finish and may be extended by ``add`` between its yields.
    ``initializer`` runs once in each process (not in this one)."""

    def __init__(self, jobs: int, initializer=None):
        self.jobs = max(1, int(jobs))
        self._initializer = initializer
        self._ready: list = []
        self._order = itertools.count()

    def add(self, priority: float, tag, fn, *args) -> None:
        heapq.heappush(self._ready, (-float(priority), next(self._order), tag, fn, args))

    def _pop(self):
        _, _, tag, fn, args = heapq.heappop(self._ready)
        return tag, fn, args

    def results(self):
        if self.jobs <= 1:
            while self._ready:
                tag, fn, args = self._pop()
                yield tag, fn(*args)
            return
        import multiprocessing as mp

        with ProcessPoolExecutor(max_workers=self.jobs, mp_context=mp.get_context("spawn"),
                                 initializer=self._initializer) as ex:
            running: dict = {}

            def fill():
                while self._ready and len(running) < self.jobs:
                    tag, fn, args = self._pop()
                    running[ex.submit(fn, *args)] = tag

            fill()
            while running:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for f in done:
                    yield running.pop(f), f.result()
                    fill()   # tasks the caller added for this result go out at once
