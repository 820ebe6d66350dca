r"""The training loop every example shares: AdamW, warmup and step decay, best-on-validation checkpoint,
``--resume``, JSON metrics, a progress bar, seeding, DataLoader workers and a wall-clock budget.

Started as ``python script.py`` it trains in one process; inside :func:`~pyg_implicit.training.distributed`
(``torchrun --nproc_per_node N script.py``) it trains with ``DistributedDataParallel``, each process
on a shard of the training set. Evaluation runs on every process over the whole (small)
validation/test set, so all ranks agree; only rank 0 writes files.

A task supplies a ``loss_fn(model, batch) -> (loss, count)``: the *mean* loss of the batch (what
is minimised) and the number of items it averages over (for exact epoch averages).
"""
from __future__ import annotations

import json
import math
import os
import random
import time
from itertools import islice
from dataclasses import asdict, dataclass, field
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch_geometric.loader import DataLoader
from tqdm.auto import tqdm

from ..checkpoint import load_checkpoint, save_checkpoint
from ..models.budget import count_parameters
from .precise_bn import recompute_batch_norm_statistics

__all__ = ["TrainConfig", "LossFn", "fit", "evaluate", "evaluate_many", "seed_everything"]

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
    warmup_steps: int = 0  # optimizer steps over which the learning rate rises linearly from lr / warmup_steps to lr (0: none)
    seed: int = 0
    out_dir: str = "runs/default"
    resume: bool = False
    progress: bool = True
    eval_every: int = 1
    num_workers: int = 0  # DataLoader worker processes (the transforms of a batch run in them)
    time_limit: Optional[float] = None  # seconds of training after which no further epoch starts
    precise_bn: int = 0  # training batches that batch-norm statistics are recomputed on before each evaluation (0: off)
    grad_clip: Optional[float] = None  # largest total gradient norm of a step; larger gradients are scaled down to it (None: no clipping)
    extra: dict = field(default_factory=dict)  # recorded in metrics.json as given (task, model, ...)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def evaluate(model: nn.Module, loader: DataLoader, loss_fn: LossFn, device: torch.device) -> float:
    """Average of ``loss_fn`` over ``loader`` (weighted by the counts)."""
    return evaluate_many(model, loader, [loss_fn], device)[0]


@torch.no_grad()
def evaluate_many(model: nn.Module, loader: DataLoader, fns: Sequence[LossFn], device: torch.device) -> List[float]:
    """Averages of each of ``fns`` over ``loader`` (weighted by the counts); every batch is loaded once for all of them."""
    model.eval()
    totals, counts = [0.0] * len(fns), [0] * len(fns)
    for batch in loader:
        batch = batch.to(device)
        for i, fn in enumerate(fns):
            value, n = fn(model, batch)
            totals[i] += float(value) * n
            counts[i] += n
    return [total / max(count, 1) for total, count in zip(totals, counts)]


