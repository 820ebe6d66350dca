"""Training: the shared loop (:mod:`.loop`), its command-line options (:mod:`.cli`), data
parallelism (:mod:`.distributed`) and resumable sweeps of many runs (:mod:`.sweep`)."""
from ..models.budget import count_parameters
from .cli import add_implicit_kernel_arguments, add_training_arguments, config_from_args
from .distributed import distributed, rank_zero_first
from .loop import LossFn, TrainConfig, evaluate, evaluate_many, fit, seed_everything
from .sweep import blew_up, run_many, run_once

__all__ = ["LossFn", "TrainConfig", "add_implicit_kernel_arguments", "add_training_arguments", "blew_up", "config_from_args", "count_parameters", "distributed", "evaluate",
           "evaluate_many", "fit", "rank_zero_first", "run_many", "run_once", "seed_everything"]  # fmt: skip
