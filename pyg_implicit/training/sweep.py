"""Sweeps of training runs: each run resumable by its directory, several at once in spawned processes."""
from __future__ import annotations

import json
import math
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Iterator, List, Sequence, Tuple

import torch

__all__ = ["blew_up", "run_once", "run_many"]


def run_once(run_dir: str, train: Callable[[List[str]], dict], argv: List[str]) -> dict:
    """Metrics of the run in ``run_dir``: read from its ``metrics.json`` when it finished, else
    ``train(argv + ["--out-dir", run_dir])``, with ``--resume`` when an interrupted run left a
    ``last.pt``. Lets a sweep of example scripts stop and continue where it was.

    The run's arguments are kept in ``run_dir/argv.json``; a directory whose run had other
    arguments (another learning rate, say) is an error, never a result silently reused."""
    os.makedirs(run_dir, exist_ok=True)
    argv_path = os.path.join(run_dir, "argv.json")
    if os.path.exists(argv_path):
        with open(argv_path) as f:
            stored = json.load(f)
        if stored != list(argv):
            raise ValueError(
                f"run_once: {run_dir} holds a run with other arguments (stored {stored}, asked for {list(argv)}); "
                "delete the directory or choose another output directory"
            )
    path = os.path.join(run_dir, "metrics.json")
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    with open(argv_path, "w") as f:
        json.dump(list(argv), f)
    resume = ["--resume"] if os.path.exists(os.path.join(run_dir, "last.pt")) else []
    return train(list(argv) + ["--out-dir", run_dir] + resume)


def blew_up(history: Sequence[dict], factor: float = 10.0) -> bool:
    r"""Whether a run diverged: its last epoch's training loss is more than ``factor`` times the
    lowest of the run, :math:`L_{last} > \mathrm{factor} \cdot \min_t L_t`.

    A best-on-validation checkpoint hides a run that blew up after its best epoch (its test loss
    is that of the weights before the jump); a sweep's summary names such runs with this.

    Args:
        history (list of dict): A run's per-epoch records (``metrics.json``'s ``"history"``), each
            with a ``"train_loss"``.
        factor (float): The rise that counts as a blow-up. (default: :obj:`10.0`)
    """
    if not factor > 1:
        raise ValueError(f"factor: expected a number > 1, got {factor}")
    losses = [record["train_loss"] for record in history]
    if not losses:
        return False
    lowest = min((loss for loss in losses if math.isfinite(loss)), default=math.inf)
    return not math.isfinite(losses[-1]) or losses[-1] > factor * lowest


def _run_job(job: Tuple[str, Callable[[List[str]], dict], List[str]]) -> dict:
    return run_once(*job)


def run_many(jobs: Sequence[Tuple[str, List[str]]], train: Callable[[List[str]], dict], processes: int = 1) -> Iterator[dict]:
    """``run_once(run_dir, train, argv)`` for every ``(run_dir, argv)`` in ``jobs``, yielding the
    metrics in the order of ``jobs``. With ``processes > 1`` that many runs train at the same time,
    in spawned processes (CUDA cannot be forked) on one CPU thread each; they share the GPU if
    there is one. ``train`` must be importable by name (a module-level function), and the data must
    be prepared before: processes that build the same dataset cache at once would race."""
    triples = [(run_dir, train, argv) for run_dir, argv in jobs]
    if processes == 1:
        yield from map(_run_job, triples)
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(processes, mp_context=context, initializer=torch.set_num_threads, initargs=(1,)) as pool:
        yield from pool.map(_run_job, triples)
