"""Train a steerable point-cloud classifier on ModelNet-40 (paper sec. 5.3) and write its test accuracy to JSON.

    python examples/train_modelnet.py --group so2 --kernel implicit          # the whole ModelNet-40 (xyz only) when shared
    python examples/train_modelnet.py --source resampled --input normal      # the 156-shape subset with its normals
    python examples/train_modelnet.py --group oh --kernel standard --budget 50000
    python examples/train_modelnet.py --data-root /data/modelnet --points 1024 --epochs 200   # full download in <root>/raw
    torchrun --nproc_per_node 2 examples/train_modelnet.py ...                                # data parallel

Inputs at `--points` points (`--input`): the normals (a vector field) where the data has them,
else the sign-free axes of normals estimated from the `--k` nearest points (a 2e field), or none
(a constant scalar). Training shapes are rotated by a random element of `--augment` (default: the
model's group). The test accuracy is measured on the test set as given and under random elements
of each `--rotated-test` group (default: the model's group, which an exactly invariant model does
not notice, and all rotations, which a model of a subgroup does). A fifth of the training shapes
(seeded, `--val-fraction`) is held out for checkpoint selection. Label-smoothed cross-entropy, AdamW.
"""
import argparse
import json
import os
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch_geometric.loader import DataLoader
from torch_geometric.transforms import Compose, FixedPoints

from pyg_implicit.datasets import ModelNetPoints
from pyg_implicit.models import PointCloudClassifier, match_budget
from pyg_implicit.training import add_training_arguments, config_from_args, count_parameters, distributed, fit, rank_zero_first, seed_everything
from pyg_implicit.transforms import EstimateNormalAxes, KNNHierarchy, NormalizeUnitBall, RandomRotation


def hidden_irreps(width: int) -> str:
    """Hidden features at width ``w``: ``w x 0e + w x 1o + w x 2e``."""
    return f"{width}x0e+{width}x1o+{width}x2e"


def build_model(width: int, readout: int, args, num_classes: int = 40) -> PointCloudClassifier:
    kwargs = (dict(max_radius=2.0) if args.kernel == "standard"
              else dict(kernel_hidden_irreps=args.kernel_hidden, mlp_group=args.kernel_mlp_group, form=args.kernel_form))
    return PointCloudClassifier(hidden_irreps(width), num_classes, args.group, num_layers=len(args.levels), kernel=args.kernel,
                                readout=readout, activation=args.activation, input=args.input, **kwargs)  # fmt: skip


def budget_model(args, budget: int):
    """Width closest to ``budget`` at readout 128, then the readout (finer steps) closest to it."""
    _, width = match_budget(lambda w: build_model(w, 128, args), budget)
    model, readout = match_budget(lambda r: build_model(width, r, args), budget)
    return model, width, readout


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--group", default="so2", help="any pyg_implicit.groups name")
    parser.add_argument("--kernel", choices=["implicit", "standard"], default="implicit")
    parser.add_argument("--width", type=int, default=8, help="hidden features w x (0e + 1o + 2e) (ignored with --budget)")
    parser.add_argument("--readout", type=int, default=128)
    parser.add_argument("--budget", type=int, help="choose width and readout whose parameter count is closest to this")
    parser.add_argument("--kernel-hidden", default="8x0e+8x1o+8x2e", help="hidden irreps of the implicit kernels' G-MLP")
    parser.add_argument("--kernel-mlp-group", help="a larger group for the implicit kernels' G-MLP (e.g. o3; default: --group)")
    parser.add_argument("--kernel-form", choices=("mlp", "factorized"), default="mlp",
                        help="the implicit kernels' network: the paper's G-MLP, or invariant functions times harmonics (ImplicitKernel's form)")
    parser.add_argument("--activation", choices=["gate", "quotient_elu"], default="gate")
    parser.add_argument("--points", type=int, default=1024)
    parser.add_argument("--levels", type=int, nargs="+", default=[1024, 512, 256, 128, 64, 32], help="points per convolution")
    parser.add_argument("--k", type=int, default=16, help="neighbours per point")
    parser.add_argument("--augment", help="group of the training rotations (default: --group; 'trivial': none)")
    parser.add_argument("--rotated-test", nargs="*", help="groups of the rotated test sets (default: --group and so3)")
    add_training_arguments(parser, epochs=200, batch_size=32, lr=1e-3, weight_decay=1e-4, lr_step=25)
    parser.add_argument("--label-smoothing", type=float, default=0.1)
    parser.add_argument("--val-fraction", type=float, default=0.2)
    parser.add_argument("--source", default="auto", choices=["auto", "full", "resampled", "mesh", "npz"])
    parser.add_argument("--input", default="auto", choices=["auto", "normal", "normal_axis", "none"],
                        help="point features; auto: the normals where the data has them, else estimated normal axes")
    parser.add_argument("--max-points", type=int, default=2048, help="points stored per shape")
    parser.add_argument("--data-root", default=os.environ.get("PYG_IMPLICIT_MODELNET_ROOT", "data_cache/modelnet"))
    parser.add_argument("--out-dir", help="default: runs/modelnet/<kernel>-<group>_s<seed>")
    args = parser.parse_args(argv)
    args.augment = args.augment or args.group
    args.rotated_test = [args.group, "so3"] if args.rotated_test is None else args.rotated_test
    if args.levels[0] > args.points:
        parser.error(f"--levels: the first level ({args.levels[0]}) cannot exceed --points ({args.points})")
    return args


