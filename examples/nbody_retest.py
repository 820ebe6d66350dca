"""Re-test the best checkpoints of an N-body sweep on a larger test set, with the error's tail.

    python examples/nbody_sweep.py --models ik-so2 mpnn --seeds 0 1 2 --out-dir runs/nbody_warmup
    python examples/nbody_retest.py runs/nbody_warmup                     # 4,096 test systems per stiffness
    python examples/nbody_retest.py runs/nbody_warmup --test-size 16384

The paper's test set has 128 systems. The per-system error is heavy-tailed (a few systems whose
string is stretched to the edge of the training range hold most of a model's mean), so 128 systems
can rank two models either way. This script rebuilds every run of the sweep directory (the model
and width its metrics.json records, the weights of its best.pt), evaluates it on ``--test-size``
systems drawn from the test stream of the same stiffness and protocol (spring indicator or not),
and reports per model and stiffness, as mean ± std over seeds: the mean test MSE, its median over
systems, the 99th percentile, and the share of the error held by the 1% worst systems. Writes
<sweep-dir>/retest_<size>.json and .md.
"""
import argparse
import glob
import json
import os
import sys

import numpy as np
import torch
from torch_geometric.loader import DataLoader

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nbody_sweep import ALL_MODELS, LABELS, split_spec  # noqa: E402
from train_nbody import nbody_model  # noqa: E402

from pyg_implicit.datasets import NBodyConstrained  # noqa: E402

STATISTICS = {  # name -> (column title, function of the per-system errors)
    "mean": ("mean MSE", np.mean),
    "median": ("median", np.median),
    "q99": ("99th percentile", lambda e: np.quantile(e, 0.99)),
    "worst_1pct_share": ("share of the 1% worst", lambda e: np.sort(e)[::-1][: max(1, len(e) // 100)].sum() / e.sum()),
}


def per_system_mse(model: torch.nn.Module, dataset: NBodyConstrained, batch_size: int = 512) -> np.ndarray:
    """Mean squared position error of each system of ``dataset`` (over its particles and coordinates)."""
    model.eval()
    errors = []
    with torch.no_grad():
        for batch in DataLoader(dataset, batch_size=batch_size):
            squared = (model(batch) - batch.y).pow(2).mean(-1)  # [particles]
            errors.append(torch.zeros(batch.num_graphs).index_reduce_(0, batch.batch, squared, "mean", include_self=False))
    return torch.cat(errors).numpy()


def load_run(run_dir: str) -> tuple[torch.nn.Module, dict]:
    """The model of a finished ``train_nbody.py`` run with its best-on-validation weights, and its config."""
    config = json.load(open(os.path.join(run_dir, "metrics.json")))["config"]
    extra = config["extra"]
    name, group = split_spec(extra["model"])
    model = nbody_model(name, extra["width"], group, extra["springs"], extra["path_weights"], extra["update_layers"],
                        extra.get("num_basis", 0), extra.get("kernel_mlp_layers", 3),
                        extra.get("kernel_mlp_group"), extra.get("kernel_form", "mlp"), extra.get("shell", True),
                        extra.get("polynomial_norm", "batch"))  # defaults: runs made before the options
    model.load_state_dict(torch.load(os.path.join(run_dir, "best.pt"), map_location="cpu", weights_only=True))
    return model, config


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", help="an nbody_sweep.py --out-dir (one sub-directory per finished run)")
    parser.add_argument("--test-size", type=int, default=4096, help="test systems per stiffness")
    parser.add_argument("--data-root", default=os.environ.get("PYG_IMPLICIT_DATA", "data_cache/nbody"))
    args = parser.parse_args(argv)
    if args.test_size < 100:
        raise SystemExit(f"--test-size: expected at least 100 systems (the 1% tail needs one), got {args.test_size}")
    run_dirs = sorted(os.path.dirname(p) for p in glob.glob(os.path.join(args.sweep_dir, "*", "best.pt")))
    run_dirs = [d for d in run_dirs if os.path.exists(os.path.join(d, "metrics.json"))]
    if not run_dirs:
        raise SystemExit(f"sweep_dir: no finished runs (best.pt and metrics.json) under {args.sweep_dir!r}")

    results, test_sets = {}, {}
    for run_dir in run_dirs:
        model, config = load_run(run_dir)
        extra = config["extra"]
        key = (extra["stiffness"], extra["springs"])
        if key not in test_sets:
            test_sets[key] = NBodyConstrained(args.data_root, extra["stiffness"], "test", args.test_size, springs=extra["springs"])
        errors = per_system_mse(model, test_sets[key])
        stats = {name: float(fn(errors)) for name, (_, fn) in STATISTICS.items()}
        results.setdefault(extra["model"], {}).setdefault(f"{extra['stiffness']:g}", []).append({"seed": config["seed"], **stats})
        print(f"{extra['model']:>8} k={extra['stiffness']:<6g} seed={config['seed']} "
              + " ".join(f"{name} {value:.3g}" for name, value in stats.items()), flush=True)  # fmt: skip

    stiffness = sorted({k for cells in results.values() for k in cells}, key=float)
    lines = [f"Best-on-validation checkpoints of `{args.sweep_dir}` on {args.test_size} test systems per stiffness "
             f"(`python examples/nbody_retest.py {args.sweep_dir} --test-size {args.test_size}`); per-system MSE, mean ± std over seeds.", ""]  # fmt: skip
    for name, (title, _) in STATISTICS.items():
        lines += [f"{title}:", "", "| model | " + " | ".join(f"k={k}" for k in stiffness) + " |", "|---|" + "---|" * len(stiffness)]
        for model in sorted(results, key=lambda m: ALL_MODELS.index(m) if m in ALL_MODELS else len(ALL_MODELS)):
            cells = []
            for k in stiffness:
                values = np.array([r[name] for r in results[model].get(k, [])])
                cells.append("" if not len(values) else f"{values.mean():.3g}" + (f" ± {values.std():.2g}" if len(values) > 1 else ""))
            lines.append(f"| {LABELS.get(model, model)} | " + " | ".join(cells) + " |")
        lines.append("")
    table = "\n".join(lines)
    print(table)
    stem = os.path.join(args.sweep_dir, f"retest_{args.test_size}")
    with open(stem + ".md", "w") as f:
        f.write(table)
    with open(stem + ".json", "w") as f:
        json.dump({"test_size": args.test_size, "results": results}, f, indent=1)
    return results


if __name__ == "__main__":
    main()
