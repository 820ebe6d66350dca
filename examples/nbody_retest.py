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
systems, the 99th percentile, and the share of the error held by the 1% worst systems; for k > 0 also the
z-error per particle grouped by its string's oscillation amplitude (:func:`string_amplitude`), which
separates the linear regime, the clipped one and extrapolation beyond the training amplitudes.
Writes <sweep-dir>/retest_<size>.json and .md.
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

# Edges of the amplitude groups, in units of the clipping length (string force |k (z - l)| > 100).
AMPLITUDE_EDGES = (0.0, 1.0, 1.5, 1.9, 2.2, 2.5, float("inf"))


def string_amplitude(data, stiffness: float) -> torch.Tensor:
    r"""Each particle's amplitude on its string, in units of the clipping length ``[particles]``.

    .. math::
        a_i = \sqrt{(z_i - l_i)^2 + (\dot z_i / \omega)^2}\, /\, c, \qquad \omega = \sqrt{k}, \quad c = 100 / k

    the amplitude of the free string oscillation through the particle's state (the springs
    neglected). The string force is clipped where :math:`|z - l| > c`: particles with
    :math:`a \le 1` move in the linear regime over the whole prediction horizon, the others reach
    the clipped one.
    """
    if stiffness <= 0:
        raise ValueError(f"stiffness: expected k > 0 (no string force at k = 0), got {stiffness}")
    offset, velocity = data.pos[:, 2] - data.length[:, 0], data.vel[:, 2]
    return (offset.pow(2) + velocity.pow(2) / stiffness).sqrt() * (stiffness / 100.0)


def z_error_by_amplitude(
    model: torch.nn.Module, dataset: NBodyConstrained, stiffness: float, batch_size: int = 512
) -> tuple[list[float], list[int]]:
    """Mean squared z-error of the particles in each :data:`AMPLITUDE_EDGES` group, and their counts."""
    model.eval()
    amplitude, squared = [], []
    with torch.no_grad():
        for batch in DataLoader(dataset, batch_size=batch_size):
            squared.append((model(batch) - batch.y)[:, 2].pow(2))
            amplitude.append(string_amplitude(batch, stiffness))
    amplitude, squared = torch.cat(amplitude), torch.cat(squared)
    group = torch.bucketize(amplitude, torch.tensor(AMPLITUDE_EDGES[1:-1], dtype=amplitude.dtype), right=True)
    counts = torch.bincount(group, minlength=len(AMPLITUDE_EDGES) - 1)
    sums = torch.zeros(len(counts), dtype=squared.dtype).index_add_(0, group, squared)
    return (sums / counts.clamp_min(1)).tolist(), counts.tolist()


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
                        extra.get("polynomial_norm", "batch"), extra.get("activation", "gate"))  # defaults: runs made before the options
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

    results, test_sets, counts = {}, {}, {}
    for run_dir in run_dirs:
        model, config = load_run(run_dir)
        extra = config["extra"]
        key = (extra["stiffness"], extra["springs"])
        if key not in test_sets:
            test_sets[key] = NBodyConstrained(args.data_root, extra["stiffness"], "test", args.test_size, springs=extra["springs"])
        errors = per_system_mse(model, test_sets[key])
        stats = {name: float(fn(errors)) for name, (_, fn) in STATISTICS.items()}
        if extra["stiffness"] > 0:
            stats["z_mse_by_amplitude"], counts[key] = z_error_by_amplitude(model, test_sets[key], extra["stiffness"])
        results.setdefault(extra["model"], {}).setdefault(f"{extra['stiffness']:g}", []).append({"seed": config["seed"], **stats})
        print(f"{extra['model']:>8} k={extra['stiffness']:<6g} seed={config['seed']} "
              + " ".join(f"{name} {stats[name]:.3g}" for name in STATISTICS), flush=True)  # fmt: skip

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
    groups = [f"{lo:g}-{hi:g}" if hi < float("inf") else f">{lo:g}" for lo, hi in zip(AMPLITUDE_EDGES[:-1], AMPLITUDE_EDGES[1:])]
    for (k, springs), n in sorted(counts.items()):
        lines += [f"z-error per particle by string amplitude (in clipping lengths; `string_amplitude`), k={k:g}, "
                  f"particles per group {' / '.join(map(str, n))}:", "",
                  "| model | " + " | ".join(groups) + " |", "|---|" + "---|" * len(groups)]  # fmt: skip
        for model in sorted(results, key=lambda m: ALL_MODELS.index(m) if m in ALL_MODELS else len(ALL_MODELS)):
            runs = [r["z_mse_by_amplitude"] for r in results[model].get(f"{k:g}", []) if "z_mse_by_amplitude" in r]
            if runs:
                lines.append(f"| {LABELS.get(model, model)} | " + " | ".join(f"{v:.2g}" for v in np.mean(runs, axis=0)) + " |")
        lines.append("")
    table = "\n".join(lines)
    print(table)
    stem = os.path.join(args.sweep_dir, f"retest_{args.test_size}")
    with open(stem + ".md", "w") as f:
        f.write(table)
    with open(stem + ".json", "w") as f:
        json.dump({"test_size": args.test_size, "amplitude_edges": AMPLITUDE_EDGES[:-1], "results": results}, f, indent=1)
    return results


if __name__ == "__main__":
    main()