def shape_transform(args, rotation: Optional[str] = None) -> Compose:
    """A shape's transform: sample ``--points``, rotate by a random element of ``rotation`` (if
    given), estimate the normal axes after the rotation (a 2e field, with ``--input normal_axis``),
    build the kNN levels."""
    features = [EstimateNormalAxes(args.k)] if args.input == "normal_axis" else []
    return Compose([NormalizeUnitBall(), FixedPoints(args.points, replace=False, allow_duplicates=True),
                    *([RandomRotation(rotation)] if rotation else []), *features, KNNHierarchy(args.levels, args.k)])  # fmt: skip


@torch.no_grad()
def accuracy(model, dataset, batch_size: int, num_workers: int = 0) -> float:
    model.eval()
    device = next(model.parameters()).device
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers)
    correct = sum(int((model(b.to(device)).argmax(-1) == b.y).sum()) for b in loader)
    return correct / len(dataset)


def main(argv=None) -> dict:
    args = parse_args(argv)
    out_dir = args.out_dir or os.path.join("runs", "modelnet", f"{args.kernel}-{args.group}_s{args.seed}")
    with distributed() as (rank, _):
        with rank_zero_first():  # rank 0 reads and caches the shapes, the others then load them
            train_all = ModelNetPoints(args.data_root, "train", args.source, max_points=args.max_points)
            test_set = ModelNetPoints(args.data_root, "test", args.source, max_points=args.max_points)
        if args.input == "auto":
            args.input = "normal" if getattr(train_all[0], "normal", None) is not None else "normal_axis"
        train_transform, test_transform = shape_transform(args, args.augment), shape_transform(args)
        train_all.transform, test_set.transform = train_transform, test_transform
        perm = torch.from_numpy(np.random.default_rng(args.seed).permutation(len(train_all)))
        n_val = max(1, round(args.val_fraction * len(train_all)))
        train_set, val_set = train_all.index_select(perm[n_val:]), train_all.index_select(perm[:n_val])
        val_set.transform = test_transform
        seed_everything(args.seed)  # the initial weights depend on the seed too
        if args.budget:
            model, width, readout = budget_model(args, args.budget)
        else:
            model, width, readout = build_model(args.width, args.readout, args), args.width, args.readout

        def loss_fn(model, batch):
            return F.cross_entropy(model(batch), batch.y, label_smoothing=args.label_smoothing), batch.num_graphs

        def error(model, batch):  # the validation curve
            return (model(batch).argmax(-1) != batch.y).double().mean(), batch.num_graphs

        extra = {"task": "modelnet", "group": args.group, "kernel": args.kernel, "kernel_mlp_group": args.kernel_mlp_group, "kernel_form": args.kernel_form, "input": args.input, "width": width, "readout": readout,
                 "sizes": [len(train_set), len(val_set), len(test_set)], "augment": args.augment,
                 "rotated_test": args.rotated_test, "points": args.points, "levels": args.levels, "k": args.k,
                 "data": train_all.report}  # fmt: skip
        config = config_from_args(args, out_dir, extra)
        metrics = fit(model, train_set, val_set, test_set, loss_fn, config, metric_fn=error)
        torch.manual_seed(args.seed)  # the test set's sampling and rotations
        metrics["test_accuracy"] = accuracy(model, test_set, args.batch_size, args.workers)
        metrics["rotated_test_accuracy"] = {}
        for group in args.rotated_test:
            test_set.transform = shape_transform(args, group)
            metrics["rotated_test_accuracy"][group] = accuracy(model, test_set, args.batch_size, args.workers)
    if rank == 0:
        with open(os.path.join(out_dir, "metrics.json"), "w") as f:
            json.dump(metrics, f, indent=1)
    print(json.dumps({"group": args.group, "kernel": args.kernel, "width": width, "readout": readout,
                      "parameters": count_parameters(model), "test_accuracy": metrics["test_accuracy"],
                      "rotated_test_accuracy": metrics["rotated_test_accuracy"]}))  # fmt: skip
    return metrics


if __name__ == "__main__":
    main()