def fit(
    model: nn.Module,
    train_set,
    val_set,
    test_set,
    loss_fn: LossFn,
    config: TrainConfig,
    metric_fn: Optional[LossFn] = None,
) -> dict:
    """Train ``model``, keep the best-on-validation weights, evaluate them on ``test_set``.

    Writes ``out_dir/last.pt`` (everything needed to resume) every epoch, ``out_dir/best.pt``
    (model weights) when the validation loss improves and ``out_dir/metrics.json`` (config,
    parameter count, per-epoch history with each epoch's training seconds, best epoch, test loss of
    the best model, training seconds summed over resumed segments, ``stopped_early``).

    With ``config.time_limit`` set, no epoch starts once the training seconds (resumed segments
    included) have passed it: a fixed wall-clock budget. The learning-rate schedule still counts
    epochs, so choose ``lr_step`` for the epochs that fit.

    With ``config.warmup_steps = w > 0`` the learning rate rises linearly from ``lr / w`` at the
    first optimizer step to ``lr`` at step ``w`` (times the step decay): the high rates that short
    budgets need, without the first steps throwing freshly initialised weights far off.

    With ``config.precise_bn = n > 0`` the running statistics of every batch norm are recomputed
    on the first ``n`` training batches, dropout off, before each evaluation
    (:func:`~pyg_implicit.training.precise_bn.recompute_batch_norm_statistics`): the evaluated
    network is then normalised as it will be used, not with averages of dropped-out activations.

    With ``config.grad_clip = c`` every step's gradient is scaled by ``min(1, c / ||g||)``, ``||g||`` the
    norm of all gradients together (:func:`torch.nn.utils.clip_grad_norm_`). The history records the
    largest ``||g||`` of each epoch (``grad_norm_max``, before clipping) either way: a run that blows up
    shows it there first.

    ``metric_fn`` (same signature as ``loss_fn``), when given, is averaged over the validation set
    at every evaluation (``val_metric`` in the history, e.g. an error rate) and over the test set
    (``test_metric``); the checkpoint is still chosen by the validation loss.

    Returns:
        The metrics dictionary.
    """
    if len(train_set) == 0:
        raise ValueError("train_set: empty")
    if config.grad_clip is not None and not config.grad_clip > 0:
        raise ValueError(f"config.grad_clip: expected a positive number or None, got {config.grad_clip}")
    active = dist.is_available() and dist.is_initialized()
    rank, world_size = (dist.get_rank(), dist.get_world_size()) if active else (0, 1)
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu")
    seed_everything(config.seed)
    fns = [loss_fn] + ([metric_fn] if metric_fn is not None else [])
    model = model.to(device)
    num_params = count_parameters(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.lr_step, gamma=config.lr_decay)
    # Both schedulers scale the current rate in place, so the warmup (per step) composes with the decay (per epoch).
    warmup = (torch.optim.lr_scheduler.LinearLR(optimizer, 1 / config.warmup_steps, total_iters=config.warmup_steps)
              if config.warmup_steps > 0 else None)  # fmt: skip
    history, best_val, best_epoch, start_epoch, seconds_before = [], math.inf, -1, 0, 0.0
    os.makedirs(config.out_dir, exist_ok=True)
    last_path, best_path = os.path.join(config.out_dir, "last.pt"), os.path.join(config.out_dir, "best.pt")
    generator = torch.Generator().manual_seed(config.seed)  # the order of the training batches
    if config.resume and os.path.exists(last_path):
        state = load_checkpoint(last_path, map_location=device)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if warmup is not None and "warmup" in state:
            warmup.load_state_dict(state["warmup"])
        elif warmup is not None:  # a run begun without warmup goes on without it (the optimizer holds its rate)
            warmup = None
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
    # Workers start anew each epoch (not persistent): each epoch's iterator then draws from
    # ``generator`` as with ``num_workers=0``, so the batch order does not depend on the worker
    # count (random transforms do: each worker seeds its own from the same generator).
    train_loader = DataLoader(train_set, batch_size=config.batch_size, shuffle=sampler is None, sampler=sampler, generator=generator,
                              num_workers=config.num_workers)  # fmt: skip
    val_loader = DataLoader(val_set, batch_size=config.batch_size, num_workers=config.num_workers)
    precise_loader = DataLoader(train_set, batch_size=config.batch_size, num_workers=config.num_workers)  # fixed order
    start_time = time.time()
    epochs = range(start_epoch, config.epochs)
    bar = tqdm(epochs, desc=os.path.basename(config.out_dir), disable=not config.progress or rank != 0)
    stopped_early = False
    for epoch in bar:
        if config.time_limit is not None and seconds_before + time.time() - start_time >= config.time_limit:
            stopped_early = True
            break
        if sampler is not None:
            sampler.set_epoch(epoch)
        train_model.train()
        total, count, grad_norm_max, epoch_start = 0.0, 0, 0.0, time.time()
        for batch in train_loader:
            loss, n = loss_fn(train_model, batch.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = nn.utils.clip_grad_norm_(model.parameters(), math.inf if config.grad_clip is None else config.grad_clip)
            grad_norm_max = max(grad_norm_max, float(grad_norm))
            optimizer.step()
            if warmup is not None and warmup.last_epoch < config.warmup_steps:
                warmup.step()
            total += float(loss.detach()) * n
            count += n
        scheduler.step()
        record = {"epoch": epoch, "train_loss": total / max(count, 1), "lr": optimizer.param_groups[0]["lr"],
                  "grad_norm_max": grad_norm_max, "seconds": time.time() - epoch_start}  # fmt: skip
        if (epoch + 1) % config.eval_every == 0 or epoch + 1 == config.epochs:
            if config.precise_bn > 0:
                recompute_batch_norm_statistics(model, islice(precise_loader, config.precise_bn), lambda b: loss_fn(model, b.to(device)))
            record["val_loss"], *metric = evaluate_many(model, val_loader, fns, device)
            if metric:
                record["val_metric"] = metric[0]
            if record["val_loss"] < best_val:
                best_val, best_epoch = record["val_loss"], epoch
                if rank == 0:
                    save_checkpoint(model.state_dict(), best_path)
        history.append(record)
        bar.set_postfix(train=f"{record['train_loss']:.2e}", val=f"{record.get('val_loss', float('nan')):.2e}")
        if rank == 0:  # plain data only: loads with weights_only=True
            save_checkpoint(
                {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                 **({"warmup": warmup.state_dict()} if warmup is not None else {}),
                 "history": history, "best_val": best_val, "best_epoch": best_epoch, "epoch": epoch,
                 "train_seconds": seconds_before + time.time() - start_time,
                 "rng": {"torch": torch.get_rng_state(), "loader": generator.get_state()}},
                last_path,
            )  # fmt: skip
    if world_size > 1:
        dist.barrier()  # rank 0 has written best.pt
    if os.path.exists(best_path):
        model.load_state_dict(load_checkpoint(best_path, map_location=device))
    test_loader = DataLoader(test_set, batch_size=config.batch_size, num_workers=config.num_workers)
    test_loss, *test_metric = evaluate_many(model, test_loader, fns, device)
    metrics = {
        "config": asdict(config),
        "parameters": num_params,
        "world_size": world_size,
        "best_epoch": best_epoch,
        "best_val_loss": best_val,
        "test_loss": test_loss,
        **({"test_metric": test_metric[0]} if test_metric else {}),
        "train_seconds": seconds_before + time.time() - start_time,
        "stopped_early": stopped_early,
        "history": history,
    }
    if rank == 0:
        with open(os.path.join(config.out_dir, "metrics.json"), "w") as f:
            json.dump(metrics, f, indent=1)
    return metrics


