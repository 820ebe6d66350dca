r"""Rotated MNIST (Larochelle et al., 2007; the G-CNN benchmark): digits rotated by uniform random angles.

:class:`RotatedMNIST` builds it from real MNIST digits: the 60,000 training images of the shared
folder (``mnist_train60k_grouped_by_label.npz``, put back into the canonical order with
``train-labels-idx1-ubyte.gz`` when that file is present) or any ``(N, 28, 28)`` uint8 archive
with ``x_train`` / ``y_train``. A seeded permutation gives disjoint train (10,000), validation
(2,000) and test images; the benchmark's test set has 50,000 images drawn from all 70,000 MNIST
digits, here it is the remaining 48,000 of the 60,000 available. Each image is rotated by its own
angle :math:`\theta \sim U[0, 2\pi)` (bilinear, zero background).
"""
from __future__ import annotations

import gzip
import os
import os.path as osp
from typing import Callable, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch_geometric.data import Data

from .cache import CachedDataset
from .paths import file_fingerprint, shared_data_dir

__all__ = ["RotatedMNIST", "rotate_images", "read_mnist"]

SPLIT_SIZES = {"train": 10_000, "val": 2_000, "test": 50_000}


def default_npz() -> str:
    return osp.join(shared_data_dir(), "mnist", "mnist_train60k_grouped_by_label.npz")


