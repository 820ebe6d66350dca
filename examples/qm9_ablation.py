"""The implicit-kernel ablation of paper Fig. 4 on QM9: standard kernel vs implicit kernel vs
implicit + bond type vs implicit + bond type + atom types, at one parameter budget, over seeds.

    python examples/qm9_ablation.py --jobs 2                         # CPU budget: 3k molecules, 20 epochs of batch 32, 3 seeds
    python examples/qm9_ablation.py --train-size 110000 --val-size 10000 --epochs 125 --batch-size 128 --lr 5e-4 --lr-step 25  # paper's

--no-match-budget trains every row at --width instead, each kernel at its own parameter count, as the paper compared
them. --variants adds further rows (VARIANTS): the implicit kernel with the standard kernel's distance
embedding, its factorised network, and the options of its G-MLP one at a time (shell, polynomial
normalisation, depth). Each run is examples/train_qm9.py (its metrics.json is reused when present, an interrupted run
resumes from its last.pt); with --jobs N, N runs go at once in separate processes (one CPU thread
each). Writes <out-dir>/results.json, results.md (test MAE, mean +- std over seeds) and results.png
(bars of the test MAE beside the validation curves of every run).
"""
import argparse
import json
import os
import sys
import textwrap

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_qm9 import build_model, main as train, parse_args as train_args  # noqa: E402

from pyg_implicit.datasets import QM9  # noqa: E402
from pyg_implicit.training import count_parameters, run_many  # noqa: E402
from pyg_implicit.transforms.molecule import UNITS  # noqa: E402

