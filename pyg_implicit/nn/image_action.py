r"""How a finite subgroup :math:`H \le O(3)` acts on images: the one image action of the package.

An image is a function on the pixel grid of the plane :math:`z = 0`, axes ``(-2, -1)`` =
:math:`(x, y)`, centred. An element :math:`R \in H` that preserves the plane and maps pixel
centres onto pixel centres (its :math:`2 \times 2` block is a signed permutation: rotations by
multiples of 90 degrees and mirrors, the elements of ``c4`` and ``d4``) moves an image by

.. math::
    (L_R f)(p) = f(R^{-1} p),

which is exact: a permutation of the pixels (flips and a transpose). The wallpaper groups of the
G-CNN paper are translations times such a point group, :math:`p4 = \mathbb{Z}^2 \rtimes C_4` and
:math:`p4m = \mathbb{Z}^2 \rtimes D_4`; a feature map on them carries an axis indexed by the
elements of :math:`H` (in the order of ``group.coset_representatives``, the identity first), on
which an element acts by :math:`(L_g f)(h) = L_g f(g^{-1} h)` (:func:`transform_group_map`).

Users of :class:`~pyg_implicit.nn.GroupConv2d`, :func:`~pyg_implicit.nn.equivariance_loss.image_rotations`
and :func:`~pyg_implicit.nn.transform_field_image` all go through these functions.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Tuple, Union

import torch
from torch import Tensor

from ..groups import Group, get_group

__all__ = ["WALLPAPER_NAMES", "grid_group", "grid_preserving", "transform_image", "multiplication_table", "transform_group_map"]

WALLPAPER_NAMES = {"p4": "c4", "p4m": "d4"}
"""The G-CNN paper's names for translations times a point group, accepted wherever a grid group is."""


def grid_preserving(R: Tensor, atol: float = 1e-6) -> bool:
    """Whether the 3x3 matrix ``R`` preserves the plane :math:`z = 0` and maps pixel centres onto pixel centres."""
    A = R[:2, :2].double()
    rounded = A.round()
    return bool(
        torch.allclose(A, rounded, atol=atol)
        and (rounded.abs().sum(0) == 1).all()
        and (rounded.abs().sum(1) == 1).all()
        and R[2, :2].abs().max() < atol
        and R[:2, 2].abs().max() < atol
    )


def grid_group(group: Union[str, Group]) -> Group:
    """The finite group ``group`` (a name, a wallpaper name ``"p4"``/``"p4m"``, or a :class:`Group`), checked to act on the pixel grid."""
    if isinstance(group, str) and group.strip().lower() in WALLPAPER_NAMES:
        group = WALLPAPER_NAMES[group.strip().lower()]
    group = get_group(group)
    if not group.is_finite or not all(grid_preserving(R) for R in group.coset_representatives):
        raise ValueError(
            f"group: expected a finite group that maps the pixel grid onto itself (a subgroup of d4 such as "
            f"'c4' or 'd4', or 'p4'/'p4m'), got {group.name!r}"
        )
    return group


def transform_image(x: Tensor, R: Tensor) -> Tensor:
    r""":math:`(L_R x)(p) = x(R^{-1} p)` on the last two axes :math:`(x, y)` (square when :math:`R` swaps them), exact.

    ``R`` is a 3x3 matrix for which :func:`grid_preserving` holds; only its :math:`2 \times 2` block matters.
    """
    if not grid_preserving(R):
        raise ValueError("R: expected a matrix that maps the pixel grid onto itself (a signed permutation of x and y)")
    A = R[:2, :2].round().long()
    # The output's axis i reads the source axis k = source[i] with sign A[i, k]: R^{-1} p = A^T p.
    source = [int(A[i].abs().argmax()) for i in range(2)]
    flips = [x.dim() - 2 + source[i] for i in range(2) if A[i, source[i]] < 0]
    if flips:
        x = torch.flip(x, dims=flips)
    if source[0] == 1:
        if x.shape[-1] != x.shape[-2]:
            raise ValueError(f"x: an element that swaps the axes needs a square image, got shape {tuple(x.shape)}")
        x = x.transpose(-2, -1)
    return x


@lru_cache(maxsize=None)
def multiplication_table(group: Group) -> Tuple[Tuple[Tuple[int, ...], ...], Tuple[int, ...]]:
    """``(table, inverse)`` of a finite group: ``table[a][b]`` is the index of :math:`R_a R_b`, ``inverse[a]`` that of :math:`R_a^{-1}`.

    Indices are positions in ``group.coset_representatives``; read off the matrices.
    """
    elements = group.coset_representatives

    def index(M: Tensor) -> int:
        return int((elements - M).flatten(1).abs().amax(1).argmin())

    table = tuple(tuple(index(a @ b) for b in elements) for a in elements)
    inverse = tuple(index(a.T) for a in elements)
    return table, inverse


def transform_group_map(x: Tensor, g: int, group: Union[str, Group]) -> Tensor:
    r""":math:`L_g` on a feature map ``[..., |H|, H, W]`` on the group: :math:`(L_g f)(h) = L_g f(g^{-1} h)`, pixels move and the group axis is permuted."""
    group = grid_group(group)
    table, inverse = multiplication_table(group)
    permutation = [table[inverse[g]][h] for h in range(len(table))]
    return transform_image(x[..., permutation, :, :], group.coset_representatives[g])
