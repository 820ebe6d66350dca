"""The subgroup sweep of paper Fig. 3 on ModelNet-40: one classifier built for many subgroups of
O(3), implicit against standard kernels, every model at one parameter budget.

    python examples/modelnet_sweep.py --jobs 2             # CPU preset on the whole ModelNet-40 (when shared): 8 groups x
                                                           # 2 kernels x 3 seeds, ~4.5 h on 2 cores
    python examples/modelnet_sweep.py --source resampled   # the same on the 156-shape subset (minutes)
    python examples/modelnet_sweep.py --preset paper --jobs 8   # 1024 points, 200 epochs (GPU)

Each run is examples/train_modelnet.py (its metrics.json is reused when present, an interrupted
run resumes from its last.pt); with --jobs N, N runs go at once in separate processes (one CPU
thread each). Writes <out-dir>/results.json, results.md (test accuracy as given and under random
rotations, mean +- std over seeds) and results.png (bar plot).
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_modelnet import main as train  # noqa: E402

from pyg_implicit.datasets import ModelNetPoints  # noqa: E402
from pyg_implicit.training import run_many  # noqa: E402

GROUPS = ["so2", "o2", "cone", "fullcyl", "so3", "o3", "c4", "d4"]
PRESETS = {
    # ~5 min a run on one CPU thread; lr 3e-3: 32% test accuracy after 3 epochs (SO(2), implicit, seed 0), 1e-3: 25%
    "cpu": dict(points=64, levels=[64, 32, 16, 8], k=8, epochs=3, lr=3e-3, lr_step=1, seeds=[0, 1, 2]),
    "paper": dict(points=1024, levels=[1024, 512, 256, 128, 64, 32], k=16, epochs=200, lr=1e-3, lr_step=25, seeds=[0, 1, 2]),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    parser.add_argument("--groups", nargs="+", default=GROUPS)
    parser.add_argument("--kernels", nargs="+", choices=["implicit", "standard"], default=["implicit", "standard"])
    parser.add_argument("--seeds", type=int, nargs="+")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--budget", type=int, default=60000, help="parameters of every model (width and readout matched)")
    parser.add_argument("--source", default="auto", help="the data (train_modelnet.py --source)")
    parser.add_argument("--kernel-mlp-group", help="a larger group for the implicit kernels' G-MLP (train_modelnet.py --kernel-mlp-group; e.g. o3)")
    parser.add_argument("--kernel-form", choices=("mlp", "factorized"), default="mlp", help="the implicit kernels' network (train_modelnet.py --kernel-form)")
    parser.add_argument("--jobs", type=int, default=1, help="runs trained at the same time, in separate processes")
    parser.add_argument("--report-only", action="store_true", help="train nothing: the table of the runs that have finished")
    parser.add_argument("--out-dir", help="default: runs/modelnet_sweep/<preset>")
    parser.add_argument("--data-root", default=os.environ.get("PYG_IMPLICIT_MODELNET_ROOT", "data_cache/modelnet"))
    args = parser.parse_args()
    preset = PRESETS[args.preset]
    seeds, epochs = args.seeds or preset["seeds"], args.epochs or preset["epochs"]
    out_dir = args.out_dir or os.path.join("runs", "modelnet_sweep", args.preset)
    os.makedirs(out_dir, exist_ok=True)
    common = ["--points", str(preset["points"]), "--levels", *map(str, preset["levels"]), "--k", str(preset["k"]),
              "--epochs", str(epochs), "--lr", str(preset["lr"]), "--lr-step", str(preset["lr_step"]), "--budget", str(args.budget),
              "--source", args.source, "--data-root", args.data_root, "--no-progress"]  # fmt: skip
    for split in ("train", "test"):  # read and cached once here, not by several processes at the same time
        ModelNetPoints(args.data_root, split, args.source)

    # seeds outermost: a partial sweep still compares all models
    cells = [(seed, group, kernel) for seed in seeds for group in args.groups for kernel in args.kernels]
    if args.report_only:
        cells = [c for c in cells if os.path.exists(os.path.join(out_dir, f"{c[2]}-{c[1]}_s{c[0]}", "metrics.json"))]
    implicit_only = (["--kernel-mlp-group", args.kernel_mlp_group] if args.kernel_mlp_group else []) + ["--kernel-form", args.kernel_form]
    jobs = [(os.path.join(out_dir, f"{kernel}-{group}_s{seed}"),
             common + ["--group", group, "--kernel", kernel, "--seed", str(seed)] + (implicit_only if kernel == "implicit" else []))
            for seed, group, kernel in cells]  # fmt: skip
    results = {}
    for (seed, group, kernel), metrics in zip(cells, run_many(jobs, train, args.jobs)):
        extra = metrics["config"]["extra"]
        results.setdefault(group, {}).setdefault(kernel, []).append(
            {"seed": seed, "test_accuracy": metrics["test_accuracy"], "test_loss": metrics["test_loss"], "parameters": metrics["parameters"],
             "rotated_test_accuracy": metrics["rotated_test_accuracy"],
             "width": extra["width"], "readout": extra["readout"], "seconds": metrics["train_seconds"]}  # fmt: skip
        )
        print(f"{kernel:>9} {group:>8} seed={seed} test accuracy {metrics['test_accuracy']:.3f} "
              f"({metrics['parameters']} params, width {extra['width']}, {metrics['train_seconds']:.0f} s)", flush=True)  # fmt: skip

    lines = [
        f"ModelNet-40 test accuracy (%), mean ± std over the seeds (of {seeds}) that finished, on the test set as given and under random rotations (SO(3)); "
        f"`python examples/modelnet_sweep.py --preset {args.preset}`: {preset['points']} points, levels {preset['levels']}, "
        f"k = {preset['k']}, {epochs} epochs, batch 32, AdamW lr {preset['lr']:g} halved every {preset['lr_step']} epochs, "
        f"training rotations by the model's group, best-on-validation checkpoint (20% of the training shapes held out); "
        f"parameter budget {args.budget} (width w: hidden w x (0e + 1o + 2e))"
        f"{f'; the G-MLPs of the implicit kernels equivariant to {args.kernel_mlp_group}' if args.kernel_mlp_group else ''}"
        f"{'; the implicit kernels factorised (--kernel-form factorized)' if args.kernel_form != 'mlp' else ''}. Test loss: label-smoothed cross-entropy (chance: ln 40 = 3.689).",
        "",
        "| group | implicit | standard | implicit, rotated | standard, rotated | test loss (impl./std.) | width (impl./std.) | params (impl./std.) | seeds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for group, runs in results.items():
        widths = "/".join(str(runs[k][0]["width"]) if k in runs else "-" for k in ("implicit", "standard"))
        params = "/".join(str(runs[k][0]["parameters"]) if k in runs else "-" for k in ("implicit", "standard"))
        losses = "/".join(cell(runs, k, lambda r: r["test_loss"], 1, 2) for k in ("implicit", "standard"))
        given = [cell(runs, k, lambda r: r["test_accuracy"], 100, 1) for k in ("implicit", "standard")]
        rotated = [cell(runs, k, lambda r: r["rotated_test_accuracy"]["so3"], 100, 1) for k in ("implicit", "standard")]
        counts = "/".join(str(len(runs.get(k, []))) for k in ("implicit", "standard"))
        lines.append(f"| {group} | {' | '.join(given)} | {' | '.join(rotated)} | {losses} | {widths} | {params} | {counts} |")
    table = "\n".join(lines)
    print(table)
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write(table + "\n")
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump({"args": vars(args), "preset": preset, "seeds": seeds, "epochs": epochs, "results": results}, f, indent=1)
    plot(results, args.kernels, os.path.join(out_dir, "results.png"))


def cell(runs: dict, kernel: str, value, scale: float, digits: int) -> str:
    """``mean ± std`` of ``value(run)`` over the seeds of one kernel, the value alone for one seed, or ``-``."""
    if kernel not in runs:
        return "-"
    values = scale * np.array([value(r) for r in runs[kernel]])
    return f"{values.mean():.{digits}f} ± {values.std():.{digits}f}" if len(values) > 1 else f"{values[0]:.{digits}f}"


def plot(results: dict, kernels: list, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(results)
    fig, ax = plt.subplots(figsize=(8, 3.4))
    width = 0.8 / len(kernels)
    for i, kernel in enumerate(kernels):
        acc = [100 * np.array([r["test_accuracy"] for r in results[g].get(kernel, [])]) for g in groups]
        x = np.arange(len(groups)) + (i - (len(kernels) - 1) / 2) * width
        ax.bar(x, [a.mean() if len(a) else 0 for a in acc], width, yerr=[a.std() if len(a) else 0 for a in acc], capsize=3, label=kernel)
    ax.set_xticks(range(len(groups)), groups)
    ax.set_ylabel("test accuracy (%)")
    ax.legend()
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
