"""Forward+backward time and peak memory of one steerable point convolution, per group.

Compared in one run, on the same random graph and fields:

* ``tfn``: the e3nn tensor-field-network layer (per-edge tensor-product weights from a radial MLP,
  spherical harmonics up to l = 2), O(3) only: the reference every group's row is compared with;
* ``implicit`` / ``standard``: ``ImplicitConv`` / ``StandardConv`` of this checkout for the row's group;
* ``materialised``: the same ImplicitConv forming the ``[E, d_out, d_in]`` kernel per edge
  (``kernel.materialize``) and multiplying (up to ``--materialised-max-edges``);
* ``implicit@REF`` with ``--baseline REF``: ImplicitConv of git revision REF (exported to a
  temporary folder), so a change is measured against the code before it in the same run;
* ``escnn`` with ``--escnn-python``: escnn's ``R3PointConv`` (o3 and so2 only).

Every configuration runs in its own subprocess, so its peak memory is its own: on the CPU the
growth of the peak resident set over the passes (``ru_maxrss``), on CUDA
``torch.cuda.max_memory_allocated`` minus the memory held before them. A configuration over
``--memory-limit-gb`` of address space is reported as out of memory.

    python benchmarks/conv.py                                   # writes BENCHMARKS.md
    python benchmarks/conv.py --baseline 3b4ccf4 --groups so2 --edges 20000 --output -
    python benchmarks/conv.py --device cuda --edges 20000 200000 --groups o3 so2 c4 --output BENCHMARKS_cuda.md
    python benchmarks/conv.py --escnn-python /path/to/venv/bin/python   # adds escnn's R3PointConv

escnn (the paper's reference library) pulls numpy < 2 and needs gfortran, so it lives in its own
virtual environment: ``apt-get install gfortran; python -m venv escnn_env;
escnn_env/bin/pip install torch==2.13.0 escnn torch-geometric``. Its worker runs under that
interpreter and imports nothing from this package.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def build_escnn(irreps: str, group: str, nodes: int, pos, edge_index, device):
    """escnn's R3PointConv on the same fields: ``Nx0e+Nx1o+Nx2e`` of O(3), or its restriction to SO(2)."""
    import torch
    from escnn import gspaces, nn

    mul = int(irreps.split("x")[0])
    if irreps != f"{mul}x0e+{mul}x1o+{mul}x2e" or group not in ("o3", "so2"):
        raise ValueError("the escnn comparison supports irreps 'Nx0e+Nx1o+Nx2e' and groups o3, so2")
    if group == "o3":
        gspace = gspaces.flipRot3dOnR3()
        G = gspace.fibergroup
        reps = [G.irrep(0, 0)] * mul + [G.irrep(1, 1)] * mul + [G.irrep(0, 2)] * mul
    else:  # restricted to SO(2): 0e -> 0; 1o -> 0 + 1; 2e -> 0 + 1 + 2
        gspace = gspaces.rot2dOnR3()
        G = gspace.fibergroup
        reps = [G.irrep(0)] * (3 * mul) + [G.irrep(1)] * (2 * mul) + [G.irrep(2)] * mul
    field = nn.FieldType(gspace, reps)
    conv = nn.R3PointConv(field, field, width=2.0, n_rings=3, frequencies_cutoff=2.0).to(device)
    x = torch.randn(nodes, field.size, device=device, requires_grad=True)
    return conv, lambda: conv(nn.GeometricTensor(x, field, coords=pos), edge_index).tensor


