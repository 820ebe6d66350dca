"""Rotated MNIST: plain CNN, G-CNNs, plain CNN + equivariance loss and implicit-kernel steerable CNNs
at one parameter budget (that of the Z2CNN), test error over seeds, next to the G-CNN paper.

    python examples/images_benchmark.py                         # all models, 3 seeds, 10 epochs
    python examples/images_benchmark.py --epochs 5 --seeds 0 1  # a shorter CPU budget

Each run is examples/train_images.py (metrics.json reused when present, an interrupted run
resumes from its last.pt). Writes <out-dir>/results.json and results.md.
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_images import main as train  # noqa: E402

from pyg_implicit.training import run_once  # noqa: E402

MODELS = {  # label: train_images.py flags
    "Z2CNN": ["--model", "z2cnn"],
    "P4CNN": ["--model", "p4cnn"],
    "P4MCNN": ["--model", "p4mcnn"],
    "Z2CNN + IEN loss": ["--model", "z2cnn-ien"],
    "implicit-kernel CNN, C4": ["--model", "ik", "--group", "c4"],
    "implicit-kernel CNN, D4": ["--model", "ik", "--group", "d4"],
    "implicit-kernel CNN, SO(2)": ["--model", "ik", "--group", "so2"],
}
PAPER = {"Z2CNN": "5.03", "P4CNN": "2.28"}  # Cohen & Welling (2016), Table 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS), metavar="MODEL", help=f"a subset of {list(MODELS)}")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lr-step", type=int, default=4)
    parser.add_argument("--out-dir", default="runs/images_benchmark")
    parser.add_argument("--data-root", default=os.environ.get("PYG_IMPLICIT_MNIST_ROOT", "data_cache/rotated_mnist"))
    args = parser.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    results = {}
    for seed in args.seeds:  # seeds outermost: a partial benchmark still compares all models
        for label in args.models:
            run_dir = os.path.join(args.out_dir, f"{'_'.join(MODELS[label][1::2])}_s{seed}")
            metrics = run_once(run_dir, train, MODELS[label] + ["--epochs", str(args.epochs), "--lr-step", str(args.lr_step),
                                                                "--seed", str(seed), "--data-root", args.data_root, "--no-progress"])  # fmt: skip
            results.setdefault(label, []).append({"seed": seed, "test_error": metrics["test_error"], "parameters": metrics["parameters"],
                                                  "seconds": metrics["train_seconds"]})  # fmt: skip
            print(f"{label:>28} seed={seed} test error {100 * metrics['test_error']:.2f}% ({metrics['parameters']} params, "
                  f"{metrics['train_seconds']:.0f} s)", flush=True)  # fmt: skip

    lines = [
        f"Rotated MNIST test error (%), mean ± std over seeds {args.seeds}: 10,000 training / 2,000 validation / 48,000 test "
        f"digits, {args.epochs} epochs, batch 128, AdamW lr 1e-3 halved every {args.lr_step} epochs, best-on-validation "
        f"checkpoint (`python examples/images_benchmark.py --epochs {args.epochs} --seeds {' '.join(map(str, args.seeds))}`).",
        "",
        "| model | params | test error (%) | G-CNN paper (%) | seconds / run |",
        "|---|---|---|---|---|",
    ]
    for label, runs in results.items():
        err = 100 * np.array([r["test_error"] for r in runs])
        lines.append(f"| {label} | {runs[0]['parameters']} | {err.mean():.2f} ± {err.std():.2f} | {PAPER.get(label, '')} | "
                     f"{np.mean([r['seconds'] for r in runs]):.0f} |")  # fmt: skip
    table = "\n".join(lines)
    print(table)
    with open(os.path.join(args.out_dir, "results.md"), "w") as f:
        f.write(table + "\n")
    with open(os.path.join(args.out_dir, "results.json"), "w") as f:
        json.dump({"args": vars(args), "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
