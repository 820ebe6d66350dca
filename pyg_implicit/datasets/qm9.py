r"""QM9 (Ramakrishnan et al., 2014): 130,831 small organic molecules with 15 DFT properties.

:class:`QM9` stores each molecule with its atoms, coordinates, bond graph and raw properties;
the transforms in :mod:`pyg_implicit.transforms` turn those into model inputs and targets. It reads,
in this order of preference:

1. PyG's raw files ``gdb9.sdf``, ``gdb9.sdf.csv`` and ``uncharacterized.txt`` in ``root/raw``
   (bonds from the SDF);
2. the CSVs of the ``qm9pack`` package when it is installed;
3. the NumPy archive ``qm9_full_130831.npz`` (the offline default, in the shared data folder).

Sources 2 and 3 carry no bond table: bonds come from the coordinates and are checked against the
SMILES (:func:`pyg_implicit.chem.determine_bonds`). Molecules for which no valid bond table exists
are left out and counted in :attr:`QM9.bond_report` (also saved as JSON next to the processed data).
"""
from __future__ import annotations

import csv
import glob
import importlib.util
import json
import os
import os.path as osp
import re
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch_geometric.data import Data

from ..chem import BondAssignmentError, bonds_of_mol, determine_bonds
from ..data import PROPERTY_NAMES
from .cache import CachedDataset
from .paths import file_fingerprint, shared_data_dir

__all__ = ["QM9", "PROPERTY_NAMES", "read_qm9_npz", "read_qm9pack_csv", "read_qm9_sdf"]

QM9PACK_COLUMNS = (
    "RotA_GHz", "RotB_GHz", "RotC_GHz", "Dipole_debye", "Polarizability_bohr3", "HOMO_au", "LUMO_au",
    "HOMO_LUMO_gap_au", "R2_bohr2", "ZPVE_au", "InternalEnergy_0K_au", "InternalEnergy_298K_au",
    "Enthalphy_298K_au", "GibbsFreeEnergy_298K_au", "Heatcapacity_Cv_cal_mol_K",
)  # fmt: skip
SYMBOL_TO_Z = {"H": 1, "C": 6, "N": 7, "O": 8, "F": 9}
NUM_MOLECULES = 130_831
STANDARD_SPLIT = (110_000, 10_000)  # train, validation; the rest (10,831) is the test set

Molecule = Tuple[int, np.ndarray, np.ndarray, str, np.ndarray]  # GDB id, z, pos, SMILES, props


def default_npz() -> str:
    return osp.join(shared_data_dir(), "qm9", "qm9_full_130831.npz")


def read_qm9_npz(path: str) -> Iterator[Molecule]:
    """Molecules of the ragged archive (``ptr``, ``Z``, ``pos``, ``index``, ``smiles``, ``props``)."""
    if not osp.exists(path):
        raise FileNotFoundError(f"QM9 archive not found: {path} (pass npz_path= or set $PYG_IMPLICIT_SHARED_DATA)")
    try:
        with np.load(path) as archive:
            arrays = {key: archive[key] for key in ("ptr", "Z", "pos", "index", "smiles", "props", "prop_names")}
    except Exception as error:
        raise ValueError(f"QM9 archive {path} is unreadable or lacks ptr/Z/pos/index/smiles/props: {error}") from error
    if tuple(arrays["prop_names"]) != PROPERTY_NAMES:
        raise ValueError(f"QM9 archive {path}: expected properties {PROPERTY_NAMES}, got {tuple(arrays['prop_names'])}")
    ptr = arrays["ptr"]
    for i in range(len(ptr) - 1):
        a, b = ptr[i], ptr[i + 1]
        yield int(arrays["index"][i]), arrays["Z"][a:b].astype(np.int64), arrays["pos"][a:b], str(arrays["smiles"][i]), arrays["props"][i]


def qm9pack_files() -> List[str]:
    """The data CSVs of the installed ``qm9pack`` package, or ``[]`` (the package is not imported)."""
    spec = importlib.util.find_spec("qm9pack")
    if spec is None or not spec.submodule_search_locations:
        return []
    folder = osp.join(list(spec.submodule_search_locations)[0], "data")
    return sorted(glob.glob(osp.join(folder, "qm9_part*.csv")))


def read_qm9pack_csv(paths: Sequence[str]) -> Iterator[Molecule]:
    """Molecules of ``qm9pack``'s CSV files (columns ``Index``, ``SMILES``, ``Elements``, ``XYZ_Ang``, properties)."""
    number = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
    for path in paths:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            missing = {"Index", "SMILES", "Elements", "XYZ_Ang", *QM9PACK_COLUMNS} - set(reader.fieldnames or [])
            if missing:
                raise ValueError(f"qm9pack CSV {path}: missing columns {sorted(missing)}")
            for row in reader:
                z = np.array([SYMBOL_TO_Z[s] for s in re.findall(r"[A-Z][a-z]?", row["Elements"])], dtype=np.int64)
                pos = np.array(number.findall(row["XYZ_Ang"]), dtype=np.float32).reshape(-1, 3)
                props = np.array([float(row[c]) for c in QM9PACK_COLUMNS])
                yield int(row["Index"]), z, pos, row["SMILES"], props


