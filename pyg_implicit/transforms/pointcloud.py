r"""Transforms of point clouds with normals (PyG ``BaseTransform``\ s): unit-ball normalisation,
random group rotations that move normals with the points, and a random-downsampling kNN hierarchy.

To sample a fixed number of points use PyG's :class:`~torch_geometric.transforms.FixedPoints`
(it indexes ``pos`` and ``normal`` alike). With ``replace=False, allow_duplicates=True`` its rule
for shapes with fewer points than asked is: every point once, then repeats from further random
permutations, so every cloud has exactly the asked number.
"""
from __future__ import annotations

from typing import Sequence, Tuple, Union

import torch
from e3nn import o3
from torch_geometric.data import Data
from torch_geometric.transforms import BaseTransform

from ..data import PointHierarchy
from ..graph import knn
from ..groups import Group, get_group

__all__ = ["NormalizeUnitBall", "RandomRotation", "EstimateNormalAxes", "KNNHierarchy", "PointHierarchy"]


class NormalizeUnitBall(BaseTransform):
    r"""Centre the points on their mean and scale them into the unit ball (largest norm 1); normals are unit vectors and stay."""

    def forward(self, data: Data) -> Data:
        pos = data.pos - data.pos.mean(0, keepdim=True)
        radius = pos.norm(dim=1).max()
        data.pos = pos / radius if radius > 0 else pos
        return data


class RandomRotation(BaseTransform):
    r"""Apply a random element :math:`R` of ``group`` (Haar-uniform) to positions and normals:
    :math:`p \mapsto R p`, :math:`n \mapsto R n` (surface normals are vectors, so reflections act
    on them as on positions). ``group="so2"`` is the usual random rotation about z; ``"so3"``
    draws rotations uniformly; any name of :mod:`pyg_implicit.groups` works.

    Args:
        group (str or Group): The group to sample from. (default: ``"so2"``)
        keys (sequence of str): The vector attributes to rotate. (default: ``("pos", "normal")``)
    """

    def __init__(self, group: Union[str, Group] = "so2", keys: Sequence[str] = ("pos", "normal")) -> None:
        self.group, self.keys = get_group(group), tuple(keys)

    def forward(self, data: Data) -> Data:
        R = self.group.sample(1)[0]
        for key in self.keys:
            value = getattr(data, key, None)
            if value is not None:
                data[key] = value @ R.to(value).T
        return data

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.group.name}, keys={self.keys})"


class EstimateNormalAxes(BaseTransform):
    r"""The surface normal's axis from the ``k`` nearest points, as a sign-free ``2e`` field ``normal_axis`` :math:`(P, 5)`.

    The normal :math:`n_i` of point :math:`i` is the eigenvector of the smallest eigenvalue of the
    covariance of its ``k`` nearest points (PCA, the point itself included). PCA fixes the axis but
    not the sign, so :math:`n` is not fed as a vector (``1o``) with an arbitrary sign: it is fed as
    :math:`Y^2(n)`, the degree-2 spherical harmonics of :math:`n` (``1x2e``, component
    normalisation), equivalent to the traceless :math:`n n^T - I/3` and even in :math:`n`.
    Equivariant: the axes of :math:`R p` are :math:`R n`, so the field is :math:`D^2(R)\, Y^2(n)`
    (for every :math:`R \in O(3)`, wherever the smallest eigenvalue is simple). Apply it after
    :class:`RandomRotation`, which moves only vectors.

    Args:
        k (int): Neighbours per point. (default: :obj:`16`)
    """

    def __init__(self, k: int = 16) -> None:
        if not (isinstance(k, int) and k >= 3):
            raise ValueError(f"k: expected an int >= 3 (a plane needs three points), got {k!r}")
        self.k = k

    def forward(self, data: Data) -> Data:
        pos = data.pos
        target, source = knn(pos, pos, min(self.k, data.num_nodes))
        neighbours = pos[source].view(pos.shape[0], -1, 3)  # rows ascending, k per point
        centred = neighbours - neighbours.mean(dim=1, keepdim=True)
        covariance = centred.transpose(1, 2) @ centred  # [P, 3, 3]
        normal = torch.linalg.eigh(covariance.double()).eigenvectors[..., 0]  # smallest eigenvalue first
        data.normal_axis = o3.spherical_harmonics(2, normal, normalize=True, normalization="component").to(pos.dtype)
        return data

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(k={self.k})"


class KNNHierarchy(BaseTransform):
    r"""Random downsampling with a bipartite kNN graph per level (paper app. B.2, ModelNet).

    Level :math:`l` keeps ``sizes[l]`` points of level :math:`l-1`, drawn at random (all of them,
    in order, when the size does not shrink), and each kept point gathers from its ``k`` nearest
    points of level :math:`l-1`. Returns a :class:`PointHierarchy`.

    Args:
        sizes (sequence of int): Points per level, non-increasing, e.g. ``(1024, 512, 256, 128, 64, 32)``;
            the cloud needs at least ``sizes[0]`` points.
        k (int): Neighbours per kept point. (default: :obj:`16`)
    """

    def __init__(self, sizes: Sequence[int], k: int = 16) -> None:
        self.sizes: Tuple[int, ...] = tuple(int(s) for s in sizes)
        if not self.sizes or any(s < 1 for s in self.sizes) or any(a < b for a, b in zip(self.sizes, self.sizes[1:])):
            raise ValueError(f"sizes: expected positive, non-increasing level sizes, got {sizes}")
        if not (isinstance(k, int) and k > 0):
            raise ValueError(f"k: expected a positive int, got {k!r}")
        self.k = k

    def forward(self, data: Data) -> PointHierarchy:
        if data.num_nodes < self.sizes[0]:
            raise ValueError(f"pos: {data.num_nodes} points, fewer than sizes[0] = {self.sizes[0]} (sample with FixedPoints first)")
        out = PointHierarchy(**{key: value for key, value in data})
        pos, previous = data.pos, data.num_nodes
        for level, size in enumerate(self.sizes, start=1):
            index = torch.arange(previous) if size == previous else torch.randperm(previous)[:size].sort().values
            coarse = pos[index]
            target, source = knn(pos, coarse, self.k)
            out[f"index_{level}"], out[f"edge_index_{level}"] = index, torch.stack([source, target])
            pos, previous = coarse, size
        return out

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(sizes={self.sizes}, k={self.k})"
