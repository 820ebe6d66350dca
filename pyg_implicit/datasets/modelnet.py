r"""ModelNet-40 point clouds (Wu et al., 2015), with or without surface normals, for classification.

:class:`ModelNetPoints` reads, in this order of preference:

0. the whole ModelNet-40 as one NumPy archive of positions only
   (``modelnet40_full_1024pts_xyz.npz``: 9,843 train / 2,468 test shapes of 1,024 points, unit
   sphere, z up; ``train_points``, ``train_labels``, ``train_names``, the same for ``test_``, and
   ``classes``), the default when it is present and ``root/raw`` holds none of the others (a
   folder unpacked there from the shared subset's archive does not count);
1. the widely used ``modelnet40_normal_resampled`` folder (PointNet++): one text file of lines
   ``x,y,z,nx,ny,nz`` per shape, ``modelnet40_shape_names.txt`` and the official
   ``modelnet40_train.txt`` / ``modelnet40_test.txt`` lists or, for shapes they do not name, the
   official numbering; in ``root/raw/`` (a ``.tar``,
   ``.tar.gz`` or ``.tar.xz`` of it is unpacked there first);
2. PyG's ``ModelNet`` meshes (``root/raw/ModelNet40/<class>/<train|test>/*.off``), from which points
   and normals are sampled uniformly over the surface (area-weighted faces);
3. the NumPy archive of the shared subset (``modelnet40_subset156_first1024pts.npz``).

Without the full archive the offline default is the shared subset's archive of source 1 (156
shapes, 39 classes, 10,000 points each). Points whose normal is not a unit vector (the original data has 77 normals equal to
(1, 1, 1)) are removed on reading and counted in :attr:`ModelNetPoints.report`.
"""
from __future__ import annotations

import glob
import json
import os
import os.path as osp
import tarfile
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import numpy as np
import torch
from torch_geometric.data import Data

from .cache import CachedDataset
from .paths import file_fingerprint, shared_data_dir

__all__ = ["ModelNetPoints", "read_full_npz", "read_resampled", "read_meshes", "read_npz"]

RESAMPLED = "modelnet40_normal_resampled"
UNPACKED = ".unpacked_from_archive"
"""Marks a ``RESAMPLED`` folder unpacked from an archive (the shared subset), which ``source="auto"``
does not take for a user's download."""
TRAIN_COUNTS = dict(  # official training shapes per class (9,843 in all; the other 2,468 are the test set)
    airplane=626, bathtub=106, bed=515, bench=173, bookshelf=572, bottle=335, bowl=64, car=197, chair=889,
    cone=167, cup=79, curtain=138, desk=200, door=109, dresser=200, flower_pot=149, glass_box=171, guitar=155,
    keyboard=145, lamp=124, laptop=149, mantel=284, monitor=465, night_stand=200, person=88, piano=231,
    plant=240, radio=104, range_hood=115, sink=128, sofa=680, stairs=124, stool=90, table=392, tent=163,
    toilet=344, tv_stand=267, vase=475, wardrobe=87, xbox=103,
)  # fmt: skip
Shape = Tuple[str, int, np.ndarray, Optional[np.ndarray]]  # shape id, label, points [P, 3], normals [P, 3] or None
FULL_SIZES = {"train": 9843, "test": 2468}


def default_full_npz() -> str:
    return osp.join(shared_data_dir(), "modelnet40", "modelnet40_full_1024pts_xyz.npz")


def default_archive() -> str:
    return osp.join(shared_data_dir(), "modelnet40", "modelnet40_normal_resampled_subset156.tar.xz")


def default_npz() -> str:
    return osp.join(shared_data_dir(), "modelnet40", "modelnet40_subset156_first1024pts.npz")


def _read_lines(path: str) -> List[str]:
    if not osp.exists(path):
        raise FileNotFoundError(f"ModelNet file not found: {path}")
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]


