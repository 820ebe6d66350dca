r"""How much of the steerable kernel space on the 3x3 pixel grid an implicit kernel reaches, and for how many weights.

For a dense layer (:class:`~pyg_implicit.nn.ImplicitConv2d`) the kernel is the G-MLP evaluated at the
k x k window centres, :math:`K(u) = B(h(u))` with :math:`B` the bilinear output map. For fixed features
:math:`h` the kernel is linear in B's weights, so the kernels B reaches form a linear space: its dimension
is the rank of the Jacobian of the ``conv2d`` weight with respect to B's weights (and, with respect to all
parameters, the dimension of the kernels reached locally). For a finite group that maps the grid onto itself
the whole space of G-steerable kernels on the grid,
:math:`K(g u) = \rho_{out}(g) K(u) \rho_{in}(g)^{-1}`, is the image of the Reynolds operator
:math:`\frac{1}{|G|} \sum_g \rho_{out}(g) K(g^{-1} u) \rho_{in}(g)^{-1}`; for SO(2), which does not, the
C4 space is an upper bound. A parameter-efficient layer has as many weights as the dimension it reaches,
as a G-CNN's 3x3 filters do.

``python examples/kernel_span.py`` prints the table (one field of each of 0e, 1o, 2e in and out);
``--model runs/.../model.pt`` the same for the hidden layers of a trained network.
"""
from __future__ import annotations

import argparse

import torch
from torch.func import functional_call, jacrev

from pyg_implicit import load_model
from pyg_implicit.groups import get_group
from pyg_implicit.nn import ImplicitConv2d
from pyg_implicit.nn.basis_conv import steerable_grid_basis


def steerable_dimension(conv: ImplicitConv2d, group: str) -> int:
    """Dimension of the space of ``group``-steerable kernels on the layer's grid (a finite group that maps the grid onto itself)."""
    return sum(mul_out * mul_in * steerable_grid_basis(str(ir_in), str(ir_out), conv.kernel_size, group).shape[0]
               for mul_out, ir_out in conv.irreps_out for mul_in, ir_in in conv.irreps_in)  # one field pair at a time


class KernelWeight(torch.nn.Module):
    """``forward()`` returns the layer's ``conv2d`` weight, so that :func:`torch.func.functional_call` can swap its parameters."""

    def __init__(self, conv: ImplicitConv2d) -> None:
        super().__init__()
        self.conv = conv

    def forward(self) -> torch.Tensor:
        return self.conv.weight()


def rank_and_condition(J: torch.Tensor) -> tuple[int, float]:
    """Rank of ``J`` (``matrix_rank``'s tolerance) and the ratio of its largest to its smallest non-zero singular value."""
    s = torch.linalg.svdvals(J.detach())
    s = s[s > s[0] * max(J.shape) * torch.finfo(J.dtype).eps]
    return len(s), float(s[0] / s[-1])


def reachable_dimension(conv: ImplicitConv2d, prefix: str = "") -> tuple[int, int, float]:
    """(dimension, parameter count, condition number) of the kernels reached by varying the parameters whose names start
    with ``prefix``: the rank of the Jacobian :math:`J` of the weight with respect to them, and the ratio of its largest to
    its smallest non-zero singular value (how much slower gradient descent moves the kernel along the weakest reached
    direction than along the strongest; 1 for an orthonormal basis, :class:`~pyg_implicit.nn.basis_conv.BasisConv2d`)."""
    module = KernelWeight(conv)
    params = {name: p.detach() for name, p in module.named_parameters() if name.startswith("conv." + prefix)}
    jacobian = jacrev(lambda p: functional_call(module, p, (), strict=False).flatten())(params)
    J = torch.cat([j.reshape(j.shape[0], -1) for j in jacobian.values()], dim=1)  # [kernel entries, parameters]
    rank, condition = rank_and_condition(J)
    return rank, sum(p.numel() for p in params.values()), condition


@torch.no_grad()
def bilinear_jacobian(conv: ImplicitConv2d) -> torch.Tensor:
    """The Jacobian ``[kernel entries, B's weights]`` of the weight with respect to B's weights, column by column: the
    weight is linear in them (checked), so column i is the weight with B's weights the i-th unit vector. For trained
    layers, where :func:`torch.func` Jacobians of the whole G-MLP are slow."""
    B = conv.kernel.tensor_product.weight
    saved = B.clone()
    try:
        B.zero_()
        if conv.weight().abs().max() > 0:
            raise ValueError("conv: its weight is not linear in B's weights")
        columns = []
        for i in range(B.numel()):
            B.zero_()
            B.view(-1)[i] = 1.0
            columns.append(conv.weight().flatten())
    finally:
        B.copy_(saved)
    return torch.stack(columns, dim=1)