def build_tfn(irreps: str, nodes: int, pos, edge_index, device):
    """The e3nn tensor-field-network convolution: per-edge weights of a fully connected tensor product
    of the features with the spherical harmonics (l <= 2), from an MLP of a Gaussian embedding of the distance."""
    import torch
    from e3nn import o3
    from e3nn.math import soft_one_hot_linspace
    from e3nn.nn import FullyConnectedNet

    irreps, sh = o3.Irreps(irreps), o3.Irreps.spherical_harmonics(2)
    tp = o3.FullyConnectedTensorProduct(irreps, sh, irreps, shared_weights=False)
    radial = FullyConnectedNet([10, 64, tp.weight_numel], torch.nn.functional.silu)
    conv = torch.nn.ModuleDict({"tp": tp, "radial": radial}).to(device)
    x = torch.randn(nodes, irreps.dim, device=device, requires_grad=True)
    src, dst = edge_index

    def output():
        vec = pos[src] - pos[dst]
        weights = radial(soft_one_hot_linspace(vec.norm(dim=1), 0.0, 2.0, 10, basis="gaussian", cutoff=False))
        messages = tp(x[src], o3.spherical_harmonics(sh, vec, normalize=True, normalization="component"), weights)
        return torch.zeros(nodes, irreps.dim, device=device).index_add(0, dst, messages)

    return conv, output


def build(method: str, irreps: str, group: str, nodes: int, pos, edge_index, device):
    """The layer and a closure computing its output on random features."""
    import torch

    if method == "escnn":
        return build_escnn(irreps, group, nodes, pos, edge_index, device)
    if method == "tfn":
        return build_tfn(irreps, nodes, pos, edge_index, device)
    from pyg_implicit.nn import ImplicitConv, StandardConv

    conv = (StandardConv if method == "standard" else ImplicitConv)(irreps, irreps, group).to(device)
    if method == "materialised":
        conv.propagate = lambda edge_index, x_source, pos, size, **_: torch.zeros(
            size[1], conv.irreps_out.dim, device=device
        ).index_add(0, edge_index[1], (conv.kernel.materialize(pos[0][edge_index[0]] - pos[1][edge_index[1]])
                                       @ x_source[edge_index[0]].unsqueeze(-1)).squeeze(-1))  # fmt: skip
    x = torch.randn(nodes, conv.irreps_in.dim, device=device, requires_grad=True)
    conv(x, pos, edge_index)  # data-dependent initialisation (the shell width) before timing
    return conv, lambda: conv(x, pos, edge_index)


def parameter_table(groups, irreps: str, tfn) -> str:
    """Parameters of one layer per group, with full and factorized path weights (``path_weights``)."""
    from pyg_implicit.nn import ImplicitConv, StandardConv

    def count(cls, group, path_weights):
        return sum(p.numel() for p in cls(irreps, irreps, group, path_weights=path_weights).parameters())

    rows = [f"| {g} | " + " | ".join(f"{count(cls, g, w):,}" for cls in (ImplicitConv, StandardConv) for w in ("full", "factorized")) + " |"
            for g in groups]  # fmt: skip
    return "\n".join([
        f"Parameters of one layer (`tfn`: {sum(p.numel() for p in tfn.parameters()):,}; `path_weights=\"factorized\"` "
        "writes each path's weights as `U_uvw c_vk`, see `EquivariantTensorProduct`):", "",
        "| group | implicit | implicit, factorized | standard | standard, factorized |", "|---|---|---|---|---|", *rows,
    ])  # fmt: skip


