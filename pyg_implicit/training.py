r"""The training loop every example shares: AdamW, step decay, best-on-validation checkpoint,
``--resume``, JSON metrics, a progress bar, seeding and multi-process data parallelism, and the
helpers sweeps use to run, resume and parallelise many such runs.

Started as ``python script.py`` it trains in one process; started as
``torchrun --nproc_per_node N script.py`` it trains with ``DistributedDataParallel`` (NCCL on
GPUs, gloo on CPUs), each process on a shard of the training set. Evaluation runs on every
process over the whole (small) validation/test set, so all ranks agree; only rank 0 writes files.

A task supplies a ``loss_fn(model, batch) -> (loss, count)``: the *mean* loss of the batch (what
is minimised) and the number of items it averages over (for exact epoch averages).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import multiprocessing
import os
import random
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterator, List, Sequence, Tuple

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch_geometric.loader import DataLoader
from tqdm.auto import tqdm

from .checkpoint import load_checkpoint, save_checkpoint

__all__ = ["TrainConfig", "add_training_arguments", "config_from_args", "fit", "evaluate", "seed_everything", "distributed", "rank_zero_first", "count_parameters", "run_once", "run_many"]

LossFn = Callable[[nn.Module, object], Tuple[Tensor, int]]


@dataclass
class TrainConfig:
    """Optimisation and bookkeeping settings of :func:`fit`."""

    epochs: int = 100
    batch_size: int = 128
    lr: float = 5e-4
    weight_decay: float = 1e-12
    lr_decay: float = 0.5  # multiply the learning rate by this ...
    lr_step: int = 25  # ... every this many epochs
    seed: int = 0
    out_dir: str = "runs/default"
    resume: bool = False
    progress: bool = True
    eval_every: int = 1
    extra: dict = field(default_factory=dict)  # recorded in metrics.json as given (task, model, ...)


def add_training_arguments(
    parser: argparse.ArgumentParser, epochs: int, batch_size: int, lr: float, weight_decay: float, lr_step: int, lr_decay: float = 0.5
) -> None:
    """The options every training script shares (``--epochs`` ... ``--no-progress``), with its defaults."""
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--batch-size", type=int, default=batch_size)
    parser.add_argument("--lr", type=float, default=lr)
    parser.add_argument("--weight-decay", type=float, default=weight_decay)
    parser.add_argument("--lr-step", type=int, default=lr_step, help="halve (--lr-decay) the learning rate every this many epochs")
    parser.add_argument("--lr-decay", type=float, default=lr_decay)
    parser.add_argument("--seed", type=int, default=0, help="seeds the initial weights and the batch order")
    parser.add_argument("--resume", action="store_true", help="continue from <out-dir>/last.pt")
    parser.add_argument("--no-progress", action="store_true")


def config_from_args(args: argparse.Namespace, out_dir: str, extra: dict) -> TrainConfig:
    """The :class:`TrainConfig` of options added by :func:`add_training_arguments`."""
    return TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay, lr_step=args.lr_step,
        lr_decay=args.lr_decay, seed=args.seed, out_dir=out_dir, resume=args.resume, progress=not args.no_progress, extra=extra,
    )  # fmt: skip


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@contextlib.contextmanager
def distributed():
    """Initialise the process group when started by ``torchrun`` (``WORLD_SIZE > 1``); yields ``(rank, world_size)``."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        yield 0, 1
        return
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend)
    try:
        yield dist.get_rank(), world_size
    finally:
        dist.destroy_process_group()


@contextlib.contextmanager
def rank_zero_first():
    """Run the block on rank 0 first (e.g. generate and cache a dataset), then on the other ranks."""
    active = dist.is_available() and dist.is_initialized()
    if active and dist.get_rank() != 0:
        dist.barrier()
    yield
    if active and dist.get_rank() == 0:
        dist.barrier()


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, loss_fn: LossFn, device: torch.device) -> float:
    """Average of ``loss_fn`` over ``loader`` (weighted by the counts)."""
    model.eval()
    total, count = 0.0, 0
    for batch in loader:
        loss, n = loss_fn(model, batch.to(device))
        total += float(loss) * n
        count += n
    return total / max(count, 1)


