"""Command-line plumbing of the training scripts: the options they share and the config they make."""
from __future__ import annotations

import argparse

from ..nn import HarmonicEmbedding, ImplicitKernel
from .loop import TrainConfig

__all__ = ["add_implicit_kernel_arguments", "add_training_arguments", "config_from_args"]


def add_training_arguments(
    parser: argparse.ArgumentParser, epochs: int, batch_size: int, lr: float, weight_decay: float, lr_step: int, lr_decay: float = 0.5,
    precise_bn: int = 0, warmup_steps: int = 0,
) -> None:
    """The options every training script shares (``--epochs`` ... ``--no-progress``), with its defaults."""
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--batch-size", type=int, default=batch_size)
    parser.add_argument("--lr", type=float, default=lr)
    parser.add_argument("--weight-decay", type=float, default=weight_decay)
    parser.add_argument("--lr-step", type=int, default=lr_step, help="halve (--lr-decay) the learning rate every this many epochs")
    parser.add_argument("--lr-decay", type=float, default=lr_decay)
    parser.add_argument("--warmup-steps", type=int, default=warmup_steps,
                        help="optimizer steps over which the learning rate rises linearly to --lr (0: none)")
    parser.add_argument("--grad-clip", type=float,
                        help="scale each step's gradient down to this total norm when it is larger (default: no clipping)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the initial weights and the batch order")
    parser.add_argument("--resume", action="store_true", help="continue from <out-dir>/last.pt")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    parser.add_argument("--time-limit", type=float, help="minutes of training after which no further epoch starts")
    parser.add_argument("--precise-bn", type=int, default=precise_bn,
                        help="recompute batch-norm statistics on this many training batches (dropout off) before each evaluation; 0: off")


def add_implicit_kernel_arguments(parser: argparse.ArgumentParser, mlp_layers: int, shell: bool, polynomial_norm: str) -> None:
    """The options of the implicit kernels' network (:class:`~pyg_implicit.nn.ImplicitKernel`'s ``mlp_layers``,
    ``form``, ``shell``, ``polynomial_norm``) that the training scripts share, with the script's defaults."""
    parser.add_argument("--kernel-mlp-layers", type=int, default=mlp_layers,
                        help="linear layers of the implicit kernels' G-MLP, the bilinear output layer included (1: linear in the polynomials)")
    parser.add_argument("--kernel-form", choices=ImplicitKernel.FORMS, default="mlp",
                        help="the implicit kernels' network: the paper's G-MLP, or invariant functions times harmonics")
    parser.add_argument("--shell", action=argparse.BooleanOptionalAction, default=shell,
                        help="multiply the implicit kernels by the Gaussian shell (the paper's)")
    parser.add_argument("--polynomial-norm", choices=HarmonicEmbedding.NORMS, default=polynomial_norm,
                        help="the implicit kernels' normalisation of the harmonic polynomials (batch: the paper's batch norm)")


def config_from_args(args: argparse.Namespace, out_dir: str, extra: dict) -> TrainConfig:
    """The :class:`TrainConfig` of options added by :func:`add_training_arguments`."""
    return TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay, lr_step=args.lr_step,
        lr_decay=args.lr_decay, warmup_steps=args.warmup_steps, seed=args.seed, out_dir=out_dir, resume=args.resume, progress=not args.no_progress,
        num_workers=args.workers, time_limit=None if args.time_limit is None else 60 * args.time_limit,
        precise_bn=args.precise_bn, grad_clip=args.grad_clip, extra=extra,
    )  # fmt: skip
