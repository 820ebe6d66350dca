"""Rotated MNIST: plain CNN, G-CNNs, plain CNN + equivariance loss and implicit-kernel steerable CNNs
at one parameter budget (that of the Z2CNN), test error over seeds, next to the G-CNN paper.

    python examples/images_benchmark.py --jobs 2                     # all models, 3 seeds, 30 epochs
    python examples/images_benchmark.py --models Z2CNN P4CNN --epochs 10 --lr-step 4   # a shorter budget
    python examples/images_benchmark.py --models "Z2CNN + IEN loss" --ien-weights 0 0.01 0.1 1   # the penalty's weight swept

Each run is examples/train_images.py (metrics.json reused when present, an interrupted run
resumes from its last.pt); with --jobs N, N runs go at once in separate processes (one CPU thread
each). Writes <out-dir>/results.json, results.md and curves.png (validation error vs epoch, one
line per run).
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_images import main as train  # noqa: E402

from pyg_implicit.datasets import RotatedMNIST  # noqa: E402
from pyg_implicit.training import run_many  # noqa: E402

MODELS = {  # label: train_images.py flags
    "Z2CNN": ["--model", "z2cnn"],
    "P4CNN": ["--model", "p4cnn"],
    "P4MCNN": ["--model", "p4mcnn"],
    # the labels are invariant to rotations, not to mirrors (a mirrored 5 reads as a 2): pool over C4 only
    "P4MCNN, C4-invariant logits": ["--model", "p4mcnn", "--invariant-group", "c4"],
    "Z2CNN + IEN loss": ["--model", "z2cnn-ien"],
    # lr 1e-2, chosen on validation (C4, seed 0, 10 epochs: 5.1% at 1e-2, 7.5% at 1e-3)
    "implicit-kernel CNN, C4": ["--model", "ik", "--group", "c4", "--lr", "1e-2"],
    "implicit-kernel CNN, D4": ["--model", "ik", "--group", "d4", "--lr", "1e-2"],
    "implicit-kernel CNN, D4, C4-invariant logits": ["--model", "ik", "--group", "d4", "--invariant-group", "c4", "--lr", "1e-2"],
    "implicit-kernel CNN, SO(2)": ["--model", "ik", "--group", "so2", "--lr", "1e-2"],
    # one field of each of 0e, 1o, 2e in the G-MLP: on the 3x3 grid its kernels span the whole C4-steerable space with as
    # many weights as dimensions (width 2 spends twice as many), so the budget buys more fields
    "implicit-kernel CNN, C4, G-MLP width 1": ["--model", "ik", "--group", "c4", "--lr", "1e-2", "--kernel-width", "1"],
    "implicit-kernel CNN, SO(2), G-MLP width 1": ["--model", "ik", "--group", "so2", "--lr", "1e-2", "--kernel-width", "1"],
    # the fields of the width-1 C4 network (4 x (0e + 1o + 2e)), each channel an ELU of its values on 32 points of C4-orbits on the
    # sphere (OrbitELU) instead of gated: no gate weights, so 16,337 parameters against 21,209
    "implicit-kernel CNN, C4, G-MLP width 1, orbit ELU": ["--model", "ik", "--group", "c4", "--lr", "1e-2", "--kernel-width", "1",
                                                          "--activation", "orbit_elu", "--size", "4"],
    # the C4 width-1 network's fields, gates and kernel space (183 dimensions a pair of 0e + 1o + 2e fields, all reached at width 1), with
    # the kernel an orthonormal basis of that space times one weight per dimension (BasisConv2d): 21,214 parameters against 21,209
    "C4 steerable CNN, explicit kernel basis": ["--model", "ik", "--group", "c4", "--lr", "1e-2", "--kernel", "basis", "--size", "12"],
    "D4 steerable CNN, explicit kernel basis, C4-invariant logits": ["--model", "ik", "--group", "d4", "--invariant-group", "c4", "--lr", "1e-2",
                                                                     "--kernel", "basis"],
    # the readout: the P4CNN's max over the rotations of its last map against a mean (a linear invariant map of the last hidden
    # layer, as the implicit-kernel CNNs have); and the width-1 C4 network with a nonlinear invariant readout: its last kernel
    # gives 10 1o fields, whose C4-invariants (z and the norm of (x, y)) a linear layer maps to the logits (23,019 parameters)
    "P4CNN, mean readout": ["--model", "p4cnn", "--readout", "mean"],
    "implicit-kernel CNN, C4, G-MLP width 1, invariant readout": ["--model", "ik", "--group", "c4", "--lr", "1e-2", "--kernel-width", "1",
                                                                  "--size", "12", "--readout-irreps", "10x1o"],
    "implicit-kernel CNN, SO(2), G-MLP width 1, invariant readout": ["--model", "ik", "--group", "so2", "--lr", "1e-2", "--kernel-width",
                                                                     "1", "--size", "14", "--readout-irreps", "10x1o"],
    # the same C4 network with half of the readout's fields 2e: under C4 a 2e field's m = ±2 components are two sign
    # representations, so |x² - y²| and |xy| are invariants of C4 and not of SO(2) (6 invariants a 1o + 2e pair; 23,919 parameters)
    "implicit-kernel CNN, C4, G-MLP width 1, 1o + 2e invariant readout": ["--model", "ik", "--group", "c4", "--lr", "1e-2",
                                                                          "--kernel-width", "1", "--size", "12", "--readout-irreps", "5x1o+5x2e"],
    # D4 at G-MLP width 2 (width 1 reaches 82 of its 93 kernel dimensions), 11 fields, not 12, so the readout stays in the budget (20,887)
    "implicit-kernel CNN, D4, C4-invariant logits, invariant readout": ["--model", "ik", "--group", "d4", "--invariant-group", "c4",
                                                                        "--lr", "1e-2", "--size", "11", "--readout-irreps", "10x1o"],
}
IEN = "Z2CNN + IEN loss"
PAPER = {"Z2CNN": "5.03", "P4CNN": "2.28"}  # Cohen & Welling (2016), Table 1


def model_flags(labels: list[str], ien_weights: list[float]) -> dict[str, list[str]]:
    """``train_images.py`` flags of every model of the benchmark; the IEN model once per penalty weight."""
    flags = {}
    for label in labels:
        if label == IEN:
            flags.update({f"{IEN}, weight {w:g}": MODELS[IEN] + ["--ien-weight", f"{w:g}"] for w in ien_weights})
        else:
            flags[label] = MODELS[label]
    return flags


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS), metavar="MODEL", help=f"a subset of {list(MODELS)}")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--lr-step", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=1, help="runs trained at the same time, in separate processes")
    parser.add_argument("--ien-weights", type=float, nargs="+", default=[0.1], help="weights of the IEN penalty, one run each (0: no penalty)")
    parser.add_argument("--dropout", type=float, default=0.1, help="dropout after every hidden layer (0.3 measured too much for these narrow networks)")
    parser.add_argument("--train-size", type=int, help="use fewer training images (quick runs)")
    parser.add_argument("--test-size", type=int, help="use fewer test images (quick runs)")
    parser.add_argument("--out-dir", default="runs/images_benchmark")
    parser.add_argument("--data-root", default=os.environ.get("PYG_IMPLICIT_MNIST_ROOT", "data_cache/rotated_mnist"))
    args = parser.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    sizes = {"train": args.train_size, "val": None, "test": args.test_size}  # as train_images.py reads them
    for split in ("train", "val", "test"):  # built and cached once here, not by several processes at the same time
        RotatedMNIST(args.data_root, split, num_samples=sizes[split])
    flags = model_flags(args.models, args.ien_weights)
    cells = [(seed, label) for seed in args.seeds for label in flags]  # seeds outermost: a partial benchmark compares all models
    common = ["--epochs", str(args.epochs), "--lr-step", str(args.lr_step), "--dropout", str(args.dropout), "--data-root", args.data_root,
              "--no-progress"]  # fmt: skip
    for flag, size in (("--train-size", args.train_size), ("--test-size", args.test_size)):
        if size:
            common += [flag, str(size)]
    jobs = [(os.path.join(args.out_dir, f"{'_'.join(flags[label][1::2])}_s{seed}"), flags[label] + common + ["--seed", str(seed)])
            for seed, label in cells]  # fmt: skip
    results = {}
    for (seed, label), metrics in zip(cells, run_many(jobs, train, args.jobs)):
        results.setdefault(label, []).append({"seed": seed, "test_error": metrics["test_error"], "parameters": metrics["parameters"],
                                              "seconds": metrics["train_seconds"], "best_epoch": metrics["best_epoch"],
                                              "c4_disagreement": metrics.get("c4_disagreement"),
                                              "val_error": [r.get("val_metric") for r in metrics["history"]]})  # fmt: skip
        print(f"{label:>28} seed={seed} test error {100 * metrics['test_error']:.2f}% ({metrics['parameters']} params, "
              f"{metrics['train_seconds']:.0f} s)", flush=True)  # fmt: skip

    lines = [
        f"Rotated MNIST test error (%), mean ± std over seeds {args.seeds}: 10,000 training / 2,000 validation / 48,000 test "
        f"digits, {args.epochs} epochs, batch 128, AdamW lr 1e-3 (implicit-kernel CNNs 1e-2) halved every {args.lr_step} epochs, "
        f"dropout {args.dropout:g}, "
        f"batch-norm statistics recomputed without dropout before each validation, best-on-validation checkpoint "
        f"(`python examples/images_benchmark.py --epochs {args.epochs} --lr-step {args.lr_step} --dropout {args.dropout:g} "
        f"--seeds {' '.join(map(str, args.seeds))}{' --ien-weights ' + ' '.join(f'{w:g}' for w in args.ien_weights) if IEN in args.models else ''}`). "
        f"Last epochs: the validation error of the last five epochs, mean over seeds (flat when converged). "
        f"90° disagreement: the fraction of (test digit, rotation by 90°, 180° or 270°) pairs whose predicted class changes "
        f"(2,000 test digits; 0 for a C4-invariant network).",
        "",
        "| model | params | test error (%) | min / max over seeds | G-CNN paper (%) | val. error, last 5 epochs (%) | best epoch "
        "| 90° disagreement (%) | seconds / run |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label, runs in results.items():
        err = 100 * np.array([r["test_error"] for r in runs])
        last = 100 * np.mean([r["val_error"][-5:] for r in runs], axis=0)
        disagreement = [r["c4_disagreement"] for r in runs if r["c4_disagreement"] is not None]  # absent from older runs
        lines.append(f"| {label} | {runs[0]['parameters']} | {err.mean():.2f} ± {err.std():.2f} | {err.min():.2f} / {err.max():.2f} | "
                     f"{PAPER.get(label, '')} | {' '.join(f'{v:.2f}' for v in last)} | {', '.join(str(r['best_epoch']) for r in runs)} | "
                     f"{f'{100 * np.mean(disagreement):.2f}' if disagreement else ''} | {np.mean([r['seconds'] for r in runs]):.0f} |")  # fmt: skip
    table = "\n".join(lines)
    print(table)
    with open(os.path.join(args.out_dir, "results.md"), "w") as f:
        f.write(table + "\n")
    with open(os.path.join(args.out_dir, "results.json"), "w") as f:
        json.dump({"args": vars(args), "results": results}, f, indent=1)
    plot_curves(results, os.path.join(args.out_dir, "curves.png"))


def plot_curves(results: dict, path: str) -> None:
    """Validation error (log scale) vs epoch: one colour per model, one line per seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for color, (label, runs) in zip(plt.rcParams["axes.prop_cycle"].by_key()["color"] * 2, results.items()):
        for i, run in enumerate(runs):
            ax.plot(range(1, len(run["val_error"]) + 1), 100 * np.array(run["val_error"]), color=color, lw=1, label=label if i == 0 else None)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation error (%)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
