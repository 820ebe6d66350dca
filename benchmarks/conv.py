"""Forward+backward time and peak memory: ImplicitConv vs StandardConv vs the materialised kernel.

Every configuration runs in its own subprocess, so its peak resident memory (``ru_maxrss``, minus
the resident memory after building the layer and the data) is its own. The materialised path
computes the same messages as ImplicitConv by forming the ``[E, d_out, d_in]`` kernel
(``kernel.materialize``) and multiplying; a configuration that exceeds ``--memory-limit-gb`` of
address space is reported as out of memory.

    python benchmarks/conv.py                      # writes BENCHMARKS.md
    python benchmarks/conv.py --edges 5000 --groups so2 --output -
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
import statistics
import subprocess
import sys
import time
from datetime import date

METHODS = ("implicit", "standard", "materialised")


def build_escnn(irreps: str, group: str, nodes: int, pos, edge_index):
    """escnn's R3PointConv on the same fields: ``16x0e+16x1o+16x2e`` of O(3), or its restriction to SO(2)."""
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
    conv = nn.R3PointConv(field, field, width=2.0, n_rings=3, frequencies_cutoff=2.0)
    x = torch.randn(nodes, field.size, requires_grad=True)
    return conv, lambda: conv(nn.GeometricTensor(x, field, coords=pos), edge_index).tensor


def build(method: str, irreps: str, group: str, nodes: int, pos, edge_index):
    """The layer and a closure computing its output on random features."""
    import torch

    if method == "escnn":
        return build_escnn(irreps, group, nodes, pos, edge_index)
    from pyg_implicit.nn import ImplicitConv, StandardConv

    conv = StandardConv(irreps, irreps, group) if method == "standard" else ImplicitConv(irreps, irreps, group)
    if method == "materialised":
        # Same parameters and function, but the message forms K explicitly: [E, d_out, d_in].
        def message(x_j, pos_i, pos_j, edge_attr, node_attr_i, node_attr_j):
            K = conv.kernel.materialize(pos_j - pos_i, edge_attr, node_attr_i, node_attr_j)
            return (K @ x_j.unsqueeze(-1)).squeeze(-1)

        conv.message = message
    x = torch.randn(nodes, conv.irreps_in.dim, requires_grad=True)
    return conv, lambda: conv(x, pos, edge_index)


def worker(method: str, group: str, edges: int, irreps: str, repeats: int, limit_gb: float) -> dict:
    import torch

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    resource.setrlimit(resource.RLIMIT_AS, (int(limit_gb * 2**30), resource.RLIM_INFINITY))
    torch.manual_seed(0)
    nodes = max(16, edges // 16)
    pos = torch.randn(nodes, 3)
    edge_index = torch.randint(0, nodes, (2, edges))
    conv, output = build(method, irreps, group, nodes, pos, edge_index)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    try:
        for _ in range(repeats + 1):  # the first is a warm-up
            start = time.perf_counter()
            output().pow(2).sum().backward()
            times.append(time.perf_counter() - start)
    except (RuntimeError, MemoryError) as err:
        return {"error": f"out of memory (> {limit_gb:g} GB address space)" if "alloc" in str(err).lower() or isinstance(err, MemoryError) else str(err)[:80]}
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "time_ms": 1000 * statistics.median(times[1:]),
        "peak_mb": (peak - baseline) / 1024,
        "params": sum(p.numel() for p in conv.parameters()),
    }


