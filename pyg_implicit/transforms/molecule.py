r"""Transforms of molecular graphs (PyG ``BaseTransform``\ s): one-hot atoms and bonds, QM9 targets
in the units of the literature, target standardisation, and a radius graph that keeps bond types.

They read molecules in two layouts: ours (:class:`~pyg_implicit.datasets.QM9`: ``z``, ``pos``,
``edge_index`` of the bonds with ``bond_type``, ``props`` in raw QM9 units) and PyG's
(:class:`torch_geometric.datasets.QM9`: ``z``, ``pos``, ``edge_index`` with one-hot ``edge_attr``
of the 4 bond types, ``y`` with PyG's 19 targets, energies in eV). :func:`bond_types` and
:func:`raw_properties` read either.
"""
from __future__ import annotations

from typing import Dict, Sequence, Union

import torch
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.transforms import BaseTransform

from ..chem import BOND_TYPES
from ..data import PROPERTY_NAMES
from ..graph import radius_graph

__all__ = ["AtomOneHot", "BondOneHot", "QM9Targets", "StandardizeTargets", "RadiusGraph", "bond_types", "raw_properties",
           "QM9_TARGETS", "ATOM_REFERENCES", "HARTREE_TO_MEV", "PYG_QM9_TARGETS"]  # fmt: skip

HARTREE_TO_MEV = 27211.386246
HARTREE_TO_EV = 27.211386246  # PyG's conversion of the QM9 energies
PYG_QM9_TARGETS = ("mu", "alpha", "homo", "lumo", "gap", "r2", "zpve", "U0", "U", "H", "G", "Cv",
                   "U0_atom", "U_atom", "H_atom", "G_atom", "A", "B", "C")  # fmt: skip
"""The 19 columns of ``y`` in :class:`torch_geometric.datasets.QM9` (energies in eV)."""
_PYG_IN_EV = {"homo", "lumo", "gap", "zpve", "U0", "U", "H", "G"}
QM9_TARGETS = ("mu", "alpha", "homo", "lumo", "gap", "r2", "zpve", "U0", "U", "H", "G", "Cv")
"""The 12 standard regression targets (Gilmer et al., 2017; Anderson et al., 2019; SEGNN)."""
UNITS = {"A": "GHz", "B": "GHz", "C": "GHz", "mu": "D", "alpha": "bohr^3", "homo": "meV", "lumo": "meV",
         "gap": "meV", "r2": "bohr^2", "zpve": "meV", "U0": "meV", "U": "meV", "H": "meV", "G": "meV",
         "Cv": "cal/(mol K)"}  # fmt: skip
ATOM_REFERENCES = {  # free-atom energies in Hartree (QM9's atomref table), by atomic number
    "U0": {1: -0.500273, 6: -37.846772, 7: -54.583861, 8: -75.064579, 9: -99.718730},
    "U": {1: -0.498857, 6: -37.845355, 7: -54.582445, 8: -75.063163, 9: -99.717314},
    "H": {1: -0.497912, 6: -37.844411, 7: -54.581501, 8: -75.062219, 9: -99.716370},
    "G": {1: -0.510927, 6: -37.861317, 7: -54.598897, 8: -75.079532, 9: -99.733544},
}


def bond_types(data: Data) -> Tensor:
    """``(E,)`` bond types (0 single ... 3 aromatic, -1 no bond): ``data.bond_type``, or read off PyG's one-hot ``edge_attr`` ``(E, 4)``."""
    if getattr(data, "bond_type", None) is not None:
        return data.bond_type
    edge_attr = getattr(data, "edge_attr", None)
    if edge_attr is None or edge_attr.dim() != 2 or edge_attr.shape[1] != len(BOND_TYPES) or not ((edge_attr == 0) | (edge_attr == 1)).all():
        raise ValueError("data: expected bond types, as bond_type (E,) or as PyG's one-hot edge_attr (E, 4), "
                         f"got edge_attr of shape {getattr(edge_attr, 'shape', None)}")  # fmt: skip
    return torch.where(edge_attr.sum(1) > 0, edge_attr.argmax(1), -1)


