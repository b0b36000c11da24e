"""Executors: run ``fn(task, shared)`` for many tasks, yielding results as they complete.

- ``local`` (default): a process pool (``spawn``) of ``workers`` processes (default: all cores). ``shared``
  (traces, SLOs) is pickled once per process through the pool initializer, not once per task. One worker
  runs in this process (no pool), which is what tests and debuggers like.
- ``ray`` (``pip install .[ray]``): ``ray.init(address)`` (None: a local Ray instance), ``shared`` and the
  fitted operator models the sweep needs are put into the object store once; one actor per worker CPU
  deserialises them once, writes missing model files into its node's model cache, and then runs tasks.

Both call the same pure ``fn``; results carry their task's id, so completion order does not matter.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from ..errors import FrontierError

EXECUTORS = ("local", "ray")

_SHARED = None


def default_workers() -> int:
    return os.cpu_count() or 1


def run_tasks(fn: Callable, tasks: Iterable, shared, *, executor: str = "local", workers: int | None = None,
              address: str | None = None, model_files: dict | None = None) -> Iterator:
    """Yield ``fn(task, shared)`` for every task, in completion order.

    ``workers``: processes (local) or actors (ray; default: the cluster's CPUs). ``address``: Ray cluster
    address (ray only; None starts a local instance). ``model_files``: {path relative to the model cache:
    bytes} shipped to Ray workers once (see :func:`frontier_calib.sweep.models.model_files`).
    """
    tasks = list(tasks)
    if executor == "local":
        if address is not None:
            raise FrontierError("--address is for --executor ray")
        yield from _local(fn, tasks, shared, workers or default_workers())
    elif executor == "ray":
        yield from _ray(fn, tasks, shared, workers, address, model_files or {})
    else:
        raise FrontierError(f"unknown executor {executor!r}; use one of {EXECUTORS}")


def quiet_worker() -> None:
    """In a worker process: per-point log noise off (the opmodel's 'queries outside the training ranges'
    notes), one OpenMP thread (there is a process per core already; XGBoost's results do not change)."""
    import logging

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    logging.getLogger("frontier_calib.opmodel").setLevel(logging.ERROR)


def _init(shared) -> None:
    global _SHARED
    _SHARED = shared
    quiet_worker()


def _call(fn: Callable, task):
    return fn(task, _SHARED)


def _local(fn, tasks, shared, workers: int) -> Iterator:
    if not tasks:
        return
    if workers <= 1 or len(tasks) == 1:   # in this process; only the log level changes, and only meanwhile
        import logging

        log = logging.getLogger("frontier_calib.opmodel")
        level = log.level
        log.setLevel(logging.ERROR)
        try:
            for task in tasks:
                yield fn(task, shared)
        finally:
            log.setLevel(level)
        return
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    ctx = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=ctx, initializer=_init,
                               initargs=(shared,))
    try:
        # keep a few tasks queued per worker (not all): an interrupt then cancels the rest at once
        pending, it = set(), iter(tasks)
        for task in it:
            pending.add(pool.submit(_call, fn, task))
            if len(pending) >= 2 * workers:
                break
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                yield fut.result()
                nxt = next(it, None)
                if nxt is not None:
                    pending.add(pool.submit(_call, fn, nxt))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _import_ray():
    try:
        import ray
    except ImportError:
        raise FrontierError("--executor ray needs Ray: pip install .[ray]  (or pip install 'ray>=2.9')") from None
    return ray


def _ray(fn, tasks, shared, workers: int | None, address: str | None, model_files: dict) -> Iterator:
    ray = _import_ray()
    if not tasks:
        return
    started = not ray.is_initialized()
    if started:
        kwargs = {"address": address, "include_dashboard": False, "log_to_driver": False,
                  "ignore_reinit_error": True}
        if address is None:
            kwargs["num_cpus"] = workers or default_workers()
            names = ("FRONTIER_CALIB_CACHE", "FRONTIER_CALIB_PROFILES", "OMP_WAIT_POLICY", "PYTHONPATH")
            env = {k: os.environ[k] for k in names if k in os.environ}
            if env:
                kwargs["runtime_env"] = {"env_vars": env}
        ray.init(**kwargs)
    try:
        n = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        n = min(n, len(tasks))
        shared_ref = ray.put(shared)
        files_ref = ray.put(model_files)
        actor_cls = ray.remote(num_cpus=1)(_RayWorker)
        actors = [actor_cls.remote(shared_ref, files_ref) for _ in range(n)]
        it = iter(tasks)
        running = {}
        for actor in actors:
            task = next(it, None)
            if task is None:
                break
            running[actor.run.remote(fn, task)] = actor
        while running:
            done, _ = ray.wait(list(running), num_returns=1)
            ref = done[0]
            actor = running.pop(ref)
            result = ray.get(ref)
            task = next(it, None)
            if task is not None:
                running[actor.run.remote(fn, task)] = actor
            yield result
    finally:
        if started:
            ray.shutdown()


class _RayWorker:
    """A Ray actor holding the sweep's shared data (deserialised once)."""

    def __init__(self, shared, model_files: dict):
        quiet_worker()
        install_model_files(model_files)
        self.shared = shared

    def run(self, fn, task):
        return fn(task, self.shared)


def install_model_files(files: dict) -> int:
    """Write shipped model files into this machine's model cache where missing; returns how many were written."""
    from ..io import atomic_path
    from ..cache_folder import cache_dir

    root = cache_dir()
    written = 0
    for rel, data in files.items():
        dest = root / rel
        if dest.exists() and dest.stat().st_size == len(data):
            continue
        with atomic_path(dest) as tmp:
            Path(tmp).write_bytes(data)
        written += 1
    return written
