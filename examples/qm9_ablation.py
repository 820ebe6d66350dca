"""The implicit-kernel ablation of paper Fig. 4 on QM9: standard kernel vs implicit kernel vs
implicit + bond type vs implicit + bond type + atom types, at one parameter budget, over seeds.

    python examples/qm9_ablation.py                                  # CPU budget: 10k molecules, 10 epochs, 3 seeds
    python examples/qm9_ablation.py --train-size 110000 --epochs 125 # the paper's budget (GPU)

Each run is examples/train_qm9.py (its metrics.json is reused when present, an interrupted run
resumes from its last.pt). Writes <out-dir>/results.json, results.md (test MAE, mean +- std over
seeds) and results.png (bar plot).
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_qm9 import build_model, main as train, parse_args as train_args  # noqa: E402

from pyg_implicit.training import count_parameters, run_once  # noqa: E402
from pyg_implicit.transforms.molecule import UNITS  # noqa: E402

VARIANTS = {  # label: train_qm9.py flags
    "standard kernel": ["--kernel", "standard", "--no-bond-attr", "--no-atom-attr"],
    "implicit kernel": ["--no-bond-attr", "--no-atom-attr"],
    "implicit + bond type": ["--no-atom-attr"],
    "implicit + bond + atom types": [],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="homo")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS), metavar="VARIANT",
                        help=f"a subset of {list(VARIANTS)}")
    parser.add_argument("--train-size", type=int, default=10000)
    parser.add_argument("--val-size", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--lr-step", type=int, default=4)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--width", type=int, default=4, help="width of the full model; it sets the parameter budget of all")
    parser.add_argument("--out-dir", default="runs/qm9_ablation")
    parser.add_argument("--data-root", default=os.environ.get("PYG_IMPLICIT_QM9_ROOT", "data_cache/qm9"))
    args = parser.parse_args()
    common = ["--target", args.target, "--train-size", str(args.train_size), "--val-size", str(args.val_size),
              "--epochs", str(args.epochs), "--lr", str(args.lr), "--lr-step", str(args.lr_step), "--layers", str(args.layers),
              "--data-root", args.data_root, "--no-progress"]  # fmt: skip
    budget = count_parameters(build_model(args.width, train_args(common)))
    os.makedirs(args.out_dir, exist_ok=True)
    results = {}
    for seed in args.seeds:  # seeds outermost: a partial ablation still compares all variants
        for label in args.variants:
            flags = VARIANTS[label]
            run_dir = os.path.join(args.out_dir, f"{label.replace(' ', '').replace('+', '_')}_s{seed}")
            metrics = run_once(run_dir, train, common + flags + ["--budget", str(budget), "--seed", str(seed)])
            results.setdefault(label, []).append({"seed": seed, "test_mae": metrics["test_mae"], "parameters": metrics["parameters"],
                                                  "width": metrics["config"]["extra"]["width"], "seconds": metrics["train_seconds"]})  # fmt: skip
            print(f"{label:>30} seed={seed} test MAE {metrics['test_mae']:.1f} {UNITS[args.target]} "
                  f"({metrics['parameters']} params, {metrics['train_seconds']:.0f} s)", flush=True)  # fmt: skip

    lines = [
        f"QM9 {args.target}: test MAE ({UNITS[args.target]}), mean ± std over seeds {args.seeds}. O(3), bond graph, "
        f"{args.layers} layers, {args.train_size} training / {args.val_size} validation molecules, full test split, "
        f"{args.epochs} epochs, AdamW lr {args.lr:g} halved every {args.lr_step} epochs, best-on-validation checkpoint; "
        f"parameter budget {budget} (`python examples/qm9_ablation.py`; seconds per run on this machine).",
        "",
        f"| kernel | params | test MAE ({UNITS[args.target]}) | seconds / run |",
        "|---|---|---|---|",
    ]
    for label, runs in results.items():
        mae = np.array([r["test_mae"] for r in runs])
        lines.append(f"| {label} | {runs[0]['parameters']} | {mae.mean():.1f} ± {mae.std():.1f} | {np.mean([r['seconds'] for r in runs]):.0f} |")
    table = "\n".join(lines)
    print(table)
    with open(os.path.join(args.out_dir, "results.md"), "w") as f:
        f.write(table + "\n")
    with open(os.path.join(args.out_dir, "results.json"), "w") as f:
        json.dump({"args": vars(args), "budget": budget, "results": results}, f, indent=1)
    plot(results, args.target, os.path.join(args.out_dir, "results.png"))


def plot(results: dict, target: str, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(results)
    runs = [np.array([r["test_mae"] for r in results[label]]) for label in labels]
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    ax.bar(range(len(labels)), [r.mean() for r in runs], yerr=[r.std() for r in runs], capsize=4, color="#4c72b0")
    for i, r in enumerate(runs):
        ax.scatter(np.full(len(r), i), r, color="k", s=8, zorder=3)
    ax.set_xticks(range(len(labels)), [label.replace(" + ", "\n+ ") for label in labels], fontsize=8)
    ax.set_ylabel(f"test MAE {target} ({UNITS[target]})")
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