def raw_properties(data: Data) -> Tensor:
    """``(1, 15)`` float64 QM9 properties in raw units (:data:`~pyg_implicit.data.PROPERTY_NAMES`): ``data.props``, or converted from PyG's ``y`` ``(1, 19)``."""
    if getattr(data, "props", None) is not None:
        return data.props.to(torch.float64)
    y = getattr(data, "y", None)
    if y is None or y.dim() != 2 or y.shape[1] != len(PYG_QM9_TARGETS):
        raise ValueError(f"data: expected QM9 properties, as props (1, 15) or as PyG's y (1, 19), got y of shape {getattr(y, 'shape', None)}")
    y = y.to(torch.float64)
    columns = [y[:, PYG_QM9_TARGETS.index(name)] / (HARTREE_TO_EV if name in _PYG_IN_EV else 1.0) for name in PROPERTY_NAMES]
    return torch.stack(columns, dim=1)


class AtomOneHot(BaseTransform):
    r"""``x`` :math:`(N, T)`: one-hot atom types (default H, C, N, O, F, irreps ``"5x0e"``) from ``z``.

    Args:
        atomic_numbers (sequence of int): The types, in one-hot order. (default: ``(1, 6, 7, 8, 9)``)
    """

    def __init__(self, atomic_numbers: Sequence[int] = (1, 6, 7, 8, 9)) -> None:
        self.atomic_numbers = tuple(int(a) for a in atomic_numbers)
        self._lookup = torch.full((max(self.atomic_numbers) + 1,), -1, dtype=torch.long)
        self._lookup[list(self.atomic_numbers)] = torch.arange(len(self.atomic_numbers))

    def forward(self, data: Data) -> Data:
        z = data.z
        known = (z >= 0) & (z < len(self._lookup))
        index = torch.where(known, self._lookup[z.clamp(0, len(self._lookup) - 1)], -1)
        if (index < 0).any():
            bad = sorted(set(z[index < 0].tolist()))
            raise ValueError(f"z: atomic numbers {bad} are not among the one-hot types {self.atomic_numbers}")
        data.x = torch.nn.functional.one_hot(index, len(self.atomic_numbers)).float()
        return data

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.atomic_numbers})"


class BondOneHot(BaseTransform):
    r"""``edge_attr`` :math:`(E, 4)`: one-hot bond type (single, double, triple, aromatic; irreps
    ``"4x0e"``) from ``bond_type``; edges that are no bond (``bond_type = -1``, see
    :class:`RadiusGraph`) get the zero vector."""

    def forward(self, data: Data) -> Data:
        bond_type = bond_types(data)
        if bond_type.numel() and (bond_type.min() < -1 or bond_type.max() >= len(BOND_TYPES)):
            raise ValueError(f"bond_type: expected values in -1..{len(BOND_TYPES) - 1}, got {sorted(set(bond_type.tolist()))}")
        data.edge_attr = _one_hot_bonds(bond_type)
        return data


def _one_hot_bonds(bond_type: Tensor) -> Tensor:
    return torch.nn.functional.one_hot(bond_type + 1, len(BOND_TYPES) + 1)[:, 1:].float()