def read_qm9_sdf(raw_dir: str) -> Iterator[Tuple[Molecule, np.ndarray, np.ndarray]]:
    """Molecules of PyG's raw files with the SDF's bonds: ``((id, z, pos, smiles, props), pairs, types)``."""
    from rdkit import Chem

    with open(osp.join(raw_dir, "gdb9.sdf.csv")) as f:
        props = np.array([[float(v) for v in row[1:16]] for row in list(csv.reader(f))[1:]])
    with open(osp.join(raw_dir, "uncharacterized.txt")) as f:
        rows = [line.split() for line in f.read().split("\n")[9:-2]]  # PyG's reading: 9 header, 2 footer lines
    skip = {int(row[0]) - 1 for row in rows if row and row[0].isdigit()}
    supplier = Chem.SDMolSupplier(osp.join(raw_dir, "gdb9.sdf"), removeHs=False, sanitize=False)
    for i, mol in enumerate(supplier):
        if i in skip or mol is None:
            continue
        z = np.array([atom.GetAtomicNum() for atom in mol.GetAtoms()], dtype=np.int64)
        pos = mol.GetConformer().GetPositions().astype(np.float32)
        pairs, types = bonds_of_mol(mol)
        yield (i + 1, z, pos, Chem.MolToSmiles(mol), props[i]), pairs, types


def _to_data(molecule: Molecule, pairs: np.ndarray, types: np.ndarray) -> Data:
    gdb_id, z, pos, smiles, props = molecule
    pairs, types = torch.as_tensor(pairs, dtype=torch.long), torch.as_tensor(types, dtype=torch.long)
    edge_index = torch.cat([pairs.t(), pairs.flip(1).t()], dim=1)  # both directions
    order = torch.argsort(edge_index[0] * len(z) + edge_index[1])
    return Data(
        z=torch.as_tensor(z, dtype=torch.long), pos=torch.as_tensor(pos, dtype=torch.float32),
        edge_index=edge_index[:, order], bond_type=torch.cat([types, types])[order],
        props=torch.as_tensor(props, dtype=torch.float64)[None], idx=torch.tensor([gdb_id]), smiles=smiles,
    )  # fmt: skip