def read_mnist(path: str, labels_path: Optional[str] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Images ``(N, 28, 28)`` uint8 and labels, in the canonical order when the IDX labels file is given.

    The shared archive groups the images by label (keeping their order within a label); the
    canonical labels sequence puts them back: its i-th label ``y`` is the next unused image of ``y``.
    """
    if not osp.exists(path):
        raise FileNotFoundError(f"MNIST archive not found: {path}")
    try:
        with np.load(path) as f:
            images, labels = f["x_train"], f["y_train"].astype(np.int64)
    except Exception as error:
        raise ValueError(f"MNIST archive {path} is unreadable or lacks x_train/y_train: {error}") from error
    if images.ndim != 3 or images.shape[1:] != (28, 28) or len(images) != len(labels):
        raise ValueError(f"MNIST archive {path}: expected x_train (N, 28, 28) and N labels, got {images.shape}, {labels.shape}")
    if labels_path is not None and osp.exists(labels_path):
        with gzip.open(labels_path) as f:
            raw = f.read()
        if int.from_bytes(raw[:4], "big") != 2049:
            raise ValueError(f"{labels_path}: not an IDX labels file (magic {int.from_bytes(raw[:4], 'big')})")
        canonical = np.frombuffer(raw[8:], dtype=np.uint8).astype(np.int64)
        if np.bincount(canonical, minlength=10).tolist() != np.bincount(labels, minlength=10).tolist():
            raise ValueError(f"{labels_path}: its label counts differ from the archive's")
        order = np.argsort(labels, kind="stable")  # archive positions grouped by label
        starts = np.concatenate([[0], np.cumsum(np.bincount(labels, minlength=10))[:-1]])
        rank = np.zeros(len(canonical), dtype=np.int64)  # occurrence number of each canonical label
        for digit in range(10):
            where = canonical == digit
            rank[where] = np.arange(where.sum())
        index = order[starts[canonical] + rank]
        images, labels = images[index], labels[index]
    return images, labels


def rotate_images(images: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    r"""Rotate ``(N, C, H, W)`` images counter-clockwise by ``angles`` (radians) about their centre (bilinear, zeros outside)."""
    cos, sin = torch.cos(angles), torch.sin(angles)
    theta = torch.stack([torch.stack([cos, sin, torch.zeros_like(cos)], -1), torch.stack([-sin, cos, torch.zeros_like(cos)], -1)], 1)
    grid = F.affine_grid(theta.to(images), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


class RotatedMNIST(CachedDataset):
    r"""Rotated MNIST: ``x`` :math:`(1, 1, 28, 28)` in :math:`[0, 1]`, ``y`` the digit, ``angle`` the rotation.

    Args:
        root (str): Cache directory.
        split (str): ``"train"`` (10,000), ``"val"`` (2,000) or ``"test"`` (the rest: 48,000 of 60,000).
        npz_path (str, optional): MNIST archive (default: the shared folder's).
        seed (int): Seeds the split and the angles. (default: :obj:`0`)
        num_samples (int, optional): Use only the first images of the split (quick runs); more
            than the split holds is an error.
        transform, pre_transform: As for any PyG dataset.
        force_reload (bool): Rebuild the processed cache. (default: :obj:`False`)
    """

    def __init__(
        self,
        root: str,
        split: str = "train",
        npz_path: Optional[str] = None,
        seed: int = 0,
        num_samples: Optional[int] = None,
        transform: Optional[Callable] = None,
        pre_transform: Optional[Callable] = None,
        force_reload: bool = False,
    ) -> None:
        if split not in SPLIT_SIZES:
            raise ValueError(f"split: expected one of {sorted(SPLIT_SIZES)}, got {split!r}")
        if num_samples is not None and not (isinstance(num_samples, int) and 0 < num_samples <= SPLIT_SIZES[split]):
            raise ValueError(f"num_samples: expected a positive int of at most {SPLIT_SIZES[split]} (the {split} split), got {num_samples!r}")
        self.split, self.seed, self.num_samples = split, seed, num_samples
        self.npz_path = npz_path or default_npz()
        if not osp.exists(self.npz_path):
            raise FileNotFoundError(f"npz_path: MNIST archive not found: {self.npz_path} (set $PYG_IMPLICIT_SHARED_DATA or pass npz_path=)")
        super().__init__(root, transform, pre_transform, force_reload=force_reload)
        self.load(self.processed_paths[0])

    @property
    def raw_file_names(self) -> List[str]:
        return []

    @property
    def processed_file_names(self) -> List[str]:
        return [f"rotated_mnist_{self.split}_s{self.seed}_{self.num_samples or 'all'}_{file_fingerprint(self.npz_path)}.pt"]

    def download(self) -> None:
        pass

    def process(self) -> None:
        labels_path = osp.join(osp.dirname(self.npz_path), "train-labels-idx1-ubyte.gz")
        images, labels = read_mnist(self.npz_path, labels_path)
        rng = np.random.default_rng(self.seed)
        perm = rng.permutation(len(images))
        angles = rng.uniform(0.0, 2 * np.pi, len(images))
        n_train, n_val = SPLIT_SIZES["train"], SPLIT_SIZES["val"]
        if len(images) <= n_train + n_val:
            raise ValueError(f"MNIST archive {self.npz_path}: {len(images)} images, need more than {n_train + n_val}")
        bounds = {"train": (0, n_train), "val": (n_train, n_train + n_val), "test": (n_train + n_val, n_train + n_val + SPLIT_SIZES["test"])}
        start, stop = bounds[self.split]
        index = perm[start:stop]
        if self.num_samples is not None and self.num_samples > len(index):
            raise ValueError(f"num_samples: asked for {self.num_samples} images, the {self.split} split of {self.npz_path} holds {len(index)}")
        index = index[: self.num_samples]
        x = torch.from_numpy(images[index]).float().div(255.0)[:, None]
        theta = torch.from_numpy(angles[index])
        x = rotate_images(x, theta.float())
        data_list = [Data(x=x[i : i + 1], y=torch.tensor([int(labels[j])]), angle=theta[i : i + 1].float()) for i, j in enumerate(index)]
        if self.pre_transform is not None:
            data_list = [self.pre_transform(d) for d in data_list]
        os.makedirs(self.processed_dir, exist_ok=True)
        self.save(data_list, self.processed_paths[0])

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({len(self)}, split={self.split})"