class QM9Targets(BaseTransform):
    r"""``y`` :math:`(1, T)`: the named QM9 properties (from ``props``, or PyG's ``y``) in the units of the literature.

    Energies (homo, lumo, gap, zpve, U0, U, H, G) are converted from Hartree to meV; with
    ``atomization=True`` (default) U0, U, H and G become atomization energies,
    :math:`E - \sum_{atoms} E^{ref}_{z}` with QM9's free-atom references (:data:`ATOM_REFERENCES`).
    mu is in D, alpha in bohr³, r2 in bohr², Cv in cal/(mol K). Computed in float64, stored as float32.

    Args:
        names (str or sequence of str): Properties (:data:`QM9_TARGETS` or A, B, C).
        atomization (bool): Atomization rather than total energies. (default: :obj:`True`)
    """

    def __init__(self, names: Union[str, Sequence[str]], atomization: bool = True) -> None:
        self.names = (names,) if isinstance(names, str) else tuple(names)
        unknown = [n for n in self.names if n not in PROPERTY_NAMES]
        if unknown or not self.names:
            raise ValueError(f"names: expected properties among {PROPERTY_NAMES}, got {list(self.names)}")
        self.atomization = atomization
        self.columns = [PROPERTY_NAMES.index(n) for n in self.names]
        self.units = [UNITS[n] for n in self.names]

    def forward(self, data: Data) -> Data:
        props = raw_properties(data)
        values = []
        for name, column in zip(self.names, self.columns):
            value = props[:, column]
            if self.atomization and name in ATOM_REFERENCES:
                reference = ATOM_REFERENCES[name]
                unknown = sorted(set(data.z.tolist()) - set(reference))
                if unknown:
                    raise ValueError(f"z: no atom reference energy for atomic numbers {unknown}")
                value = value - sum(reference[int(z)] for z in data.z)
            if UNITS[name] == "meV":
                value = value * HARTREE_TO_MEV
            values.append(value)
        data.y = torch.stack(values, dim=1).float()
        return data

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({list(self.names)}, atomization={self.atomization})"


class StandardizeTargets(BaseTransform):
    r""":math:`y \mapsto (y - \mu) / \sigma` with statistics of the training targets (:meth:`fit`).

    Args:
        mean, std (Tensor): Per-target statistics, shape :math:`(T,)`.
    """

    def __init__(self, mean: Tensor, std: Tensor) -> None:
        self.mean, self.std = torch.as_tensor(mean, dtype=torch.float32), torch.as_tensor(std, dtype=torch.float32)
        if self.mean.shape != self.std.shape or self.mean.dim() != 1 or not (self.std > 0).all():
            raise ValueError(f"mean, std: expected equal 1-D shapes and std > 0, got {self.mean.shape}, {self.std}")

    @classmethod
    def fit(cls, y: Tensor) -> "StandardizeTargets":
        """Statistics of training targets ``y`` :math:`(M, T)`."""
        if y.dim() != 2 or len(y) < 2:
            raise ValueError(f"y: expected (M >= 2, T) training targets, got shape {tuple(y.shape)}")
        y = y.double()
        return cls(y.mean(0), y.std(0).clamp_min(1e-12))

    def forward(self, data: Data) -> Data:
        data.y = (data.y - self.mean) / self.std
        return data

    def inverse(self, y: Tensor) -> Tensor:
        """Standardised values back to the targets' units."""
        return y * self.std.to(y) + self.mean.to(y)

    def state_dict(self) -> Dict[str, list]:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(mean={self.mean.tolist()}, std={self.std.tolist()})"


class RadiusGraph(BaseTransform):
    r"""Replace the bond graph by all pairs closer than ``r`` (Å); ``bond_type`` is kept for the
    pairs that are bonds and set to -1 for the others (no bond: a zero :class:`BondOneHot` row).
    A one-hot ``edge_attr`` (PyG's layout) is rebuilt for the new edges the same way.

    Args:
        r (float): Cutoff radius in Å.
        max_num_neighbors (int): At most this many neighbours per atom. (default: :obj:`32`)
    """

    def __init__(self, r: float, max_num_neighbors: int = 32) -> None:
        if not r > 0:
            raise ValueError(f"r: expected a positive radius, got {r!r}")
        self.r, self.max_num_neighbors = float(r), max_num_neighbors

    def forward(self, data: Data) -> Data:
        n = data.num_nodes
        edge_index = radius_graph(data.pos, self.r, max_num_neighbors=self.max_num_neighbors)
        if getattr(data, "bond_type", None) is not None or getattr(data, "edge_attr", None) is not None:
            bond_type = torch.full((n * n,), -1, dtype=torch.long)
            bond_type[data.edge_index[0] * n + data.edge_index[1]] = bond_types(data)
            data.bond_type = bond_type[edge_index[0] * n + edge_index[1]]
            if getattr(data, "edge_attr", None) is not None:  # PyG's layout: the one-hots follow the new edges
                data.edge_attr = _one_hot_bonds(data.bond_type)
        data.edge_index = edge_index
        return data

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(r={self.r})"
