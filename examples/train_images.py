"""Train an image classifier on rotated MNIST and write its test error to JSON.

    python examples/train_images.py --model p4cnn                 # Z2CNN, P4CNN, P4MCNN, Z2CNN + IEN loss, implicit-kernel CNNs
    python examples/train_images.py --model ik --group d4
    python examples/train_images.py --model ik --activation orbit_elu    # ELU on the C4 orbits of the sphere instead of gates
    python examples/train_images.py --model p4mcnn --invariant-group c4   # mirror-equivariant, logits invariant to rotations only
    python examples/train_images.py --model z2cnn-ien --ien-weight 0.1
    torchrun --nproc_per_node 2 examples/train_images.py ...      # data parallel (not with z2cnn-ien)

Every model is sized to the parameter count of the Z2CNN (within 10%). Saves best.pt and
model.pt (pyg_implicit.load_model(path) rebuilds it; it evaluates any (N, 1, 28, 28) tensor).
"""
import argparse
import json
import os
from typing import Optional, Tuple

import torch
import torch.nn.functional as F

from pyg_implicit import save_model
from pyg_implicit.datasets import RotatedMNIST
from pyg_implicit.models import match_budget
from pyg_implicit.models.gcnn import GCNN
from pyg_implicit.models.image_cnn import SteerableImageCNN
from pyg_implicit.nn.equivariance_loss import EquivarianceLoss, image_rotations, linear_warmup
from pyg_implicit.training import add_training_arguments, config_from_args, count_parameters, distributed, fit, rank_zero_first, seed_everything

MODELS = ("z2cnn", "p4cnn", "p4mcnn", "z2cnn-ien", "ik")


