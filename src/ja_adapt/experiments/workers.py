"""Where runs execute: in this process, or on a pool of worker processes (`run_each`)."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import torch
from tqdm.auto import tqdm
from transformers.utils import logging as hf_logging

from ja_adapt.core.errors import UserError
from ja_adapt.experiments.runs import PlannedRun
from ja_adapt.train.loop import TrainingStopped

_POOLS: dict[tuple[int, int], ProcessPoolExecutor] = {}

# What the fork server imports once, so that a worker forked from it starts in milliseconds
# (lm-eval: the downstream tasks' harness, imported lazily by evaluate/downstream.py).
_PRELOAD = ["ja_adapt.experiments", "lm_eval", "lm_eval.tasks", "lm_eval.models.huggingface"]


def _worker_pool(jobs: int, threads: int) -> ProcessPoolExecutor:
    """`jobs` worker processes of `threads` torch threads each, kept for the life of this process
    (the demo's later experiments reuse them). forkserver: workers fork from a clean server that
    imported ja-adapt once, never from this process, whose OpenMP threads a fork would copy in an
    unusable state. (One fresh process per run, for peak memories free of earlier runs, measured
    slower on 2 cores: each run re-warms its heap and lazy imports.) Methods or model aliases
    registered at run time in this process are unknown there: register them in an imported module."""
    key = (jobs, threads)
    if key not in _POOLS:
        forkserver = "forkserver" in multiprocessing.get_all_start_methods()
        ctx = multiprocessing.get_context("forkserver" if forkserver else "spawn")
        if forkserver:
            ctx.set_forkserver_preload(_PRELOAD)  # modules that fail to import are skipped
        _POOLS[key] = ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_start_worker, initargs=(threads,))
    return _POOLS[key]


def _threads(jobs: int) -> int:
    return max(1, torch.get_num_threads() // jobs)


def warm_workers(jobs: int) -> None:
    """Start the fork server and the first workers now (its imports take seconds), while this
    process does other work (the base model's evaluation); a no-op for jobs <= 1."""
    if jobs > 1:
        _worker_pool(jobs, _threads(jobs)).submit(int)


def _start_worker(threads: int) -> None:
    torch.set_num_threads(threads)
    os.environ["TQDM_DISABLE"] = "1"  # one bar, the caller's, instead of interleaved ones
    hf_logging.disable_progress_bar()  # (weight loading's too)


def _in_worker(task: Callable, args: tuple, env: dict):
    os.environ.update(env)  # the caller's now (cache dir), not the server's at start
    os.environ["TQDM_DISABLE"] = "1"
    return task(*args)


def run_each(
    task: Callable[[PlannedRun], object],
    runs: list[PlannedRun],
    jobs: int,
    desc: str,
    out: Path,
    beside: Callable[[], None] | None = None,
) -> list:
    """`task(r)` for every run (task: a bound method of a picklable object, RunExecutor's), in this
    process (jobs = 1, in order) or on `jobs` worker processes; the results in run order, a run's
    TrainingStopped in its place (the caller decides). Any other error is raised: at once here, or
    once the other runs are done on workers (their work is kept either way; `out` names the
    experiment in the message). beside: one more task without a run (the base model's evaluation),
    run first here, or on a worker beside the runs and then here again, to read what it wrote
    (so it must cache its result)."""
    if jobs <= 1 or len(runs) <= 1:
        if beside:
            beside()
        results = []
        for r in runs:
            try:
                results.append(task(r))
            except TrainingStopped as e:
                results.append(e)
        return results
    threads = _threads(jobs)
    try:
        pool = _worker_pool(jobs, threads)
        extra = [pool.submit(_in_worker, beside, (), dict(os.environ))] if beside else []
        futures = [pool.submit(_in_worker, task, (r,), dict(os.environ)) for r in runs]
        with tqdm(total=len(runs) + len(extra), desc=f"{desc} ({jobs} at once)", unit="run", dynamic_ncols=True) as bar:
            for _ in as_completed(futures + extra):
                bar.update(1)
    except BrokenProcessPool:
        _POOLS.pop((jobs, threads), None)
        raise UserError(
            f"{out}: a worker process died (out of memory, or killed); the finished runs "
            "are kept: re-run the same command to resume, with fewer --jobs if memory is short"
        ) from None
    errors = [f.exception() for f in futures + extra]
    if first := next((e for e in errors if e is not None and not isinstance(e, TrainingStopped)), None):
        raise first
    if beside:
        beside()  # read back what the worker wrote
    errors = errors[: len(futures)]
    return [e if e is not None else f.result() for f, e in zip(futures, errors)]


def raise_first_stop(results: list) -> None:
    """The first TrainingStopped run_each returned, raised (where a stopped run is an error)."""
    for x in results:
        if isinstance(x, TrainingStopped):
            raise x