def worker(method: str, group: str, edges: int, args) -> dict:
    import torch

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    device = torch.device(args.device)
    if device.type == "cpu":
        resource.setrlimit(resource.RLIMIT_AS, (int(args.memory_limit_gb * 2**30), resource.RLIM_INFINITY))
    torch.manual_seed(0)
    nodes = max(16, edges // args.degree)
    pos = torch.randn(nodes, 3, device=device)
    edge_index = torch.randint(0, nodes, (2, edges), device=device)
    conv, output = build(method, args.irreps, group, nodes, pos, edge_index, device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        baseline = torch.cuda.memory_allocated()
    else:
        baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    times = []
    try:
        for _ in range(args.repeats + 1):  # the first is a warm-up
            sync()
            start = time.perf_counter()
            output().pow(2).sum().backward()
            sync()
            times.append(time.perf_counter() - start)
    except (RuntimeError, MemoryError) as err:
        oom = isinstance(err, MemoryError) or "alloc" in str(err).lower() or "out of memory" in str(err).lower()
        return {"error": "out of memory" if oom else str(err)[:80]}
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated()
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "time_ms": 1000 * statistics.median(times[1:]),
        "peak_mb": (peak - baseline) / 2**20,
        "params": sum(p.numel() for p in conv.parameters()),
    }


def run_config(method: str, group: str, edges: int, args, baseline_dir: str | None = None) -> dict:
    """Time from one worker process, peak memory from another: on the CPU the memory worker runs with
    large blocks mmapped and unmapped when freed (glibc, no dynamic threshold), so its peak resident set
    follows the peak of live tensors rather than what the heap kept; that slows allocation, so the
    time comes from a worker with the default allocator."""
    python = args.escnn_python if method == "escnn" else sys.executable
    result = {}
    for measure, repeats in (("time", args.repeats), ("memory", 1)):
        env = dict(os.environ, PYTHONPATH=baseline_dir or REPOSITORY)
        if measure == "memory" and args.device == "cpu":
            env["MALLOC_MMAP_THRESHOLD_"] = "65536"
        cmd = [python, os.path.abspath(__file__), "--worker", method.split("@")[0], group, str(edges), "--irreps", args.irreps,
               "--repeats", str(repeats), "--memory-limit-gb", str(args.memory_limit_gb), "--degree", str(args.degree),
               "--device", args.device]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=baseline_dir or REPOSITORY)
        if proc.returncode != 0:
            lines = proc.stderr.strip().splitlines()
            return {"error": "out of memory (killed)" if proc.returncode < 0 else (lines[-1][:80] if lines else "failed")}
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        if "error" in out:
            return out
        result.update({"time_ms": out["time_ms"], "params": out["params"]} if measure == "time" else {"peak_mb": out["peak_mb"]})
    return result