def hidden_irreps(k: int) -> str:
    """The k-th field layout, adding one field at a time in the order 0e, 1o, 2e (k >= 3: at least one of each)."""
    muls = [(k + 2 - i) // 3 for i in range(3)]
    return "+".join(f"{m}x{ir}" for m, ir in zip(muls, ("0e", "1o", "2e")) if m)


def build_model(name: str, size: int, group: str, kernel_width: int = 2, dropout: float = 0.3, invariant_group: Optional[str] = None,
                activation: str = "gate", batch_norm: str = "o3", kernel: str = "implicit", readout: str = "max",
                readout_irreps: Optional[str] = None) -> torch.nn.Module:
    if name in ("z2cnn", "z2cnn-ien"):
        return GCNN("z2", size, dropout=dropout, invariant_group=invariant_group, readout=readout)  # no group axis: an error if given
    if name in ("p4cnn", "p4mcnn"):
        return GCNN(name[:-3], size, dropout=dropout, invariant_group=invariant_group, readout=readout)
    if name == "ik":
        kernel_hidden = f"{kernel_width}x0e+{kernel_width}x1o+{kernel_width}x2e" if kernel == "implicit" else None
        # OrbitELU reads each channel of 0e + 1o + 2e as one function on the sphere: size counts channels, not fields
        hidden = f"{size}x0e+{size}x1o+{size}x2e" if activation == "orbit_elu" else hidden_irreps(size)
        return SteerableImageCNN(hidden, group, kernel_hidden_irreps=kernel_hidden, dropout=dropout, invariant_group=invariant_group,
                                 activation=activation, batch_norm=batch_norm, kernel=kernel, readout_irreps=readout_irreps)  # fmt: skip
    raise ValueError(f"model: expected one of {MODELS}, got {name!r}")


def sized_model(name: str, group: str, budget: int, **options):
    """The model closest to ``budget`` parameters, sized by its channels (fields, for implicit kernels:
    their G-MLPs keep ``kernel_width`` fields of each of 0e, 1o, 2e); ``options`` as :func:`build_model`'s."""
    return match_budget(lambda s: build_model(name, s, group, **options), budget)


def model_from_args(args: argparse.Namespace) -> Tuple[torch.nn.Module, int]:
    """The network ``args`` name and its size: ``--size`` if given (the Z2CNN: 20 channels), else
    sized to the Z2CNN's parameter count (every model of the benchmark is compared at that budget)."""
    options = dict(kernel_width=args.kernel_width, dropout=args.dropout, invariant_group=args.invariant_group, activation=args.activation,
                   batch_norm=args.batch_norm, kernel=args.kernel, readout=args.readout, readout_irreps=args.readout_irreps)
    if args.model in ("z2cnn", "z2cnn-ien") or args.size:
        size = args.size or 20
        return build_model(args.model, size, args.group, **options), size
    return sized_model(args.model, args.group, count_parameters(GCNN("z2")), **options)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=MODELS, default="p4cnn")
    parser.add_argument("--group", default="c4", help="group of the implicit-kernel CNN (c4, d4, so2, ...)")
    parser.add_argument("--kernel-width", type=int, default=2, help="fields of each of 0e, 1o, 2e in the hidden layer of the implicit kernels' G-MLP")
    parser.add_argument("--invariant-group", help="G-CNNs and implicit-kernel CNNs: the subgroup of the point group the logits are "
                        "invariant to (c4 for p4mcnn / d4: mirror-equivariant features, logits that tell mirror images apart)")
    parser.add_argument("--activation", choices=["gate", "orbit_elu"], default="gate",
                        help="nonlinearity of the implicit-kernel CNN (orbit_elu: finite groups; hidden fields mul x (0e + 1o + 2e))")
    parser.add_argument("--kernel", choices=["implicit", "basis"], default="implicit",
                        help="kernels of the implicit-kernel CNN (basis: weights times an orthonormal basis of the steerable kernels on the grid)")
    parser.add_argument("--batch-norm", choices=["o3", "group"], default="o3",
                        help="batch norm of the implicit-kernel CNN (group: every invariant component of the group centred, with a bias)")
    parser.add_argument("--size", type=int, help="channels of the G-CNNs / fields of the implicit-kernel CNN (orbit_elu: channels of "
                        "0e + 1o + 2e); default: sized to the Z2CNN's parameter count")
    parser.add_argument("--readout", choices=["max", "mean"], default="max",
                        help="P4CNN / P4MCNN: pooling of the logits over the group axis (mean: a linear invariant readout)")
    parser.add_argument("--readout-irreps", help="implicit-kernel CNN: the last kernel's output fields, whose invariants a linear "
                        "layer maps to the logits (default: the logits are the last kernel's invariant scalars)")
    parser.add_argument("--ien-weight", type=float, default=0.1, help="weight of the equivariance loss (z2cnn-ien)")
    parser.add_argument("--dropout", type=float, default=0.3, help="dropout after every hidden layer (the implicit-kernel CNN drops whole fields of a pixel)")
    # precise BN: the G-CNNs drop out before every batch norm (20 batches: 2,560 training digits)
    add_training_arguments(parser, epochs=30, batch_size=128, lr=1e-3, weight_decay=1e-4, lr_step=10, precise_bn=20)
    parser.add_argument("--train-size", type=int, help="use fewer training images (quick runs)")
    parser.add_argument("--test-size", type=int, help="use fewer test images (quick runs)")
    parser.add_argument("--npz-path", help="default: ../shared/data/mnist/mnist_train60k_grouped_by_label.npz")
    parser.add_argument("--data-root", default=os.environ.get("PYG_IMPLICIT_MNIST_ROOT", "data_cache/rotated_mnist"))
    parser.add_argument("--out-dir", help="default: runs/images/<model>[-<group>]_s<seed>")
    return parser.parse_args(argv)


@torch.no_grad()
def rotation_disagreement(model: torch.nn.Module, images: torch.Tensor, batch_size: int = 500) -> float:
    """Fraction of (digit, rotation by 90°, 180° or 270°) pairs whose predicted class differs from the
    unrotated digit's: 0 for a classifier invariant to C4, whatever its weights (how far the IEN
    penalty brings a plain CNN towards that)."""
    _, rotate = image_rotations("c4")
    model.eval()
    changed = 0
    for x in images.split(batch_size):
        pred = model(x).argmax(-1)
        changed += sum(int((model(rotate(x, g)).argmax(-1) != pred).sum()) for g in (1, 2, 3))
    return changed / (3 * len(images))


def ien_layers() -> tuple:
    """The IEN penalty of the Z2CNN: C4 rotations of the input; the logits invariant and the hidden maps
    after the second and fourth convolutions equivariant, their channels read as 5 x 4 orientations."""
    sample, rotate = image_rotations("c4")
    _, regular = image_rotations("c4", regular_channels=True)
    return sample, rotate, {"": lambda y, g: y, "convs.2": regular, "convs.4": regular}