def span_table(groups: list[str], kernel_hidden: list[str], fields: str = "1x0e+1x1o+1x2e", seed: int = 0) -> list[dict]:
    """One row per (group, hidden irreps of the G-MLP): the steerable space, the kernels B reaches and all parameters reach."""
    rows, dtype = [], torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # the layers' bases too: a float32 basis is steerable to 1e-7 only, which a rank counts
    try:
        for group in groups:
            for hidden in kernel_hidden:
                torch.manual_seed(seed)
                conv = ImplicitConv2d(fields, fields, 3, group, hidden_irreps=hidden)
                conv(torch.randn(8, conv.irreps_in.dim, 6, 6, dtype=torch.float64))  # the data-dependent initialisation
                conv.eval()
                by_B, B_weights, B_condition = reachable_dimension(conv, "kernel.tensor_product.")
                by_all, parameters, _ = reachable_dimension(conv)
                finite = get_group(group).is_finite
                rows.append({"group": group, "hidden": hidden, "steerable": steerable_dimension(conv, group if finite else "c4"),
                             "exact": finite, "by_B": by_B, "B_weights": B_weights, "B_condition": B_condition, "by_all": by_all, "parameters": parameters})  # fmt: skip
    finally:
        torch.set_default_dtype(dtype)
    return rows


def trained_table(path: str) -> list[dict]:
    """One row per hidden layer of a trained :class:`~pyg_implicit.models.SteerableImageCNN` (``model.pt`` of
    ``examples/train_images.py``): the steerable space, what B reaches and the condition number of B's map, in float64."""
    model = load_model(path).double().eval()
    rows = []
    for i, conv in enumerate(model.convs[1:], start=1):  # the hidden 3x3 layers (the first one reads a single scalar)
        if not isinstance(conv, ImplicitConv2d):
            raise ValueError(f"path: expected a network with implicit kernels, got {type(conv).__name__} layers")
        J = bilinear_jacobian(conv)
        (by_B, B_condition), B_weights = rank_and_condition(J), J.shape[1]
        rows.append({"layer": i, "steerable": steerable_dimension(conv, model.group.name if model.group.is_finite else "c4"),
                     "by_B": by_B, "B_weights": B_weights, "B_condition": B_condition})  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", nargs="+", default=["c4", "d4", "so2"])
    parser.add_argument("--widths", type=int, nargs="+", default=[1, 2, 4], help="G-MLPs with w fields of each of 0e, 1o, 2e")
    parser.add_argument("--kernel-hidden", nargs="*", default=["2x0e+1x1o+1x2e", "1x0e+1x1o+2x2e"], help="more hidden irreps of the G-MLP")
    parser.add_argument("--fields", default="1x0e+1x1o+1x2e", help="irreps of the input and output fields")
    parser.add_argument("--model", help="instead: the hidden layers of a trained image CNN (model.pt of train_images.py)")
    args = parser.parse_args(argv)
    if args.model:
        rows = trained_table(args.model)
        print(f"{args.model}: hidden layers\n| layer | steerable kernels on the grid | reached by B | B's weights | condition number of B's map |")
        print("|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['layer']} | {r['steerable']} | {r['by_B']} | {r['B_weights']} | {r['B_condition']:.0f} |")
        return rows
    rows = span_table(args.groups, [f"{w}x0e+{w}x1o+{w}x2e" for w in args.widths] + args.kernel_hidden, args.fields)
    print(f"3x3 implicit kernels, {args.fields} -> {args.fields}")
    print("| group | G-MLP hidden irreps | steerable kernels on the grid | reached by B | B's weights | condition number of B's map "
          "| reached by all parameters | parameters |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        space = f"{r['steerable']}" if r["exact"] else f"<= {r['steerable']} (the C4 space)"
        print(f"| {r['group']} | {r['hidden']} | {space} | {r['by_B']} | {r['B_weights']} | {r['B_condition']:.0f} | {r['by_all']} | "
              f"{r['parameters']} |")
    return rows


if __name__ == "__main__":
    main()