VARIANTS = {  # label: train_qm9.py flags
    "standard kernel": ["--kernel", "standard", "--no-bond-attr", "--no-atom-attr"],
    "implicit kernel": ["--no-bond-attr", "--no-atom-attr"],
    "implicit + bond type": ["--no-atom-attr"],
    "implicit + bond + atom types": [],
    # one thing changed against "implicit kernel": the bond length's Gaussian embedding as the standard kernel has it
    "implicit kernel + distance embedding": ["--no-bond-attr", "--no-atom-attr", "--radial-basis", "10"],
    # the implicit kernel's factorised network (ImplicitKernel(form="factorized")), its R reading the distance embedding too
    "factorised implicit kernel": ["--no-bond-attr", "--no-atom-attr", "--kernel-form", "factorized", "--radial-basis", "10"],
    "factorised implicit + bond + atom types": ["--kernel-form", "factorized", "--radial-basis", "10"],
    # what the standard kernel reads from the bond length: a coarse embedding of it (3 Gaussians, 1 A apart, for 10, 0.22 A
    # apart), and the bond type on top of it
    "standard kernel, coarse distance embedding": ["--kernel", "standard", "--no-bond-attr", "--no-atom-attr", "--radial-basis", "3"],
    "standard + bond type": ["--kernel", "standard", "--no-atom-attr"],
    "standard + bond + atom types": ["--kernel", "standard"],
    # the implicit kernel's network, one option changed against "implicit kernel", then the N-body task's two kernel
    # options together (its third, the scalar gate, is the gate under O(3): no O(3) field but 0e has invariant components)
    "implicit kernel, no shell": ["--no-bond-attr", "--no-atom-attr", "--no-shell"],
    "implicit kernel, data-scaled polynomials": ["--no-bond-attr", "--no-atom-attr", "--polynomial-norm", "data"],
    "implicit kernel, no shell, data-scaled polynomials": ["--no-bond-attr", "--no-atom-attr", "--no-shell", "--polynomial-norm", "data"],
    "implicit kernel, 3-layer G-MLP": ["--no-bond-attr", "--no-atom-attr", "--kernel-mlp-layers", "3"],
    # the paper's protocol (--no-match-budget): the same network with a G-MLP four times as wide, 3x the parameters
    "implicit kernel, wide G-MLP": ["--no-bond-attr", "--no-atom-attr", "--kernel-hidden", "32x0e+32x1o+32x2e"],
    "implicit + bond type, wide G-MLP": ["--no-atom-attr", "--kernel-hidden", "32x0e+32x1o+32x2e"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="homo")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS)[:4], metavar="VARIANT",
                        help=f"any of {list(VARIANTS)} (default: the first four, the rows of paper Fig. 4)")
    parser.add_argument("--train-size", type=int, default=3000)
    parser.add_argument("--val-size", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--lr-step", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=1, help="runs trained at the same time, in separate processes")
    parser.add_argument("--subset", type=int, help="process only this many random molecules (quick runs)")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--width", type=int, default=4,
                        help="width of the full model; it sets the parameter budget of all (--no-match-budget: the width of all)")
    parser.add_argument("--match-budget", action=argparse.BooleanOptionalAction, default=True,
                        help="size every model to the parameter count of the full model at --width (ours); --no-match-budget: "
                             "every model at --width, each kernel at its own size (the paper's protocol)")
    parser.add_argument("--out-dir", default="runs/qm9_ablation")
    parser.add_argument("--data-root", default=os.environ.get("PYG_IMPLICIT_QM9_ROOT", "data_cache/qm9"))
    args = parser.parse_args()
    common = ["--target", args.target, "--train-size", str(args.train_size), "--val-size", str(args.val_size),
              "--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--lr", str(args.lr), "--lr-step", str(args.lr_step), "--layers", str(args.layers),
              "--data-root", args.data_root, "--no-progress"]  # fmt: skip
    if args.subset:
        common += ["--subset", str(args.subset)]
    budget = count_parameters(build_model(args.width, train_args(common)))
    os.makedirs(args.out_dir, exist_ok=True)
    QM9(args.data_root, subset=args.subset)  # processed and cached once here, not by several processes at the same time
    size = ["--budget", str(budget)] if args.match_budget else ["--width", str(args.width)]
    cells = [(seed, label) for seed in args.seeds for label in args.variants]  # seeds outermost: a partial ablation compares all variants
    jobs = [(os.path.join(args.out_dir, f"{label.replace(' ', '').replace('+', '_').replace(',', '')}_s{seed}"),
             common + VARIANTS[label] + size + ["--seed", str(seed)]) for seed, label in cells]  # fmt: skip
    results = {}
    for (seed, label), metrics in zip(cells, run_many(jobs, train, args.jobs)):
        results.setdefault(label, []).append({"seed": seed, "test_mae": metrics["test_mae"], "parameters": metrics["parameters"],
                                              "width": metrics["config"]["extra"]["width"], "seconds": metrics["train_seconds"],
                                              "best_epoch": metrics["best_epoch"],
                                              "val_mae": [r.get("val_mae") for r in metrics["history"]]})  # fmt: skip
        print(f"{label:>30} seed={seed} test MAE {metrics['test_mae']:.1f} {UNITS[args.target]} "
              f"({metrics['parameters']} params, {metrics['train_seconds']:.0f} s)", flush=True)  # fmt: skip

    lines = [
        f"QM9 {args.target}: test MAE ({UNITS[args.target]}), mean ± std over seeds {args.seeds}. O(3), bond graph, "
        f"{args.layers} layers, {args.train_size} training / {args.val_size} validation molecules, full test split, "
        f"{args.epochs} epochs, batch {args.batch_size}, AdamW lr {args.lr:g} halved every {args.lr_step} epochs, best-on-validation checkpoint; "
        + (f"parameter budget {budget}" if args.match_budget else f"width {args.width}, parameters not matched (the paper's protocol)")
        + f" (`python examples/qm9_ablation.py --train-size {args.train_size} --val-size {args.val_size} --epochs {args.epochs} "
        f"--batch-size {args.batch_size} --lr {args.lr:g} --lr-step {args.lr_step}{'' if args.match_budget else ' --no-match-budget'}`; "
        f"seconds per run on this machine). "
        f"Last epochs: the validation MAE of the last five epochs, mean over seeds (flat when converged).",
        "",
        f"| kernel | params | test MAE ({UNITS[args.target]}) | min / max over seeds | val. MAE, last 5 epochs | best epoch | seconds / run |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, runs in results.items():
        mae = np.array([r["test_mae"] for r in runs])
        last = np.mean([r["val_mae"][-5:] for r in runs], axis=0)
        lines.append(f"| {label} | {runs[0]['parameters']} | {mae.mean():.1f} ± {mae.std():.1f} | {mae.min():.1f} / {mae.max():.1f} | "
                     f"{' '.join(f'{v:.1f}' for v in last)} | {', '.join(str(r['best_epoch']) for r in runs)} | "
                     f"{np.mean([r['seconds'] for r in runs]):.0f} |")  # fmt: skip
    table = "\n".join(lines)
    print(table)
    with open(os.path.join(args.out_dir, "results.md"), "w") as f:
        f.write(table + "\n")
    with open(os.path.join(args.out_dir, "results.json"), "w") as f:
        json.dump({"args": vars(args), "budget": budget, "results": results}, f, indent=1)
    plot(results, args.target, os.path.join(args.out_dir, "results.png"))


def plot(results: dict, target: str, path: str) -> None:
    """Left: test MAE per kernel (bars: mean ± std, dots: seeds). Right: validation MAE vs epoch,
    one colour per kernel, one line per seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(results)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    runs = [np.array([r["test_mae"] for r in results[label]]) for label in labels]
    fig, (bars, curves) = plt.subplots(1, 2, figsize=(10, 3.6))
    bars.bar(range(len(labels)), [r.mean() for r in runs], yerr=[r.std() for r in runs], capsize=4, color=colors[: len(labels)])
    for i, r in enumerate(runs):
        bars.scatter(np.full(len(r), i), r, color="k", s=8, zorder=3)
    bars.set_xticks(range(len(labels)), [textwrap.fill(label, 14) for label in labels], fontsize=7)
    bars.set_ylabel(f"test MAE {target} ({UNITS[target]})")
    bars.grid(alpha=0.3, axis="y")
    for color, label in zip(colors, labels):
        for i, run in enumerate(results[label]):
            epochs = [e + 1 for e, v in enumerate(run["val_mae"]) if v is not None]
            curves.plot(epochs, [v for v in run["val_mae"] if v is not None], color=color, lw=1, label=label if i == 0 else None)
    curves.set_yscale("log")
    curves.set_xlabel("epoch")
    curves.set_ylabel(f"validation MAE ({UNITS[target]})")
    curves.grid(alpha=0.3, which="both")
    curves.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