@torch.no_grad()
def ien_relative_errors(model: torch.nn.Module, images: torch.Tensor, batch_size: int = 500) -> dict:
    """The IEN penalty's terms, unweighted, on ``images`` under all three non-trivial rotations: per
    layer, the squared error of the rotated input's map against the rotated map, over the map's
    variance (0 for an exactly equivariant Z2CNN). For the Z2CNN with and without the penalty."""
    _, rotate, layers = ien_layers()
    model.eval()
    errors = {}
    for name, action in layers.items():
        term = EquivarianceLoss(model, rotate, {name: action}, lambda n: [1, 2, 3], weight=1.0, num_samples=3)
        values = [float(term(x)[1]) for x in images.split(batch_size)]
        errors[name or "logits"] = sum(values) / len(values)
    return errors


def error(net, batch):
    """Misclassified fraction of a batch (the validation curve and the test error)."""
    return (net(batch.x).argmax(-1) != batch.y).double().mean(), batch.num_graphs


def main(argv=None) -> dict:
    args = parse_args(argv)
    tag = args.model + (f"-{args.group}" if args.model == "ik" else "") + (f"-inv-{args.invariant_group}" if args.invariant_group else "")
    tag += f"-{args.activation}" if args.model == "ik" and args.activation != "gate" else ""
    tag += "-groupbn" if args.model == "ik" and args.batch_norm == "group" else ""
    tag += "-basis" if args.model == "ik" and args.kernel == "basis" else ""
    tag += "-mean-readout" if args.readout == "mean" else ""
    tag += "-invariant-readout" if args.model == "ik" and args.readout_irreps else ""
    out_dir = args.out_dir or os.path.join("runs", "images", f"{tag}_s{args.seed}")
    with distributed() as (rank, _):
        with rank_zero_first():  # rank 0 builds and caches the rotated digits, the others then load them
            sizes = {"train": args.train_size, "val": None, "test": args.test_size}
            splits = [RotatedMNIST(args.data_root, split, args.npz_path, num_samples=sizes[split]) for split in ("train", "val", "test")]
        seed_everything(args.seed)  # the initial weights depend on the seed too
        model, size = model_from_args(args)
        kernel_width = args.kernel_width if args.model == "ik" and args.kernel == "implicit" else None
        ien = None
        if args.model == "z2cnn-ien":  # logits invariant, hidden maps equivariant with channels as 5 x 4 orientations
            sample, rotate, layers = ien_layers()
            ien = EquivarianceLoss(model, rotate, layers, sample, weight=args.ien_weight,
                                   schedule=linear_warmup(len(splits[0]) // args.batch_size))  # fmt: skip

        def loss_fn(net, batch):
            if ien is not None and net.training:
                logits, penalty = ien(batch.x)
                return F.cross_entropy(logits, batch.y) + penalty, batch.num_graphs
            return F.cross_entropy(net(batch.x), batch.y), batch.num_graphs

        extra = {"task": "rotated_mnist", "model": tag, "size": size, "kernel_width": kernel_width,
                 "activation": args.activation if args.model == "ik" else None,
                 "batch_norm": args.batch_norm if args.model == "ik" else None,
                 "kernel": args.kernel if args.model == "ik" else None, "readout": args.readout if args.model in ("p4cnn", "p4mcnn") else None,
                 "readout_irreps": args.readout_irreps if args.model == "ik" else None, "sizes": [len(s) for s in splits],
                 "ien_weight": args.ien_weight if ien is not None else None}  # fmt: skip
        config = config_from_args(args, out_dir, extra)
        metrics = fit(model, *splits, loss_fn, config, metric_fn=error)
        metrics["test_error"] = metrics["test_metric"]
    if rank == 0:
        save_model(model.cpu(), os.path.join(out_dir, "model.pt"))
        test_images = torch.cat([splits[2][i].x for i in range(min(len(splits[2]), 2000))])
        metrics["c4_disagreement"] = rotation_disagreement(model, test_images)  # of the best-on-validation weights
        if args.model in ("z2cnn", "z2cnn-ien"):
            metrics["ien_relative_error"] = ien_relative_errors(model, test_images)
        with open(os.path.join(out_dir, "metrics.json"), "w") as f:
            json.dump(metrics, f, indent=1)
    print(json.dumps({"model": tag, "size": size, "parameters": count_parameters(model), "test_error": metrics["test_error"],
                      "c4_disagreement": metrics.get("c4_disagreement")}))
    return metrics


if __name__ == "__main__":
    main()