def fit(
    model: nn.Module,
    train_set,
    val_set,
    test_set,
    loss_fn: LossFn,
    config: TrainConfig,
) -> dict:
    """Train ``model``, keep the best-on-validation weights, evaluate them on ``test_set``.

    Writes ``out_dir/last.pt`` (everything needed to resume) every epoch, ``out_dir/best.pt``
    (model weights) when the validation loss improves and ``out_dir/metrics.json`` (config,
    parameter count, per-epoch history with each epoch's training seconds, best epoch, test loss of
    the best model, training seconds summed over resumed segments).

    Returns:
        The metrics dictionary.
    """
    if len(train_set) == 0:
        raise ValueError("train_set: empty")
    active = dist.is_available() and dist.is_initialized()
    rank, world_size = (dist.get_rank(), dist.get_world_size()) if active else (0, 1)
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu")
    seed_everything(config.seed)
    model = model.to(device)
    num_params = count_parameters(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.lr_step, gamma=config.lr_decay)
    history, best_val, best_epoch, start_epoch, seconds_before = [], math.inf, -1, 0, 0.0
    os.makedirs(config.out_dir, exist_ok=True)
    last_path, best_path = os.path.join(config.out_dir, "last.pt"), os.path.join(config.out_dir, "best.pt")
    generator = torch.Generator().manual_seed(config.seed)  # the order of the training batches
    if config.resume and os.path.exists(last_path):
        state = load_checkpoint(last_path, map_location=device)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        history, best_val, best_epoch, start_epoch = state["history"], state["best_val"], state["best_epoch"], state["epoch"] + 1
        seconds_before = state["train_seconds"]
        torch.set_rng_state(state["rng"]["torch"])
        generator.set_state(state["rng"]["loader"])
    if world_size > 1 and start_epoch == 0:
        # Data-dependent initialisation (kernel shells, LSUV scales) happens on the first training
        # batch; run it before wrapping, so that DDP's broadcast from rank 0 makes every rank equal.
        model.train()
        with torch.no_grad():
            loss_fn(model, next(iter(DataLoader(train_set, batch_size=config.batch_size))).to(device))
    train_model = nn.parallel.DistributedDataParallel(model) if world_size > 1 else model
    sampler = (
        torch.utils.data.distributed.DistributedSampler(train_set, num_replicas=world_size, rank=rank, seed=config.seed)
        if world_size > 1
        else None
    )
    train_loader = DataLoader(train_set, batch_size=config.batch_size, shuffle=sampler is None, sampler=sampler, generator=generator)
    val_loader = DataLoader(val_set, batch_size=config.batch_size)
    start_time = time.time()
    epochs = range(start_epoch, config.epochs)
    bar = tqdm(epochs, desc=os.path.basename(config.out_dir), disable=not config.progress or rank != 0)
    for epoch in bar:
        if sampler is not None:
            sampler.set_epoch(epoch)
        train_model.train()
        total, count, epoch_start = 0.0, 0, time.time()
        for batch in train_loader:
            loss, n = loss_fn(train_model, batch.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * n
            count += n
        scheduler.step()
        record = {"epoch": epoch, "train_loss": total / max(count, 1), "lr": optimizer.param_groups[0]["lr"],
                  "seconds": time.time() - epoch_start}  # fmt: skip
        if (epoch + 1) % config.eval_every == 0 or epoch + 1 == config.epochs:
            record["val_loss"] = evaluate(model, val_loader, loss_fn, device)
            if record["val_loss"] < best_val:
                best_val, best_epoch = record["val_loss"], epoch
                if rank == 0:
                    save_checkpoint(model.state_dict(), best_path)
        history.append(record)
        bar.set_postfix(train=f"{record['train_loss']:.2e}", val=f"{record.get('val_loss', float('nan')):.2e}")
        if rank == 0:  # plain data only: loads with weights_only=True
            save_checkpoint(
                {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                 "history": history, "best_val": best_val, "best_epoch": best_epoch, "epoch": epoch,
                 "train_seconds": seconds_before + time.time() - start_time,
                 "rng": {"torch": torch.get_rng_state(), "loader": generator.get_state()}},
                last_path,
            )  # fmt: skip
    if world_size > 1:
        dist.barrier()  # rank 0 has written best.pt
    if os.path.exists(best_path):
        model.load_state_dict(load_checkpoint(best_path, map_location=device))
    test_loss = evaluate(model, DataLoader(test_set, batch_size=config.batch_size), loss_fn, device)
    metrics = {
        "config": asdict(config),
        "parameters": num_params,
        "world_size": world_size,
        "best_epoch": best_epoch,
        "best_val_loss": best_val,
        "test_loss": test_loss,
        "train_seconds": seconds_before + time.time() - start_time,
        "history": history,
    }
    if rank == 0:
        with open(os.path.join(config.out_dir, "metrics.json"), "w") as f:
            json.dump(metrics, f, indent=1)
    return metrics


def run_once(run_dir: str, train: Callable[[List[str]], dict], argv: List[str]) -> dict:
    """Metrics of the run in ``run_dir``: read from its ``metrics.json`` when it finished, else
    ``train(argv + ["--out-dir", run_dir])``, with ``--resume`` when an interrupted run left a
    ``last.pt``. Lets a sweep of example scripts stop and continue where it was."""
    path = os.path.join(run_dir, "metrics.json")
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    resume = ["--resume"] if os.path.exists(os.path.join(run_dir, "last.pt")) else []
    return train(list(argv) + ["--out-dir", run_dir] + resume)


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