def export_revision(revision: str) -> str:
    """The package at git ``revision`` in a temporary folder (``git archive``), for ``implicit@REV``."""
    folder = tempfile.mkdtemp(prefix="pyg_implicit_baseline_")
    archive = subprocess.run(["git", "-C", REPOSITORY, "archive", revision, "pyg_implicit"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", folder], input=archive.stdout, check=True)
    return folder


def fmt(result: dict, key: str, spec: str) -> str:
    return format(result[key], spec) if key in result else result.get("error", "-")


def ratio(a: dict, b: dict, key: str) -> str:
    return f"{a[key] / b[key]:.2f}x" if key in a and key in b else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", nargs=3, metavar=("METHOD", "GROUP", "EDGES"), help=argparse.SUPPRESS)
    parser.add_argument("--edges", type=int, nargs="+", default=[5000, 20000, 80000])
    parser.add_argument("--groups", nargs="+", default=["o3", "so2", "cone", "c4", "d4"])
    parser.add_argument("--irreps", default="16x0e+16x1o+16x2e")
    parser.add_argument("--degree", type=int, default=10, help="edges per node (nodes = edges / degree)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--memory-limit-gb", type=float, default=16.0)
    parser.add_argument("--materialised-max-edges", type=int, default=20000)
    parser.add_argument("--baseline", help="git revision whose ImplicitConv is measured beside this checkout's")
    parser.add_argument("--output", default="BENCHMARKS.md", help="Markdown file to write, or - for none")
    parser.add_argument("--escnn-python", help="interpreter of a virtual environment with escnn installed")
    args = parser.parse_args()
    if args.worker:
        method, group, edges = args.worker
        print(json.dumps(worker(method, group, int(edges), args)))
        return

    import torch

    baseline = f"implicit@{args.baseline}" if args.baseline else None
    baseline_dir = export_revision(args.baseline) if args.baseline else None
    methods = ["tfn", "implicit"] + ([baseline] if baseline else []) + ["standard", "materialised"]
    methods += ["escnn"] if args.escnn_python else []
    if args.device == "cuda":
        hardware = torch.cuda.get_device_name()
    else:
        hardware = f"{platform.processor() or platform.machine()}, {os.environ.get('BENCH_THREADS', '2')} CPU threads"
    lines = [
        "# Benchmarks",
        "",
        "## Steerable point convolution: time and memory per group",
        "",
        f"Command: `python benchmarks/conv.py {' '.join(sys.argv[1:])}`".rstrip() + f" ({date.today()}, {hardware}, "
        f"torch {torch.__version__}). Irreps `{args.irreps}` in and out, random graphs with {args.degree} edges per "
        f"node, forward + backward of `out.pow(2).sum()`, median of {args.repeats} runs after a warm-up. Peak memory: "
        + ("`torch.cuda.max_memory_allocated` over the passes, minus the memory held before them. " if args.device == "cuda"
           else "growth of the peak resident set over a forward + backward pass, in a separate process whose freed tensors "
           "leave the resident set (glibc's `MALLOC_MMAP_THRESHOLD_=65536`; timed without it). ")
        + "`tfn`: e3nn's tensor-field-network layer (per-edge weights of `FullyConnectedTensorProduct(irreps, 1x0e+1x1o+1x2e, "
        "irreps)` from a radial MLP 10-64), O(3), the same layer in every row. `implicit` / `standard`: this checkout's "
        "ImplicitConv (kernel MLP `8x0e+8x1o+8x2e`, 2 layers) and StandardConv (8 radial functions per harmonic) for the "
        "row's group. `materialised`: the same ImplicitConv forming `K` `[E, 144, 144]` per edge"
        f" (up to {args.materialised_max_edges} edges)."
        + (f" `{baseline}`: ImplicitConv at git revision {args.baseline}, measured in the same run." if baseline else "")
        + (" escnn: `R3PointConv` (its own venv), `width=2, n_rings=3, frequencies_cutoff=2`, o3 and so2 only." if args.escnn_python else ""),
        "",
        "| group | edges | " + " | ".join(f"{m} ms" for m in methods) + " | " + " | ".join(f"{m} MB" for m in methods)
        + " | implicit / tfn time | implicit / standard time" + (f" | implicit / {baseline} time | implicit / {baseline} memory" if baseline else "")
        + " | materialised / implicit time |",
        "|---|---|" + "---|" * (2 * len(methods) + 3 + 2 * bool(baseline)),
    ]
    tfn = {edges: run_config("tfn", "o3", edges, args) for edges in args.edges}
    for group in args.groups:
        for edges in args.edges:
            r = {"tfn": tfn[edges]}
            for m in methods[1:]:
                skip = (m == "materialised" and edges > args.materialised_max_edges) or (m == "escnn" and group not in ("o3", "so2"))
                r[m] = {"error": "-"} if skip else run_config(m, group, edges, args, baseline_dir if m == baseline else None)
            row = (
                f"| {group} | {edges} | " + " | ".join(fmt(r[m], "time_ms", ".0f") for m in methods)
                + " | " + " | ".join(fmt(r[m], "peak_mb", ".0f") for m in methods)
                + f" | {ratio(r['implicit'], r['tfn'], 'time_ms')} | {ratio(r['implicit'], r['standard'], 'time_ms')}"
                + (f" | {ratio(r['implicit'], r[baseline], 'time_ms')} | {ratio(r['implicit'], r[baseline], 'peak_mb')}" if baseline else "")
                + f" | {ratio(r['materialised'], r['implicit'], 'time_ms')} |"
            )
            print(row, flush=True)
            lines.append(row)
    lines += ["", parameter_table(args.groups, args.irreps, build_tfn(args.irreps, 2, torch.zeros(2, 3), torch.zeros(2, 0, dtype=torch.long), "cpu")[0])]
    if baseline_dir:
        shutil.rmtree(baseline_dir, ignore_errors=True)
    if args.output != "-":
        with open(args.output, "w") as f:
            f.write("\n".join(lines) + "\n")
        print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
