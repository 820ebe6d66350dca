"""Train a steerable CNN on a QM9 property (paper sec. 5.4) and write its test MAE to JSON.

    python examples/train_qm9.py --target homo --epochs 125                  # O(3), implicit kernel + bond and atom types
    python examples/train_qm9.py --target homo --kernel standard --no-bond-attr --no-atom-attr
    python examples/train_qm9.py --target U0 --radius 5.0                     # radius graph instead of the bonds
    python examples/train_qm9.py --target gap --train-size 10000 --budget 60000
    torchrun --nproc_per_node 2 examples/train_qm9.py ...                     # data parallel

Targets are standardised with training statistics and trained with the L1 loss; the reported MAE
is in the units of the literature (meV for energies, D, bohr^3, bohr^2, cal/(mol K)).
"""
import argparse
import json
import os

import torch
import torch.nn.functional as F
from torch_geometric.transforms import Compose

from pyg_implicit.datasets import QM9
from pyg_implicit.models import QM9Net, match_budget
from pyg_implicit.training import add_implicit_kernel_arguments, add_training_arguments, config_from_args, count_parameters, distributed, fit, rank_zero_first, seed_everything
from pyg_implicit.transforms import AtomOneHot, BondOneHot, QM9Targets, RadiusGraph, StandardizeTargets
from pyg_implicit.transforms.molecule import QM9_TARGETS, UNITS


STANDARD_BASIS = {"standard": 10}  # --radial-basis when not given: the standard kernel's default embedding (the others: none)
PAPER_KERNEL = {"kernel_hidden": "8x0e+8x1o+8x2e", "kernel_mlp_layers": 2, "kernel_activation": "gate", "shell": True,
                "polynomial_norm": "batch"}  # the defaults: the paper's G-MLP (depth, gate, shell, normalisation) at our width


def l1(model, batch):
    return F.l1_loss(model(batch), batch.y), batch.y.numel()


def hidden_irreps(width: int) -> str:
    """Hidden features at width ``w``: ``4w x 0e + 2w x 1o + w x 2e``."""
    return f"{4 * width}x0e+{2 * width}x1o+{width}x2e"


def build_model(width: int, args) -> QM9Net:
    kwargs = dict(max_radius=args.radius or 2.0, num_basis=args.radial_basis)
    if args.kernel == "implicit":
        kwargs.update(kernel_hidden_irreps=args.kernel_hidden, form=args.kernel_form,
                      mlp_layers=args.kernel_mlp_layers, kernel_activation=args.kernel_activation, shell=args.shell,
                      polynomial_norm=args.polynomial_norm)  # fmt: skip
    return QM9Net(hidden_irreps(width), num_layers=args.layers, group=args.group, kernel=args.kernel,
                  bond_attr=args.bond_attr, atom_attr=args.atom_attr, readout=args.readout, **kwargs)  # fmt: skip


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", choices=QM9_TARGETS, default="homo")
    parser.add_argument("--kernel", choices=["implicit", "standard"], default="implicit")
    parser.add_argument("--bond-attr", action=argparse.BooleanOptionalAction, default=True, help="bond type into the kernels")
    parser.add_argument("--atom-attr", action=argparse.BooleanOptionalAction, default=True, help="atom types of both endpoints into the kernels")
    parser.add_argument("--group", default="o3", help="any pyg_implicit.groups name")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--width", type=int, default=4, help="hidden features 4w x 0e + 2w x 1o + w x 2e (ignored with --budget)")
    parser.add_argument("--budget", type=int, help="choose the width whose parameter count is closest to this")
    parser.add_argument("--kernel-hidden", default=PAPER_KERNEL["kernel_hidden"], help="hidden irreps of the implicit kernels' G-MLP")
    add_implicit_kernel_arguments(parser, mlp_layers=PAPER_KERNEL["kernel_mlp_layers"], shell=PAPER_KERNEL["shell"],
                                  polynomial_norm=PAPER_KERNEL["polynomial_norm"])  # fmt: skip
    parser.add_argument("--kernel-activation", choices=("gate", "scalar_gate"), default=PAPER_KERNEL["kernel_activation"],
                        help="nonlinearity of the implicit kernels' G-MLP (scalar_gate: invariant components activated like scalars)")
    parser.add_argument("--radial-basis", type=int,
                        help="Gaussian embedding of the bond length: this many scalars on [0, 2 A] or [0, --radius] into the kernels' "
                             "networks (default: 0, none, for the implicit kernels as in the paper; 10 for the standard kernel's R)")
    parser.add_argument("--readout", type=int, default=128, help="invariant features per atom and width of the final MLP")
    parser.add_argument("--radius", type=float, help="use a radius graph of this cutoff (Angstrom) instead of the bonds")
    add_training_arguments(parser, epochs=125, batch_size=128, lr=5e-4, weight_decay=1e-8, lr_step=25)
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--train-size", type=int, help="default: the standard 110,000")
    parser.add_argument("--val-size", type=int, help="default: the standard 10,000")
    parser.add_argument("--subset", type=int, help="process only this many random molecules (quick runs)")
    parser.add_argument("--source", default="auto", choices=["auto", "sdf", "qm9pack", "npz"])
    parser.add_argument("--npz-path", help="default: ../shared/data/qm9/qm9_full_130831.npz")
    parser.add_argument("--data-root", default=os.environ.get("PYG_IMPLICIT_QM9_ROOT", "data_cache/qm9"))
    parser.add_argument("--out-dir", help="default: runs/qm9/<target>_<variant>_s<seed>")
    args = parser.parse_args(argv)
    if args.radial_basis is None:
        args.radial_basis = STANDARD_BASIS.get(args.kernel, 0)
    if args.kernel == "standard" and args.radial_basis < 1:
        parser.error(f"--radial-basis: the standard kernel's R reads the distance through at least 1 Gaussian, got {args.radial_basis}")
    implicit_only = changed_kernel_options(args) if args.kernel == "standard" else []
    if implicit_only:
        flags = [("--no-" if getattr(args, name) is False else "--") + name.replace("_", "-") for name in implicit_only]  # as typed
        parser.error(f"{', '.join(flags)}: options of the implicit kernel, not of --kernel standard")
    return args