def official_split(shape_id: str) -> str:
    """``"train"`` or ``"test"`` by the official numbering: ids up to the class's training count are training shapes."""
    name, _, number = shape_id.rpartition("_")
    if name not in TRAIN_COUNTS or not number.isdigit():
        raise ValueError(f"shape id {shape_id!r}: expected '<modelnet40 class>_<number>'")
    return "train" if int(number) <= TRAIN_COUNTS[name] else "test"


def read_resampled(folder: str, split: str, max_points: int) -> Iterator[Shape]:
    """Shapes of a ``modelnet40_normal_resampled`` folder in ``split``.

    A shape belongs to the split whose list (``modelnet40_train.txt`` / ``modelnet40_test.txt``)
    names it, and otherwise to the split of the official numbering (:func:`official_split`), so
    subsets and truncated lists work too.
    """
    classes = _read_lines(osp.join(folder, "modelnet40_shape_names.txt"))
    listed = {}
    for name in ("train", "test"):
        path = osp.join(folder, f"modelnet40_{name}.txt")
        listed.update({shape_id: name for shape_id in (_read_lines(path) if osp.exists(path) else [])})
    for label, name in enumerate(classes):
        for path in sorted(glob.glob(osp.join(folder, name, f"{name}_*.txt"))):
            shape_id = osp.splitext(osp.basename(path))[0]
            if (listed.get(shape_id) or official_split(shape_id)) != split:
                continue
            try:
                values = np.loadtxt(path, delimiter=",", dtype=np.float32, max_rows=max_points, ndmin=2)
            except ValueError as error:
                raise ValueError(f"{path}: expected lines 'x,y,z,nx,ny,nz': {error}") from error
            if values.shape[1] != 6:
                raise ValueError(f"{path}: expected 6 values per line (x,y,z,nx,ny,nz), got {values.shape[1]}")
            yield shape_id, label, values[:, :3], values[:, 3:]


def read_meshes(folder: str, split: str, num_points: int, seed: int = 0) -> Iterator[Shape]:
    """Points and normals sampled on PyG's ModelNet meshes ``folder/<class>/<split>/*.off``."""
    from torch_geometric.io import read_off
    from torch_geometric.transforms import SamplePoints

    classes = sorted(d for d in os.listdir(folder) if osp.isdir(osp.join(folder, d)))
    sample = SamplePoints(num_points, remove_faces=True, include_normals=True)
    torch.manual_seed(seed)
    for label, name in enumerate(classes):
        for path in sorted(glob.glob(osp.join(folder, name, split, "*.off"))):
            data = sample(read_off(path))
            yield osp.splitext(osp.basename(path))[0], label, data.pos.numpy(), data.normal.numpy()


def read_full_npz(path: str, split: str) -> Tuple[List[Shape], List[str]]:
    """Shapes (positions only: normals ``None``) of the whole-ModelNet archive in ``split``, and the class names."""
    if not osp.exists(path):
        raise FileNotFoundError(f"ModelNet archive not found: {path}")
    keys = (f"{split}_points", f"{split}_labels", f"{split}_names", "classes")
    try:
        with np.load(path) as f:
            points, labels, names, classes = (f[k] for k in keys)
    except Exception as error:
        raise ValueError(f"ModelNet archive {path} is unreadable or lacks {', '.join(keys)}: {error}") from error
    if points.ndim != 3 or points.shape[2] != 3 or not len(points) == len(labels) == len(names):
        raise ValueError(f"ModelNet archive {path}: expected {split}_points (S, P, 3) with one label and name per shape, "
                         f"got {points.shape}, {labels.shape}, {names.shape}")  # fmt: skip
    return [(str(n), int(y), p, None) for n, y, p in zip(names, labels, points)], [str(c) for c in classes]


