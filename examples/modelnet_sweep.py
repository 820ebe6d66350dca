"""The subgroup sweep of paper Fig. 3 on ModelNet-40: one classifier built for many subgroups of
O(3), implicit against standard kernels, every model at one parameter budget.

    python examples/modelnet_sweep.py                      # CPU preset, on the data train_modelnet.py picks (the whole
                                                           # ModelNet-40 when shared; --source resampled: the 156-shape subset)
    python examples/modelnet_sweep.py --preset paper       # 1024 points, 200 epochs (GPU, full data in <data-root>/raw)

Each run is examples/train_modelnet.py (its metrics.json is reused when present, an interrupted
run resumes from its last.pt). Writes <out-dir>/results.json, results.md (test accuracy, mean +-
std over seeds) and results.png (bar plot).
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_modelnet import main as train  # noqa: E402

from pyg_implicit.training import run_once  # noqa: E402

GROUPS = ["so2", "o2", "cone", "cyl", "fullcyl", "inv", "so3", "o3", "c4", "d4", "o", "oh"]
PRESETS = {
    "cpu": dict(points=128, levels=[128, 64, 32, 16, 8, 4], k=8, epochs=30, lr_step=10, seeds=[0, 1, 2]),
    "paper": dict(points=1024, levels=[1024, 512, 256, 128, 64, 32], k=16, epochs=200, lr_step=25, seeds=[0, 1, 2]),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    parser.add_argument("--groups", nargs="+", default=GROUPS)
    parser.add_argument("--kernels", nargs="+", choices=["implicit", "standard"], default=["implicit", "standard"])
    parser.add_argument("--seeds", type=int, nargs="+")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--budget", type=int, default=60000, help="parameters of every model (width and readout matched)")
    parser.add_argument("--out-dir", help="default: runs/modelnet_sweep/<preset>")
    parser.add_argument("--data-root", default=os.environ.get("PYG_IMPLICIT_MODELNET_ROOT", "data_cache/modelnet"))
    args = parser.parse_args()
    preset = PRESETS[args.preset]
    seeds, epochs = args.seeds or preset["seeds"], args.epochs or preset["epochs"]
    out_dir = args.out_dir or os.path.join("runs", "modelnet_sweep", args.preset)
    os.makedirs(out_dir, exist_ok=True)
    common = ["--points", str(preset["points"]), "--levels", *map(str, preset["levels"]), "--k", str(preset["k"]),
              "--epochs", str(epochs), "--lr-step", str(preset["lr_step"]), "--budget", str(args.budget),
              "--data-root", args.data_root, "--no-progress"]  # fmt: skip

    results = {}
    for seed in seeds:  # seeds outermost: a partial sweep still compares all models
        for group in args.groups:
            for kernel in args.kernels:
                run_dir = os.path.join(out_dir, f"{kernel}-{group}_s{seed}")
                metrics = run_once(run_dir, train, common + ["--group", group, "--kernel", kernel, "--seed", str(seed)])
                extra = metrics["config"]["extra"]
                results.setdefault(group, {}).setdefault(kernel, []).append(
                    {"seed": seed, "test_accuracy": metrics["test_accuracy"], "test_loss": metrics["test_loss"], "parameters": metrics["parameters"],
                     "width": extra["width"], "readout": extra["readout"], "seconds": metrics["train_seconds"]}  # fmt: skip
                )
                print(f"{kernel:>9} {group:>8} seed={seed} test accuracy {metrics['test_accuracy']:.3f} "
                      f"({metrics['parameters']} params, width {extra['width']}, {metrics['train_seconds']:.0f} s)", flush=True)  # fmt: skip

    lines = [
        f"ModelNet-40 test accuracy (%) and test loss (label-smoothed cross-entropy; chance: ln 40 = 3.689), mean ± std over seeds {seeds}; `python examples/modelnet_sweep.py --preset {args.preset}`: "
        f"{preset['points']} points, levels {preset['levels']}, k = {preset['k']}, {epochs} epochs, batch 32, AdamW lr 1e-3 halved "
        f"every {preset['lr_step']} epochs, training rotations about z, best-on-validation checkpoint (10% of the training "
        f"shapes held out); parameter budget {args.budget} (width w: hidden w x (0e + 1o + 2e)).",
        "",
        "| group | accuracy implicit | accuracy standard | test loss implicit | test loss standard | width (impl./std.) | params (impl./std.) |",
        "|---|---|---|---|---|---|---|",
    ]
    for group, runs in results.items():
        widths = "/".join(str(runs[k][0]["width"]) if k in runs else "-" for k in ("implicit", "standard"))
        params = "/".join(str(runs[k][0]["parameters"]) if k in runs else "-" for k in ("implicit", "standard"))
        lines.append(f"| {group} | {cell(runs, 'implicit', 'test_accuracy', 100, 1)} | {cell(runs, 'standard', 'test_accuracy', 100, 1)} | "
                     f"{cell(runs, 'implicit', 'test_loss', 1, 3)} | {cell(runs, 'standard', 'test_loss', 1, 3)} | {widths} | {params} |")
    table = "\n".join(lines)
    print(table)
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write(table + "\n")
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump({"args": vars(args), "preset": preset, "seeds": seeds, "epochs": epochs, "results": results}, f, indent=1)
    plot(results, args.kernels, os.path.join(out_dir, "results.png"))


def cell(runs: dict, kernel: str, key: str, scale: float, digits: int) -> str:
    """``mean ± std`` of ``key`` over the seeds of one kernel, or ``-``."""
    if kernel not in runs:
        return "-"
    values = scale * np.array([r[key] for r in runs[kernel]])
    return f"{values.mean():.{digits}f} ± {values.std():.{digits}f}"


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
