"""Many independent runs (models x seeds) spread over the available devices.

A sweep is embarrassingly parallel: each run trains its own networks from its own seed.
:func:`run_sweep` starts one worker process per device slot (one per GPU, or several
sharing the CPU cores), each worker keeps its device for its whole life, so at most one
run uses a GPU at a time, and the results come back in the order of the jobs -- the same
results as running them one after another, because every run is seeded by its job.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

import torch

_DEVICE: str | None = None


def default_slots(workers: int | None = None) -> list[str]:
    """One slot per CUDA device; else ``workers`` CPU slots (default: 1)."""
    if torch.cuda.is_available():
        return [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    return ["cpu"] * max(1, workers or 1)


def _init_worker(queue: Any, threads: int) -> None:
    global _DEVICE
    _DEVICE = queue.get()
    if _DEVICE.startswith("cpu"):
        torch.set_num_threads(threads)  # share the cores instead of oversubscribing them


def _call(fn: Callable[..., Any], job: dict[str, Any]) -> Any:
    return fn(**job, device=_DEVICE)


def run_sweep(fn: Callable[..., Any], jobs: Sequence[dict[str, Any]], *, slots: Sequence[str] | None = None,
              progress: bool = True, desc: str = "sweep") -> list[Any]:
    """``[fn(**job, device=...) for job in jobs]``, computed by one process per slot.

    ``fn`` must be importable (a module-level function) and seed itself from its job; its
    results must be picklable. With a single slot the jobs run here, in this process.
    A job that raises stops the sweep with that job's exception.
    """
    from tqdm.auto import tqdm

    slots = list(slots) if slots is not None else default_slots()
    if not slots:
        raise ValueError("slots is empty; give at least one device, e.g. ['cpu']")
    results: list[Any] = [None] * len(jobs)
    bar = tqdm(total=len(jobs), disable=not progress, desc=desc, unit="run")
    try:
        if len(slots) == 1:
            for i, job in enumerate(jobs):
                results[i] = fn(**job, device=slots[0])
                bar.update(1)
            return results
        ctx = mp.get_context("spawn")  # CUDA cannot be used in forked children
        queue = ctx.Queue()
        for s in slots:
            queue.put(s)
        cpu_slots = sum(s.startswith("cpu") for s in slots) or 1
        threads = max(1, (os.cpu_count() or 1) // cpu_slots)
        with ProcessPoolExecutor(len(slots), mp_context=ctx, initializer=_init_worker,
                                 initargs=(queue, threads)) as pool:
            futures = {pool.submit(_call, fn, job): i for i, job in enumerate(jobs)}
            for fut in as_completed(futures):
                results[futures[fut]] = fut.result()
                bar.update(1)
        return results
    finally:
        bar.close()