def read_npz(path: str, split: str) -> Tuple[List[Shape], List[str]]:
    """Shapes of the shared subset archive (``points``, ``normals``, ``label``, ``shape_id``, ``split``) and its class names."""
    if not osp.exists(path):
        raise FileNotFoundError(f"ModelNet archive not found: {path}")
    try:
        with np.load(path) as f:
            arrays = {k: f[k] for k in ("points", "normals", "label", "shape_id", "split", "class_names")}
    except Exception as error:
        raise ValueError(f"ModelNet archive {path} is unreadable or lacks points/normals/label/shape_id/split/class_names: {error}") from error
    shapes = [(str(arrays["shape_id"][i]), int(arrays["label"][i]), arrays["points"][i], arrays["normals"][i])
              for i in np.flatnonzero(arrays["split"] == split)]  # fmt: skip
    return shapes, [str(c) for c in arrays["class_names"]]


class ModelNetPoints(CachedDataset):
    r"""ModelNet-40 shapes as point clouds (see the module docstring for sources).

    Each :class:`~torch_geometric.data.Data` holds ``pos`` :math:`(P, 3)`, ``y`` (class index into
    :attr:`classes`), ``shape_id`` and, for the sources that have them, unit ``normal`` s
    :math:`(P, 3)` (the whole-ModelNet archive has none: estimate them with
    :class:`~pyg_implicit.transforms.EstimateNormalAxes`). Use :mod:`pyg_implicit.transforms` to
    normalise, sample, rotate and build the kNN hierarchy.

    Args:
        root (str): Directory with ``raw/`` (the data) and ``processed/`` (the cache).
        split (str): ``"train"`` or ``"test"`` (the official split).
        source (str): ``"auto"``, ``"full"``, ``"resampled"``, ``"mesh"`` or ``"npz"``.
        full_path (str, optional): The whole-ModelNet archive for ``source="full"`` (default: the
            shared one).
        archive (str, optional): A tar of ``modelnet40_normal_resampled`` unpacked into ``root/raw``
            when that folder is missing (default: the shared subset).
        npz_path (str, optional): The archive for ``source="npz"`` (default: the shared subset).
        max_points (int): Points kept per shape (the first ones of the resampled files, or the
            number sampled on meshes). (default: :obj:`2048`)
        transform, pre_transform: As for any PyG dataset.

    Attributes:
        classes (list of str): The 40 class names, in label order.
        report (dict): Shapes read and points removed for a non-unit normal.
    """

    def __init__(
        self,
        root: str,
        split: str = "train",
        source: str = "auto",
        archive: Optional[str] = None,
        npz_path: Optional[str] = None,
        full_path: Optional[str] = None,
        max_points: int = 2048,
        transform: Optional[Callable] = None,
        pre_transform: Optional[Callable] = None,
        force_reload: bool = False,
    ) -> None:
        if split not in ("train", "test"):
            raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
        if source not in ("auto", "full", "resampled", "mesh", "npz"):
            raise ValueError(f"source: expected 'auto', 'full', 'resampled', 'mesh' or 'npz', got {source!r}")
        if not (isinstance(max_points, int) and max_points > 0):
            raise ValueError(f"max_points: expected a positive int, got {max_points!r}")
        self.split, self.max_points = split, max_points
        for name, path in (("archive", archive), ("npz_path", npz_path), ("full_path", full_path)):
            if path is not None and not osp.exists(path):  # asked for: never fall back to another file
                raise FileNotFoundError(f"{name}: {path} does not exist")
        self.archive, self.npz_path = archive or default_archive(), npz_path or default_npz()
        self.full_path = full_path or default_full_npz()
        if source == "auto":
            raw, resampled = osp.join(root, "raw"), osp.join(root, "raw", RESAMPLED)
            downloaded = osp.isdir(resampled) and not osp.exists(osp.join(resampled, UNPACKED))
            source = ("mesh" if osp.isdir(osp.join(raw, "ModelNet40")) and not downloaded
                      else "resampled" if downloaded or archive is not None
                      else "npz" if npz_path is not None
                      else "full" if osp.exists(self.full_path)
                      else "resampled" if osp.exists(self.archive) else "npz")  # fmt: skip
        self.source = source
        super().__init__(root, transform, pre_transform, force_reload=force_reload)
        self.load(self.processed_paths[0])
        with open(self.processed_paths[1]) as f:
            meta = json.load(f)
        self.classes: List[str] = meta["classes"]
        self.report: Dict = meta["report"]

    @property
    def raw_file_names(self) -> List[str]:
        return [RESAMPLED] if self.source == "resampled" else []

    @property
    def processed_file_names(self) -> List[str]:
        files = {"resampled": [self.archive], "npz": [self.npz_path], "full": [self.full_path], "mesh": []}[self.source]
        name = f"modelnet40_{self.source}_{self.split}_{self.max_points}_{file_fingerprint(*[f for f in files if osp.exists(f)])}"
        return [f"{name}.pt", f"{name}.json"]

    def download(self) -> None:  # nothing is downloaded: unpack the resampled archive when that is the source
        folder = osp.join(self.raw_dir, RESAMPLED)
        if self.source == "resampled" and not osp.isdir(folder):
            if not osp.exists(self.archive):
                raise FileNotFoundError(f"ModelNet: neither {folder} nor the archive {self.archive} exists")
            try:
                with tarfile.open(self.archive) as tar:
                    tar.extractall(self.raw_dir, filter="data")
            except (tarfile.TarError, OSError, EOFError) as error:
                raise ValueError(f"ModelNet archive {self.archive} is unreadable: {error}") from error
            if not osp.isdir(folder):
                raise FileNotFoundError(f"ModelNet archive {self.archive} holds no {RESAMPLED}/ folder")
            with open(osp.join(folder, UNPACKED), "w") as f:
                f.write(self.archive + "\n")

    def _shapes(self) -> Tuple[Iterator[Shape], List[str]]:
        if self.source == "resampled":
            folder = osp.join(self.raw_dir, RESAMPLED)
            return read_resampled(folder, self.split, self.max_points), _read_lines(osp.join(folder, "modelnet40_shape_names.txt"))
        if self.source == "mesh":
            folder = osp.join(self.raw_dir, "ModelNet40")
            if not osp.isdir(folder):
                raise FileNotFoundError(f"ModelNet meshes not found: {folder}/<class>/<train|test>/*.off")
            classes = sorted(d for d in os.listdir(folder) if osp.isdir(osp.join(folder, d)))
            return read_meshes(folder, self.split, self.max_points), classes
        if self.source == "full":
            shapes, classes = read_full_npz(self.full_path, self.split)
            return iter(shapes), classes
        shapes, classes = read_npz(self.npz_path, self.split)
        return iter(shapes), classes

    def process(self) -> None:
        shapes, classes = self._shapes()
        data_list, removed = [], {}
        for shape_id, label, points, normals in shapes:
            if normals is None:  # positions only
                data = Data(pos=torch.from_numpy(points[: self.max_points].copy()), y=torch.tensor([label]), shape_id=shape_id)
                data_list.append(self.pre_transform(data) if self.pre_transform is not None else data)
                continue
            unit = np.abs(np.linalg.norm(normals, axis=1) - 1.0) < 1e-2
            if not unit.all():
                removed[shape_id] = int((~unit).sum())
            if unit.sum() == 0:
                raise ValueError(f"ModelNet shape {shape_id}: no point with a unit normal")
            data = Data(pos=torch.from_numpy(points[unit][: self.max_points].copy()),
                        normal=torch.from_numpy(normals[unit][: self.max_points].copy()),
                        y=torch.tensor([label]), shape_id=shape_id)  # fmt: skip
            data_list.append(self.pre_transform(data) if self.pre_transform is not None else data)
        if not data_list:
            raise ValueError(f"ModelNet source {self.source!r} has no {self.split} shapes")
        report = {"source": self.source, "shapes": len(data_list), "points_removed": sum(removed.values()),
                  "shapes_with_removed_points": removed}  # fmt: skip
        os.makedirs(self.processed_dir, exist_ok=True)
        self.save(data_list, self.processed_paths[0])
        self.save_json({"classes": classes, "report": report}, self.processed_paths[1])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({len(self)}, split={self.split}, source={self.source})"