class QM9(CachedDataset):
    r"""QM9 molecules with their bond graphs and raw properties (see the module docstring for sources).

    Each :class:`~torch_geometric.data.Data` holds ``z`` :math:`(N,)` atomic numbers, ``pos``
    :math:`(N, 3)` in Å, ``edge_index`` :math:`(2, 2B)` with every bond in both directions,
    ``bond_type`` :math:`(2B,)` (0 single, 1 double, 2 triple, 3 aromatic), ``props`` :math:`(1, 15)`
    float64 in raw units (:data:`PROPERTY_NAMES`), ``idx`` (GDB id) and ``smiles``. Use
    :class:`~pyg_implicit.transforms.AtomOneHot`, :class:`~pyg_implicit.transforms.BondOneHot` and
    :class:`~pyg_implicit.transforms.QM9Targets` to get model inputs and targets.

    Args:
        root (str): Directory with ``raw/`` (optional PyG files) and ``processed/`` (the cache).
        source (str): ``"auto"`` (the order above), ``"sdf"``, ``"qm9pack"`` or ``"npz"``.
        npz_path (str, optional): The archive for ``source="npz"`` (default: the shared data folder).
        subset (int, optional): Process only this many molecules, drawn at random (seed 0) from the
            whole set: a small dataset for quick runs and tests.
        transform, pre_transform: As for any PyG dataset.

    Attributes:
        bond_report (dict): How many molecules got their bonds from the ``"sdf"``, the ``"smiles"``
            or the ``"coordinates"`` alone (with those GDB ids), and the GDB ids left out because
            no valid bond table exists.
    """

    def __init__(
        self,
        root: str,
        source: str = "auto",
        npz_path: Optional[str] = None,
        subset: Optional[int] = None,
        transform: Optional[Callable] = None,
        pre_transform: Optional[Callable] = None,
        force_reload: bool = False,
    ) -> None:
        if source not in ("auto", "sdf", "qm9pack", "npz"):
            raise ValueError(f"source: expected 'auto', 'sdf', 'qm9pack' or 'npz', got {source!r}")
        if subset is not None and not (isinstance(subset, int) and subset > 0):
            raise ValueError(f"subset: expected a positive int, got {subset!r}")
        self.npz_path = npz_path or default_npz()
        self.subset = subset
        if source == "auto":
            has_sdf = all(osp.exists(osp.join(root, "raw", f)) for f in ("gdb9.sdf", "gdb9.sdf.csv", "uncharacterized.txt"))
            source = "sdf" if has_sdf else "qm9pack" if qm9pack_files() else "npz"
        self.source = source
        super().__init__(root, transform, pre_transform, force_reload=force_reload)
        self.load(self.processed_paths[0])
        with open(self.processed_paths[1]) as f:
            self.bond_report: Dict = json.load(f)

    @property
    def raw_file_names(self) -> List[str]:
        return ["gdb9.sdf", "gdb9.sdf.csv", "uncharacterized.txt"] if self.source == "sdf" else []

    @property
    def processed_file_names(self) -> List[str]:
        # every argument that changes the content is in the name, the source file's identity included
        name = f"qm9_{self.source}_{self.subset or 'all'}_{file_fingerprint(*self._source_files())}"
        return [f"{name}.pt", f"{name}_bonds.json"]

    def _source_files(self) -> List[str]:
        if self.source == "sdf":
            return [p for p in (osp.join(self.raw_dir, f) for f in self.raw_file_names) if osp.exists(p)]
        if self.source == "qm9pack":
            return list(qm9pack_files())
        return [self.npz_path] if osp.exists(self.npz_path) else []

    def download(self) -> None:  # called when raw_file_names are missing: only the SDF source has any
        if self.source != "sdf":
            return
        raise FileNotFoundError(
            f"QM9 raw files missing in {self.raw_dir}: expected gdb9.sdf, gdb9.sdf.csv and uncharacterized.txt "
            "(no download at run time; use source='npz' or 'auto' for the offline archive)"
        )

    def _molecules(self) -> Iterator[Tuple[Molecule, Optional[np.ndarray], Optional[np.ndarray]]]:
        if self.source == "sdf":
            yield from read_qm9_sdf(self.raw_dir)
        elif self.source == "qm9pack":
            if not qm9pack_files():
                raise FileNotFoundError("source='qm9pack': the qm9pack package (pip install qm9pack) is not installed")
            yield from ((m, None, None) for m in read_qm9pack_csv(qm9pack_files()))
        else:
            yield from ((m, None, None) for m in read_qm9_npz(self.npz_path))

    def process(self) -> None:
        molecules = list(self._molecules())
        if self.subset is not None:
            if self.subset > len(molecules):
                raise ValueError(f"subset: asked for {self.subset} molecules, but the {self.source} source holds {len(molecules)}")
            keep = sorted(np.random.default_rng(0).choice(len(molecules), self.subset, replace=False).tolist())
            molecules = [molecules[i] for i in keep]
        data_list, methods, from_coordinates, dropped = [], {}, [], []
        for molecule, pairs, types in molecules:
            method = "sdf"
            if pairs is None:
                try:
                    pairs, types, method = determine_bonds(molecule[1], molecule[2], molecule[3])
                except BondAssignmentError:
                    dropped.append(molecule[0])
                    continue
            methods[method] = methods.get(method, 0) + 1
            if method == "coordinates":
                from_coordinates.append(molecule[0])
            data = _to_data(molecule, pairs, types)
            data_list.append(self.pre_transform(data) if self.pre_transform is not None else data)
        if not data_list:
            raise ValueError(f"QM9 source {self.source!r} yielded no molecules")
        report = {"source": self.source, "molecules": len(data_list), "bonds_from": methods,
                  "coordinates_ids": from_coordinates, "dropped": len(dropped), "dropped_ids": dropped}  # fmt: skip
        os.makedirs(self.processed_dir, exist_ok=True)
        self.save(data_list, self.processed_paths[0])
        self.save_json(report, self.processed_paths[1])

    def split(self, seed: int = 0, train_size: Optional[int] = None, val_size: Optional[int] = None) -> Tuple["QM9", "QM9", "QM9"]:
        r"""Random train / validation / test datasets (seeded, disjoint).

        The defaults are the standard sizes, 110,000 / 10,000 / rest, scaled to the dataset's size
        when it is a subset. A smaller ``train_size`` takes the first molecules of the same random
        training part, so the validation and test sets do not change with it.
        """
        n = len(self)
        default_train, default_val = (round(size * n / NUM_MOLECULES) for size in STANDARD_SPLIT)
        full_train = min(default_train, n)
        train_size = full_train if train_size is None else train_size
        val_size = default_val if val_size is None else val_size
        if not 0 < train_size <= full_train or not 0 < val_size or full_train + val_size >= n:
            raise ValueError(f"train_size, val_size: expected 0 < train_size <= {full_train}, val_size > 0 and a non-empty "
                             f"test set of {n} molecules, got {train_size}, {val_size}")  # fmt: skip
        perm = torch.from_numpy(np.random.default_rng(seed).permutation(n))
        train, val, test = perm[:train_size], perm[full_train:full_train + val_size], perm[full_train + val_size:]
        return self.index_select(train), self.index_select(val), self.index_select(test)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({len(self)}, source={self.source})"
