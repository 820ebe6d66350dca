"""Build ImplicitConv and StandardConv for several subgroups of O(3) and print their equivariance errors.

For each group: the largest float64 error over random elements of the group (should be ~1e-15),
and over random elements of O(3) outside it (large: the layer uses the subgroup's bigger kernel
space, not the O(3) one).

    python examples/demo_equivariance.py
"""
import argparse

import torch

from pyg_implicit.graph import knn_graph
from pyg_implicit.groups import get_group
from pyg_implicit.nn import ImplicitConv, StandardConv
from pyg_implicit.testing import equivariance_error


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", nargs="+", default=["o3", "so3", "so2", "cone", "o2", "fullcyl", "d4", "oh", "ih", "mirror"])
    parser.add_argument("--irreps", default="8x0e+4x1o+2x2e")
    args = parser.parse_args()
    torch.set_default_dtype(torch.float64)
    torch.manual_seed(0)
    pos = torch.randn(30, 3)
    edge_index = knn_graph(pos, k=6)
    outside_pool = get_group("o3").sample(64)
    print(f"{'group':<8} {'layer':<13} {'params':>7} {'error in G':>11} {'error outside G':>16}")
    for name in args.groups:
        group = get_group(name)
        outside = outside_pool[~group.contains(outside_pool)][:4]
        for cls in (ImplicitConv, StandardConv):
            conv = cls(args.irreps, args.irreps, group, edge_attr_irreps="1x0e")
            x = torch.randn(pos.shape[0], conv.irreps_in.dim)
            edge_attr = torch.rand(edge_index.shape[1], 1)
            inputs = (x, pos, edge_index, edge_attr)
            actions = (conv.irreps_in, "cartesian_points", None, None)
            inside = equivariance_error(conv, group.sample(4), inputs, actions, conv.irreps_out).max()
            out = equivariance_error(conv, outside, inputs, actions, conv.irreps_out).max() if len(outside) else float("nan")
            n_params = sum(p.numel() for p in conv.parameters())
            print(f"{name:<8} {cls.__name__:<13} {n_params:>7} {inside:>11.1e} {out:>16.1e}")


if __name__ == "__main__":
    main()