def changed_kernel_options(args) -> list:
    """The implicit kernel network's options (``PAPER_KERNEL``) that ``args`` sets apart from the paper's kernel."""
    return [name for name, default in PAPER_KERNEL.items() if getattr(args, name) != default]


def variant_name(args) -> str:
    distance = f"+dist{args.radial_basis}" if args.radial_basis != STANDARD_BASIS.get(args.kernel, 0) else ""
    form = "-factorized" if args.kernel == "implicit" and args.kernel_form != "mlp" else ""
    if args.kernel == "implicit":  # the kernel network's options where they differ from the paper's
        tags = {"kernel_hidden": f"-hidden{args.kernel_hidden}", "kernel_mlp_layers": f"-mlp{args.kernel_mlp_layers}",
                "kernel_activation": "-" + args.kernel_activation.replace("_", ""), "shell": "-noshell",
                "polynomial_norm": f"-poly{args.polynomial_norm}"}  # fmt: skip
        form += "".join(tags[name] for name in changed_kernel_options(args))
    return (args.kernel + form + distance + ("+bond" if args.bond_attr else "") + ("+atoms" if args.atom_attr else "")
            + (f"-{args.group}" if args.group != "o3" else ""))  # fmt: skip


def main(argv=None) -> dict:
    args = parse_args(argv)
    out_dir = args.out_dir or os.path.join("runs", "qm9", f"{args.target}_{variant_name(args)}_s{args.seed}")
    graph = [RadiusGraph(args.radius)] if args.radius else []
    base = Compose([AtomOneHot(), *graph, BondOneHot(), QM9Targets(args.target)])
    with distributed() as (rank, _):
        with rank_zero_first():  # rank 0 processes and caches the molecules, the others then load them
            dataset = QM9(args.data_root, source=args.source, npz_path=args.npz_path, subset=args.subset, transform=base)
        splits = dataset.split(args.split_seed, args.train_size, args.val_size)
        standardize = StandardizeTargets.fit(torch.cat([data.y for data in splits[0]]))
        for split in splits:
            split.transform = Compose([base, standardize])
        seed_everything(args.seed)  # the initial weights depend on the seed too
        model, width = match_budget(lambda w: build_model(w, args), args.budget) if args.budget else (build_model(args.width, args), args.width)
        extra = {"task": "qm9", "target": args.target, "unit": UNITS[args.target], "variant": variant_name(args),
                 "width": width, "sizes": [len(s) for s in splits], "standardize": standardize.state_dict(),
                 "bond_report": {k: v for k, v in dataset.bond_report.items() if not k.endswith("_ids")}}  # fmt: skip
        config = config_from_args(args, out_dir, extra)
        metrics = fit(model, *splits, l1, config)
    scale = standardize.std.item()  # L1 of standardised values times the std is the MAE in the target's unit
    metrics.update(test_mae=metrics["test_loss"] * scale, val_mae=metrics["best_val_loss"] * scale)
    for record in metrics["history"]:  # the validation curve in the target's unit
        if "val_loss" in record:
            record["val_mae"] = record["val_loss"] * scale
    if rank == 0:
        with open(os.path.join(out_dir, "metrics.json"), "w") as f:
            json.dump(metrics, f, indent=1)
    print(json.dumps({"target": args.target, "variant": variant_name(args), "width": width, "parameters": count_parameters(model),
                      "test_mae": metrics["test_mae"], "unit": UNITS[args.target]}))  # fmt: skip
    return metrics


if __name__ == "__main__":
    main()
