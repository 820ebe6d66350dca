r"""Chemistry helpers: bonds and bond orders of a molecule from its 3D coordinates (RDKit).

QM9 ships coordinates and a SMILES string but no bond table. :func:`determine_bonds` recovers it:

1. connectivity from interatomic distances and covalent radii (RDKit ``DetermineConnectivity``);
2. the SMILES graph found as a subgraph of it (extra edges occur in strained rings, where
   non-bonded atoms come close), the match of shortest total bond length when several exist;
   bonds and bond orders are then those of the SMILES;
3. otherwise bond orders from the geometry alone for a neutral molecule (RDKit's xyz2mol,
   ``DetermineBondOrders``), for molecules whose relaxed geometry no longer matches their SMILES;
4. otherwise :class:`BondAssignmentError`.

Bond types follow RDKit after sanitisation, aromatic bonds included: 0 single, 1 double,
2 triple, 3 aromatic (:data:`BOND_TYPES`).
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

__all__ = ["BOND_TYPES", "ELEMENTS", "BondAssignmentError", "determine_bonds"]

BOND_TYPES = ("single", "double", "triple", "aromatic")
ELEMENTS = {1: "H", 6: "C", 7: "N", 8: "O", 9: "F"}  # the atoms of QM9


class BondAssignmentError(ValueError):
    """Neither the SMILES nor the geometry alone gives a valid bond table."""


def _rdkit():
    try:
        from rdkit import Chem, RDLogger
        from rdkit.Chem import rdDetermineBonds
    except ImportError as error:  # pragma: no cover - rdkit is an install extra
        raise ImportError("bonds from coordinates need RDKit: pip install 'pyg_implicit[chem]'") from error
    RDLogger.DisableLog("rdApp.*")
    return Chem, rdDetermineBonds


def _bond_table(mol) -> Tuple[np.ndarray, np.ndarray]:
    Chem, _ = _rdkit()
    codes = {Chem.BondType.SINGLE: 0, Chem.BondType.DOUBLE: 1, Chem.BondType.TRIPLE: 2, Chem.BondType.AROMATIC: 3}
    pairs, types = [], []
    for bond in mol.GetBonds():
        if bond.GetBondType() not in codes:
            raise BondAssignmentError(f"unsupported bond type {bond.GetBondType()}")
        pairs.append((bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()))
        types.append(codes[bond.GetBondType()])
    return np.array(pairs, dtype=np.int64).reshape(-1, 2), np.array(types, dtype=np.int64)


def bonds_of_mol(mol) -> Tuple[np.ndarray, np.ndarray]:
    """Bond table ``(pairs [B, 2], types [B])`` of an RDKit molecule, aromaticity perceived when it sanitises."""
    Chem, _ = _rdkit()
    mol = Chem.Mol(mol)
    try:
        Chem.SanitizeMol(mol)
    except Exception:  # keep the bond orders as written (Kekulé form)
        pass
    return _bond_table(mol)


def _bonds_from_smiles(connected, pos: np.ndarray, smiles: str, max_matches: int = 1000) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """The SMILES graph embedded in the distance graph ``connected``, shortest total bond length first.

    A subgraph match rather than an equality: in strained cages some non-bonded atoms are closer
    than the covalent-radius cutoff, so the distance graph can hold extra edges.
    """
    Chem, _ = _rdkit()
    template = Chem.MolFromSmiles(smiles)
    if template is None:
        return None
    template = Chem.AddHs(template)
    pairs, types = _bond_table(template)
    query = Chem.RWMol(template)  # element graph only: every bond single, no aromaticity, no charges
    for atom in query.GetAtoms():
        atom.SetIsAromatic(False)
        atom.SetFormalCharge(0)
    for bond in query.GetBonds():
        bond.SetBondType(Chem.BondType.SINGLE)
        bond.SetIsAromatic(False)
    matches = connected.GetSubstructMatches(query.GetMol(), uniquify=False, maxMatches=max_matches)
    if not matches or query.GetNumAtoms() != connected.GetNumAtoms():
        return None
    mapped = np.array(matches)[:, pairs]  # [M, B, 2] atom indices in the order of ``pos``
    lengths = np.linalg.norm(pos[mapped[..., 0]] - pos[mapped[..., 1]], axis=-1).sum(-1)
    return mapped[int(np.argmin(lengths))], types


def determine_bonds(z: np.ndarray, pos: np.ndarray, smiles: Optional[str] = None) -> Tuple[np.ndarray, np.ndarray, str]:
    r"""Bonds of a neutral molecule from atomic numbers and coordinates (Å), checked against ``smiles``.

    Args:
        z (np.ndarray): Atomic numbers, shape :math:`(N,)`.
        pos (np.ndarray): Coordinates in Ångström, shape :math:`(N, 3)`.
        smiles (str, optional): The molecule's SMILES; its bond orders are used when its graph
            matches the connectivity of the coordinates.

    Returns:
        ``(pairs, types, method)``: atom index pairs :math:`(B, 2)` in the order of ``z``, bond types
        :math:`(B,)` indexing :data:`BOND_TYPES`, and ``"smiles"`` or ``"coordinates"`` (the SMILES
        graph is not part of the geometry's and the bonds come from the geometry alone).

    Raises:
        BondAssignmentError: No valid bond table was found.
    """
    Chem, rdDetermineBonds = _rdkit()
    z, pos = np.asarray(z), np.asarray(pos, dtype=np.float64)
    if z.ndim != 1 or pos.shape != (len(z), 3):
        raise ValueError(f"z, pos: expected shapes (N,) and (N, 3), got {z.shape} and {pos.shape}")
    mol = Chem.RWMol()
    conformer = Chem.Conformer(len(z))
    for i, (number, xyz) in enumerate(zip(z.tolist(), pos.tolist())):
        mol.AddAtom(Chem.Atom(int(number)))
        conformer.SetAtomPosition(i, xyz)
    mol.AddConformer(conformer)
    rdDetermineBonds.DetermineConnectivity(mol)
    if smiles:
        bonds = _bonds_from_smiles(mol, pos, smiles)
        if bonds is not None:
            return (*bonds, "smiles")
    try:
        rdDetermineBonds.DetermineBondOrders(mol, charge=0)
        Chem.SanitizeMol(mol)
    except Exception as error:
        raise BondAssignmentError(f"no valid bond orders for {smiles or 'the molecule'}: {error}") from error
    return (*_bond_table(mol), "coordinates")
