r"""The :math:`G`-invariants of a layout of fields: what a nonlinearity or a normalisation may use.

A field of an :math:`O(3)` irrep restricted to :math:`G \le O(3)` splits, by an orthogonal change
of basis (:meth:`~pyg_implicit.groups.Group.stable_decomposition`), into

* its :math:`G`-invariant components :math:`a = U f` (invariants of degree one: the ``0e`` value
  for :math:`O(3)`; also the :math:`z` component of every ``1o`` field for :math:`SO(2)`), and
* :math:`G`-stable blocks :math:`P_1 f, \dots, P_k f` orthogonal to them, whose norms are
  invariants of degree two (for :math:`SO(2)` and ``1o``: :math:`\sqrt{x^2 + y^2}`).

An :math:`O(3)` network sees only ``0e`` values and whole-field norms; a :math:`G`-network built on
this split sees every invariant its group allows, which is what makes a smaller group pay off.
Every map of the form :math:`f \mapsto U^\top \alpha(s) + \sum_i \beta_i(s)\, P_i f`, with
:math:`s` any function of the invariants, is :math:`G`-equivariant, because :math:`U^\top U` and
the :math:`P_i` commute with :math:`G`.
"""
from __future__ import annotations

from typing import Tuple, Union

import torch
from torch import nn

from ..groups import Group, get_group
from ..irreps import IrrepsLike, as_irreps


class InvariantSplit(nn.Module):
    r"""Orthogonal change of basis of a whole layout into invariant components and stable blocks.

    :meth:`split` returns the :math:`G`-invariant components :math:`a` ``[*, num_invariant]`` and
    the remaining coordinates :math:`z` ``[*, dim - num_invariant]`` grouped into ``num_blocks``
    :math:`G`-stable blocks. The first ``num_scalar`` components of :math:`a` are the *scalar
    fields* (fields whose whole irrep is invariant: ``0e``, and ``0o`` for a group without
    improper elements), then come the invariant components of the other fields, in layout order; :meth:`block_rms` gives each block's
    root-mean-square :math:`\|P_i f\| / \sqrt{\dim V_i}` (unit second moment for unit-variance
    inputs), :meth:`expand` broadcasts one number per block to its coordinates, and :meth:`merge`
    is the inverse of :meth:`split`. The bases are non-persistent buffers, built once.

    Args:
        irreps (str or Irreps): The layout.
        group (str or Group): The symmetry group.
    """

    def __init__(self, irreps: IrrepsLike, group: Union[str, Group]) -> None:
        super().__init__()
        self.irreps = as_irreps(irreps, "irreps")
        self.group = get_group(group)
        scalar_rows, invariant_rows, block_rows, block_sizes, offset = [], [], [], [], 0
        for mul, ir in self.irreps:
            Q, sizes = self.group.stable_decomposition(ir)
            n = self.group.invariant_basis(ir).shape[0]  # the first n rows of Q
            for _ in range(mul):
                rows = torch.zeros(ir.dim, self.irreps.dim, dtype=Q.dtype)
                rows[:, offset : offset + ir.dim] = Q
                (scalar_rows if n == ir.dim == 1 else invariant_rows).append(rows[:n])
                block_rows.append(rows[n:])
                block_sizes.extend(sizes[n:])
                offset += ir.dim
        dtype = torch.get_default_dtype()
        basis = torch.cat(scalar_rows + invariant_rows + block_rows) if self.irreps.dim else torch.zeros(0, 0)
        self.num_scalar = len(scalar_rows)
        self.num_invariant = self.num_scalar + sum(r.shape[0] for r in invariant_rows)
        self.num_blocks = len(block_sizes)
        self.register_buffer("basis", basis.to(dtype), persistent=False)  # [dim, dim], orthogonal
        block_of = torch.repeat_interleave(torch.arange(self.num_blocks), torch.tensor(block_sizes, dtype=torch.long))
        one_hot = torch.zeros(len(block_of), self.num_blocks)
        one_hot[torch.arange(len(block_of)), block_of] = 1.0
        self.register_buffer("block_indicator", one_hot.to(dtype), persistent=False)  # [dim - num_invariant, num_blocks]
        sizes = torch.tensor(block_sizes, dtype=dtype) if block_sizes else torch.zeros(0, dtype=dtype)
        self.register_buffer("block_size", sizes, persistent=False)

    @property
    def num_invariants(self) -> int:
        """Number of invariants :meth:`invariants` returns: components plus block norms."""
        return self.num_invariant + self.num_blocks

    def split(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        y = x @ self.basis.T
        return y[..., : self.num_invariant], y[..., self.num_invariant :]

    def merge(self, a: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return torch.cat([a, z], dim=-1) @ self.basis

    def block_mean_square(self, z: torch.Tensor) -> torch.Tensor:
        r""":math:`\|P_i f\|^2 / \dim V_i` per block ``[*, num_blocks]``."""
        return (z * z) @ self.block_indicator / self.block_size

    def block_rms(self, z: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
        r"""Smooth block RMS :math:`\sqrt{\|P_i f\|^2/\dim V_i + \epsilon^2} - \epsilon`: finite gradient at 0."""
        return (self.block_mean_square(z) + eps * eps).sqrt() - eps

    def expand(self, per_block: torch.Tensor) -> torch.Tensor:
        """One number per block ``[*, num_blocks]`` to one per coordinate of ``z``."""
        return per_block @ self.block_indicator.T

    def invariants(self, x: torch.Tensor) -> torch.Tensor:
        """All degree-one and degree-two invariants ``[*, num_invariants]``: components, then block RMS."""
        a, z = self.split(x)
        return torch.cat([a, self.block_rms(z)], dim=-1)

    def extra_repr(self) -> str:
        return (f"{self.irreps}, group={self.group.name}, scalars={self.num_scalar}, invariants={self.num_invariant}, "
                f"blocks={self.num_blocks}")  # fmt: skip
