"""Time of one training step of the example models, per device: what a budget in epochs costs.

One optimizer step (forward, backward, AdamW) on a fixed batch, the mean over ``--steps``
steps after three warm-up steps, the device synchronised around the timed loop; the CPU on one
thread (as ``nbody_sweep.py --jobs N`` runs each process):

* N-body (``examples/train_nbody.py``): the five models of the sweep at its parameter budget,
  batch 128 systems of 5 particles (3,000 training systems: 24 steps an epoch);
* ModelNet (``examples/train_modelnet.py``, defaults: width 8, 1,024 points, levels 1024 ... 32,
  k = 16, estimated normal axes): batch 32 real shapes, plus the CPU time of the per-shape
  transforms (sampling, rotation, normal axes, kNN levels) that the DataLoader workers do, for
  7,874 training shapes an epoch (the whole ModelNet-40's training split less its validation fifth).

    python benchmarks/train_step.py                                # CPU, N-body only (ModelNet on one CPU thread: ~17 s a step)
    python benchmarks/train_step.py --devices cpu cuda --tasks nbody modelnet --output BENCHMARKS_training.md
    python benchmarks/train_step.py --rows rows.json --output BENCHMARKS_training.md   # render rows measured elsewhere

Needs the N-body data (generated on first use under ``--data-root``) and, for ModelNet, the whole
ModelNet-40 archive (``../shared/data/modelnet40``) or ``--modelnet-npz`` with ``points`` (S, P, 3)
and ``labels`` (S,) arrays.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import date

import numpy as np
import torch
import torch.nn.functional as F

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPOSITORY, "examples"))

NBODY_MODELS = ["ik-so2", "ik-cone", "ik-o3", "segnn", "mpnn"]
NBODY_STEPS_PER_EPOCH = 24  # 3,000 systems, batch 128
MODELNET_MODELS = [("so2", "implicit"), ("so2", "standard"), ("c4", "implicit")]
MODELNET_TRAIN_SHAPES = 7874  # 9,843 less the validation fifth


def step_seconds(build, batch, loss_fn, device: str, steps: int) -> float:
    """Mean seconds of one optimizer step of ``build()`` on ``batch`` after three warm-up steps."""
    torch.manual_seed(0)
    model, batch = build().to(device), batch.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), 1e-3)
    model.train()

    def step():
        loss, _ = loss_fn(model, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    for _ in range(3):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def nbody_rows(devices, data_root: str, steps: int):
    from torch_geometric.loader import DataLoader
    from nbody_sweep import BUDGET, split_spec
    from train_nbody import mse, nbody_model

    from pyg_implicit.datasets import NBodyConstrained
    from pyg_implicit.models import match_budget

    batch = next(iter(DataLoader(NBodyConstrained(data_root, 100.0, "train", 3000), batch_size=128)))
    for spec in NBODY_MODELS:
        name, group = split_spec(spec)
        _, width = match_budget(lambda w: nbody_model(name, w, group), BUDGET)
        for device in devices:
            seconds = step_seconds(lambda: nbody_model(name, width, group), batch, mse, device, steps)
            yield {"task": "nbody", "model": spec, "device": device, "step_s": seconds,
                   "epoch_s": seconds * NBODY_STEPS_PER_EPOCH}  # fmt: skip


def modelnet_rows(devices, npz: str, steps: int):
    from torch_geometric.data import Batch, Data
    import train_modelnet

    with np.load(npz) as archive:
        keys = ("points", "labels") if "points" in archive.files else ("train_points", "train_labels")
        points, labels = archive[keys[0]][:32], archive[keys[1]][:32]

    def loss_fn(model, batch):
        return F.cross_entropy(model(batch), batch.y, label_smoothing=0.1), batch.num_graphs

    for group, kernel in MODELNET_MODELS:
        args = train_modelnet.parse_args(["--group", group, "--kernel", kernel, "--input", "normal_axis"])
        transform = train_modelnet.shape_transform(args, group)
        start = time.perf_counter()
        shapes = [transform(Data(pos=torch.from_numpy(p), y=torch.tensor([int(y)]))) for p, y in zip(points, labels)]
        transform_s = (time.perf_counter() - start) / len(shapes)
        batch = Batch.from_data_list(shapes)
        for device in devices:
            seconds = step_seconds(lambda: train_modelnet.build_model(args.width, args.readout, args), batch, loss_fn, device, steps)
            yield {"task": "modelnet", "model": f"{kernel}-{group}", "device": device, "step_s": seconds,
                   "epoch_s": seconds * MODELNET_TRAIN_SHAPES / 32, "transform_s_per_shape": transform_s}  # fmt: skip


def render(rows, command: str, hardware: str, torch_version: str, note: str = "") -> str:
    lines = ["## Training step time of the example models", "",
             f"Command: `{command}` ({date.today()}, {hardware}, torch {torch_version}){note}. One AdamW step on a fixed batch, "
             "mean over the timed steps after three warm-ups; CPU on one thread. An epoch: "
             f"{NBODY_STEPS_PER_EPOCH} steps for N-body (3,000 systems, batch 128), "
             f"{MODELNET_TRAIN_SHAPES / 32:.0f} for ModelNet ({MODELNET_TRAIN_SHAPES} shapes, batch 32). "
             "`transforms`: one CPU core's time for the per-shape sampling, rotation, normal axes and kNN levels of an epoch, "
             "which DataLoader workers share.", "",
             "| task | model | device | step ms | epoch s | 200 epochs | transforms, 1 core, s / epoch |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        total = r["epoch_s"] * 200
        total_text = f"{total / 60:.1f} min" if total < 3 * 3600 else f"{total / 3600:.1f} h"
        transforms = f"{r['transform_s_per_shape'] * MODELNET_TRAIN_SHAPES:.0f}" if "transform_s_per_shape" in r else "-"
        lines.append(f"| {r['task']} | {r['model']} | {r['device']} | {r['step_s'] * 1000:.1f} | {r['epoch_s']:.1f} | {total_text} | {transforms} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", nargs="+", default=["cpu"])
    parser.add_argument("--tasks", nargs="+", choices=["nbody", "modelnet"], default=["nbody"])
    parser.add_argument("--steps", type=int, default=20, help="timed steps of each N-body model (ModelNet: a quarter, at least 2)")
    parser.add_argument("--data-root", default=os.environ.get("PYG_IMPLICIT_DATA", "data_cache/nbody"))
    parser.add_argument("--modelnet-npz", help="default: the whole ModelNet-40 archive of the shared data")
    parser.add_argument("--rows", help="render the rows of this JSON file (written by --json elsewhere, a note added) instead of measuring")
    parser.add_argument("--json", help="also write the measured rows to this JSON file")
    parser.add_argument("--output", default="-", help="Markdown file to write, or - for none")
    args = parser.parse_args()
    if "cuda" in args.devices and not torch.cuda.is_available():
        raise SystemExit("--devices: cuda asked for, but torch sees no CUDA device")
    torch.set_num_threads(1)
    if args.rows:
        with open(args.rows) as f:
            payload = json.load(f)
        rows, command, hardware, torch_version, note = (payload[k] for k in ("rows", "command", "hardware", "torch", "note"))
    else:
        rows = []
        if "nbody" in args.tasks:
            for row in nbody_rows(args.devices, args.data_root, args.steps):
                print(row, flush=True)
                rows.append(row)
        if "modelnet" in args.tasks:
            from pyg_implicit.datasets.modelnet import default_full_npz

            for row in modelnet_rows(args.devices, args.modelnet_npz or default_full_npz(), max(2, args.steps // 4)):
                print(row, flush=True)
                rows.append(row)
        command, torch_version, note = "python benchmarks/train_step.py " + " ".join(sys.argv[1:]), torch.__version__, ""
        hardware = ", ".join([f"{platform.machine()} CPU"] + ([torch.cuda.get_device_name()] if "cuda" in args.devices else []))
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"rows": rows, "command": command, "hardware": hardware, "torch": torch_version, "note": note}, f, indent=1)
    table = render(rows, command, hardware, torch_version, note)
    print(table)
    if args.output != "-":
        with open(args.output, "w") as f:
            f.write("# Benchmarks: training steps\n\n" + table)
        print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