def run_config(method, group, edges, args) -> dict:
    python = args.escnn_python if method == "escnn" else sys.executable
    cmd = [python, os.path.abspath(__file__), "--worker", method, group, str(edges), "--irreps", args.irreps,
           "--repeats", str(args.repeats), "--memory-limit-gb", str(args.memory_limit_gb)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"error": "out of memory (killed)" if proc.returncode < 0 else proc.stderr.strip().splitlines()[-1][:80]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def fmt(result: dict, key: str, spec: str) -> str:
    return format(result[key], spec) if key in result else result.get("error", "-")


def ratio(a: dict, b: dict, key: str) -> str:
    return f"{a[key] / b[key]:.2f}x" if key in a and key in b else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", nargs=3, metavar=("METHOD", "GROUP", "EDGES"), help=argparse.SUPPRESS)
    parser.add_argument("--edges", type=int, nargs="+", default=[5000, 20000, 80000])
    parser.add_argument("--groups", nargs="+", default=["o3", "so2"])
    parser.add_argument("--irreps", default="16x0e+16x1o+16x2e")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--memory-limit-gb", type=float, default=16.0)
    parser.add_argument("--output", default="BENCHMARKS.md", help="Markdown file to write, or - for none")
    parser.add_argument("--escnn-python", help="interpreter of a virtual environment with escnn installed")
    args = parser.parse_args()
    if args.worker:
        method, group, edges = args.worker
        print(json.dumps(worker(method, group, int(edges), args.irreps, args.repeats, args.memory_limit_gb)))
        return

    import torch

    lines = [
        "# Benchmarks",
        "",
        "## Steerable point convolution: implicit vs standard vs materialised kernel",
        "",
        f"Command: `python benchmarks/conv.py` ({date.today()}, {platform.processor() or platform.machine()}, "
        f"{os.environ.get('BENCH_THREADS', '2')} CPU threads, torch {torch.__version__}). Irreps `{args.irreps}` in and "
        f"out, random graphs with edges/16 nodes, forward + backward of `out.pow(2).sum()`, median of "
        f"{args.repeats} runs after a warm-up. Peak memory: growth of the process's peak resident set over "
        "the forward and backward passes. Defaults of each layer: ImplicitConv kernel MLP `8x0e+8x1o+8x2e` "
        "(2 layers), StandardConv 8 radial functions per harmonic, so both feed the same bilinear map a "
        "72-dimensional `h`. Materialised: the same ImplicitConv forming `K` `[E, 144, 144]` per edge.",
        "",
    ]
    methods = METHODS + (("escnn",) if args.escnn_python else ())
    if args.escnn_python:
        lines += ["", "escnn: `R3PointConv` (escnn 1.0.11, its own venv) on the same fields, `width=2, n_rings=3, "
                  "frequencies_cutoff=2`; for so2 the O(3) fields restricted to SO(2) (`48x0 + 32x1 + 16x2`)."]
    lines += [
        "",
        "| group | edges | " + " | ".join(f"{m} ms" for m in methods) + " | " + " | ".join(f"{m} MB" for m in methods)
        + " | implicit / standard time | materialised / implicit time | materialised / implicit memory |"
        + (" escnn / implicit time |" if args.escnn_python else ""),
        "|---|---|" + "---|" * (2 * len(methods) + 3 + bool(args.escnn_python)),
    ]
    for group in args.groups:
        for edges in args.edges:
            r = {m: run_config(m, group, edges, args) for m in methods}
            row = (
                f"| {group} | {edges} | " + " | ".join(fmt(r[m], "time_ms", ".0f") for m in methods)
                + " | " + " | ".join(fmt(r[m], "peak_mb", ".0f") for m in methods)
                + f" | {ratio(r['implicit'], r['standard'], 'time_ms')} | {ratio(r['materialised'], r['implicit'], 'time_ms')}"
                f" | {ratio(r['materialised'], r['implicit'], 'peak_mb')} |"
                + (f" {ratio(r['escnn'], r['implicit'], 'time_ms')} |" if args.escnn_python else "")
            )
            print(row, flush=True)
            lines.append(row)
    small = argparse.Namespace(irreps=args.irreps, repeats=1, memory_limit_gb=args.memory_limit_gb, escnn_python=args.escnn_python)
    counts = {(m, g): run_config(m, g, 16, small).get("params") for m in methods if m != "materialised" for g in args.groups}
    lines += ["", "Parameters of one layer: " + "; ".join(f"{m} {g} {n:,}" for (m, g), n in counts.items() if n) + "."]
    if args.output != "-":
        with open(args.output, "w") as f:
            f.write("\n".join(lines) + "\n")
        print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
