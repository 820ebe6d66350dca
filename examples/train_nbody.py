"""Train a model on the constrained N-body task (paper sec. 5.2) and write its test MSE to JSON.

    python examples/train_nbody.py --model ik --group so2 --stiffness 100 --epochs 200
    python examples/train_nbody.py --model segnn --budget 48000 ...      # width chosen to match a parameter budget
    torchrun --nproc_per_node 2 examples/train_nbody.py ...              # data parallel
"""
import argparse
import json
import os

import torch.nn.functional as F

from pyg_implicit.datasets import NBodyConstrained
from pyg_implicit.models import match_budget
from pyg_implicit.models.nbody import MODELS, nbody_model
from pyg_implicit.training import add_training_arguments, config_from_args, count_parameters, distributed, fit, rank_zero_first, seed_everything


def mse(model, batch):
    return F.mse_loss(model(batch), batch.y), batch.y.numel()


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=MODELS, default="ik")
    parser.add_argument("--group", default="so2", help="symmetry group of ik/standard models (any pyg_implicit.groups name)")
    parser.add_argument("--stiffness", type=float, default=100.0)
    parser.add_argument("--width", type=int, default=8, help="hidden multiplicity (ignored with --budget)")
    parser.add_argument("--budget", type=int, help="choose the width whose parameter count is closest to this")
    add_training_arguments(parser, epochs=200, batch_size=128, lr=5e-4, weight_decay=1e-12, lr_step=25)
    parser.add_argument("--train-size", type=int, default=3000)
    parser.add_argument("--eval-size", type=int, default=128, help="systems in the validation and in the test set")
    parser.add_argument("--data-root", default=os.environ.get("PYG_IMPLICIT_DATA", "data_cache/nbody"))
    parser.add_argument("--out-dir", help="default: runs/nbody/<model>[-<group>]_k<stiffness>_s<seed>")
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    tag = args.model + (f"-{args.group}" if args.model in ("ik", "standard") else "")
    out_dir = args.out_dir or os.path.join("runs", "nbody", f"{tag}_k{args.stiffness:g}_s{args.seed}")
    with distributed():
        with rank_zero_first():  # rank 0 generates and caches the data, the others then load it
            splits = [NBodyConstrained(args.data_root, args.stiffness, split, size)
                      for split, size in [("train", args.train_size), ("val", args.eval_size), ("test", args.eval_size)]]  # fmt: skip
        seed_everything(args.seed)  # the initial weights depend on the seed too
        build = lambda width: nbody_model(args.model, width, args.group)  # noqa: E731
        model, width = match_budget(build, args.budget) if args.budget else (build(args.width), args.width)
        extra = {"task": "nbody", "model": tag, "stiffness": args.stiffness, "width": width}  # fmt: skip
        config = config_from_args(args, out_dir, extra)
        metrics = fit(model, *splits, mse, config)
    print(json.dumps({"model": tag, "stiffness": args.stiffness, "width": width,
                      "parameters": count_parameters(model), "test_mse": metrics["test_loss"]}))  # fmt: skip
    return metrics


if __name__ == "__main__":
    main()
