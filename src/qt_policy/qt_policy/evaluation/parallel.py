"""Evaluation spread over processes, one task at a time per process: the tasks are independent (their own
arms, seeds and episodes), so the merged result equals the serial one, in a fraction of the time on a
machine with cores to spare. Spawned processes with one torch thread each."""
from __future__ import annotations

import multiprocessing as mp
import time
from concurrent.futures import ProcessPoolExecutor, as_completed

from .stats import summarize


def _one_thread() -> None:
    import torch
    torch.set_num_threads(1)


def evaluate_in_processes(kwargs: dict, tasks: list[str], workers: int, progress: bool = True) -> dict:
    """`rollout.evaluate(**kwargs)` for each task in its own process (at most `workers` at once), merged in
    the order of `tasks`; one process or one task: evaluate() itself."""
    from tqdm import tqdm

    from .rollout import evaluate
    if workers <= 1 or len(tasks) <= 1:
        return evaluate(**kwargs, tasks=tasks, progress=progress)

    t0 = time.time()
    per_task = {}
    with ProcessPoolExecutor(min(workers, len(tasks)), mp_context=mp.get_context("spawn"),
                             initializer=_one_thread) as pool:
        futures = {pool.submit(evaluate, **kwargs, tasks=[t], progress=False): t for t in tasks}
        with tqdm(total=len(tasks), desc="tasks", unit="task", disable=not progress) as bar:
            for future in as_completed(futures):
                per_task[futures[future]] = future.result()
                bar.update()
    first = per_task[tasks[0]]
    results = {k: v for k, v in first.items() if k not in ("tasks", "overall", "mean_success", "wall_time_s")}
    results["tasks"] = {t: per_task[t]["tasks"][t] for t in tasks}
    results["workers"] = workers
    results = summarize(results)
    results["wall_time_s"] = time.time() - t0
    return results
