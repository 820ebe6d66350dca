r"""Equivariance checks for any module and any subgroup of :math:`O(3)`.

A module :math:`f` is equivariant when :math:`f(g \cdot \text{args}) = g \cdot f(\text{args})`.
Each argument and output is described by how :math:`g = (R, t)` acts on it:

* an ``Irreps`` (or string): :math:`v \mapsto D(R) v` on the last dimension;
* ``"cartesian_points"``: :math:`p \mapsto R p + t` (positions; translations are tested too);
* ``None``: unchanged (indices, batch vectors, invariant data).

Example:
    >>> from pyg_implicit.graph import knn_graph
    >>> from pyg_implicit.nn import ImplicitConv
    >>> conv = ImplicitConv("4x0e+2x1o", "4x0e+2x1o", group="so2")
    >>> pos = torch.randn(12, 3)
    >>> x, edge_index = torch.randn(12, 10), knn_graph(pos, k=3)
    >>> error = assert_equivariant(conv, "so2", (x, pos, edge_index),
    ...                    irreps_in=(conv.irreps_in, "cartesian_points", None), irreps_out=conv.irreps_out)
"""
from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import torch
from e3nn import o3

from .groups import Group, get_group, irreps_D

__all__ = ["assert_equivariant", "equivariance_error", "default_tolerance"]

Action = Union[None, str, o3.Irreps]


def default_tolerance(dtype: torch.dtype) -> float:
    """Absolute tolerance used by :func:`assert_equivariant`: 1e-9 in float64, 1e-4 in float32."""
    return 1e-9 if dtype == torch.float64 else 1e-4


def _act(value: Any, action: Action, R: torch.Tensor, t: torch.Tensor) -> Any:
    if action is None:
        return value
    if isinstance(value, (tuple, list)):  # bipartite pairs
        return type(value)(_act(v, action, R, t) for v in value)
    if value is None:
        return None
    R, t = R.to(value.device), t.to(value.device)  # float64 until the end: the reference maths stays exact
    if isinstance(action, str) and action == "cartesian_points":
        return value @ R.T.to(value.dtype) + t.to(value.dtype)
    return value @ irreps_D(action, R).T.to(value.dtype)


def _as_tuple(value) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


@torch.no_grad()
def equivariance_error(
    module: torch.nn.Module,
    transforms: torch.Tensor,
    args_in: Sequence[Any],
    irreps_in: Sequence[Action],
    irreps_out: Union[Action, Sequence[Action]],
    translate: bool = True,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    r"""Largest absolute deviation :math:`\max |f(g \cdot a) - g \cdot f(a)|` for each matrix in ``transforms``.

    Args:
        module (Module): The function :math:`f`, called as ``module(*args_in)``.
        transforms (Tensor): Orthogonal matrices ``[n, 3, 3]`` (any; need not lie in a group).
        args_in (sequence): The arguments.
        irreps_in (sequence): The action on each argument (see the module docstring).
        irreps_out: The action on the output, or a sequence for tuple outputs.
        translate (bool): Also apply a random translation to ``"cartesian_points"``.
        generator (torch.Generator, optional): For the translations.

    Returns:
        Tensor ``[n]``.
    """
    args_in = tuple(args_in)
    irreps_in = tuple(irreps_in)
    if len(args_in) != len(irreps_in):
        raise ValueError(f"irreps_in: expected one action per argument ({len(args_in)}), got {len(irreps_in)}")
    multiple = isinstance(irreps_out, (tuple, list)) and not isinstance(irreps_out, o3.Irreps)  # Irreps is a tuple
    actions_out = tuple(irreps_out) if multiple else (irreps_out,)
    reference = _as_tuple(module(*args_in)) if multiple else (module(*args_in),)
    errors = []
    for R in transforms:
        t = torch.randn(3, generator=generator, dtype=torch.float64) if translate else torch.zeros(3, dtype=torch.float64)
        moved = tuple(_act(a, act, R, t) for a, act in zip(args_in, irreps_in))
        out = _as_tuple(module(*moved)) if multiple else (module(*moved),)
        err = max(
            float((o - _act(ref, act, R, t)).abs().max()) if o.numel() else 0.0
            for o, ref, act in zip(out, reference, actions_out)
        )
        errors.append(err)
    return torch.tensor(errors, dtype=torch.float64)


def assert_equivariant(
    module: torch.nn.Module,
    group: Union[str, Group],
    args_in: Sequence[Any],
    irreps_in: Sequence[Action],
    irreps_out: Union[Action, Sequence[Action]],
    n_samples: int = 4,
    tolerance: Optional[float] = None,
    generator: Optional[torch.Generator] = None,
    translate: bool = True,
) -> torch.Tensor:
    r"""Check :math:`f(g \cdot a) = g \cdot f(a)` for ``n_samples`` random elements of ``group``.

    Raises ``AssertionError`` with the largest error when it exceeds ``tolerance`` (by default
    :func:`default_tolerance` of the arguments' dtype). ``translate=False`` tests the origin-fixing
    group alone (for models that see absolute positions). Returns the errors ``[n_samples]``.
    """
    group = get_group(group)
    transforms = group.sample(n_samples, generator=generator)
    errors = equivariance_error(module, transforms, args_in, irreps_in, irreps_out, translate, generator)
    if tolerance is None:
        dtypes = [a.dtype for a in args_in if isinstance(a, torch.Tensor) and a.is_floating_point()]
        tolerance = default_tolerance(dtypes[0] if dtypes else torch.get_default_dtype())
    if errors.max() > tolerance:
        raise AssertionError(
            f"{module.__class__.__name__} is not {group.name}-equivariant: largest error {errors.max():.3e} "
            f"> tolerance {tolerance:.1e} over {n_samples} random elements"
        )
    return errors
