r"""Data layouts shared by datasets, transforms and models (the lowest layer beside :mod:`.groups`).

* :class:`PointHierarchy`: a point cloud with coarser levels, made by
  :class:`~pyg_implicit.transforms.KNNHierarchy` and read by
  :class:`~pyg_implicit.models.PointCloudClassifier`;
* :data:`PROPERTY_NAMES`: the QM9 properties of ``data.props``, written by
  :class:`~pyg_implicit.datasets.QM9` and selected by :class:`~pyg_implicit.transforms.QM9Targets`.
"""
from __future__ import annotations

import torch
from torch_geometric.data import Data

__all__ = ["PointHierarchy", "PROPERTY_NAMES"]

PROPERTY_NAMES = ("A", "B", "C", "mu", "alpha", "homo", "lumo", "gap", "r2", "zpve", "U0", "U", "H", "G", "Cv")
"""The 15 properties of ``data.props``, in raw QM9 units: GHz (A, B, C), Debye, bohr³, Hartree
(homo, lumo, gap, zpve and the total energies U0, U, H, G), bohr², cal/(mol K)."""


class PointHierarchy(Data):
    r"""A point cloud with coarser levels: level :math:`l \ge 1` keeps the points ``index_l`` of level
    :math:`l-1` (level 0 is ``pos``), and ``edge_index_l`` joins each kept point (target, row 1,
    indexing level :math:`l`) to its ``k`` nearest points of level :math:`l-1` (source, row 0).
    Batching offsets each index by the size of the level it points into."""

    def level_size(self, level: int) -> int:
        return self.num_nodes if level == 0 else self[f"index_{level}"].numel()

    def __inc__(self, key: str, value, *args, **kwargs):
        if key.startswith("index_"):
            return self.level_size(int(key[6:]) - 1)
        if key.startswith("edge_index_"):
            level = int(key[11:])
            return torch.tensor([[self.level_size(level - 1)], [self.level_size(level)]])
        return super().__inc__(key, value, *args, **kwargs)

    @property
    def num_levels(self) -> int:
        return sum(1 for key in self.keys() if key.startswith("index_"))
